"""``--scheduler``: the commands' dask client, connected to a running scheduler (no cluster of rnnprobe's own).

``rnnprobe record config.toml --scheduler tcp://host:8786`` records every model in shards of stimuli on the
scheduler's workers (``record(..., client=...)``); ``analyze`` and ``report`` open the stores dask-backed
(``Recording.load(path, chunks="auto")``) so that the blockwise analyses run on the workers (see
docs/scale.md). The project's own modules (a factory's ``mymodels.py`` beside the config, and the modules it
imports from there) travel with the model, by value (:mod:`rnnprobe.recording.model_pickle`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ArgumentError

CONNECT_TIMEOUT = "10s"


@contextlib.contextmanager
def cluster_client(address: str | None) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address`` (a URL, or a scheduler file written by ``dask
    scheduler --scheduler-file``), closed on exit; None without an address.
    """
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise ArgumentError(
            "--scheduler: dask.distributed is not installed here. pip install 'dask[distributed]' (the same version "
            "as the scheduler's)."
        ) from None
    where = {"scheduler_file": address} if Path(address).is_file() else {"address": address}
    try:
        client = Client(**where, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ArgumentError(
            f"--scheduler: cannot reach a dask scheduler at {address!r} ({type(exc).__name__}: {exc}). Start one there "
            f"(`dask scheduler`, or a dask-jobqueue cluster) and pass its address (tcp://host:8786) or scheduler file."
        ) from None
    with client:
        yield client
