"""Seeded torch randomness that leaves the caller's random state as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def seeded(seed: int | None, device: Any = None) -> Iterator[None]:
    """Inside: torch's CPU generator (and ``device``'s, a CUDA device) seeded with ``seed``; outside, every
    generator as it was. Nothing happens for ``seed`` None. ``torch.manual_seed`` is not used: it also seeds every
    CUDA device, and where CUDA is not initialised yet it queues that seeding for when it is, so that a later
    CUDA program of the caller's would start from this seed.

    Examples
    --------
    >>> import torch
    >>> with seeded(3):
    ...     a = torch.rand(2)
    >>> with seeded(3):
    ...     b = torch.rand(2)
    >>> bool(torch.equal(a, b))
    True
    """
    if seed is None:
        yield
        return
    import torch

    cuda = [torch.device(device)] if device is not None and torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for d in cuda:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(seed)
        yield
