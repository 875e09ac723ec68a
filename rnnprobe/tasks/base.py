"""What every task provides: deterministic samples per split, a loss and a metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int, check_option

SPLITS = ("train", "test")


@dataclass
class TaskData:
    """One sample of a task.

    Attributes
    ----------
    x : Tensor
        Model inputs, (trial, time, features) or (trial, channels, h, w) for images.
    y : Tensor or None
        Targets (per step, or per trial), or None for unsupervised tasks.
    mask : Tensor or None
        Which targets count (same shape as ``y``'s leading axes), or None for all.
    metadata : dict of str to ndarray
        Per-trial columns (one value per trial), ready for ``rnnprobe.record(..., metadata=...)``.
    """

    x: Tensor
    y: Tensor | None
    mask: Tensor | None = None
    metadata: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]


class Task:
    """Base class: subclasses implement ``_generate(n, rng, split)``, ``loss`` and ``metric``.

    ``sample(n, split=..., index=...)`` is a pure function of (task config, seed,
    split, index): train and test trials come from separate random streams.
    """

    metric_name = "accuracy"

    def __init__(self, seed: int = 0) -> None:
        check_int("seed", seed, minimum=0)
        self.seed = seed
        self.config: dict[str, Any] = {"seed": seed}

    def rng(self, split: str, index: int) -> np.random.Generator:
        """The generator of one split and sample index: the same samples for the same seed."""
        return np.random.default_rng([self.seed, SPLITS.index(split), index])

    def sample(self, n: int, *, split: str = "train", index: int = 0) -> TaskData:
        """``n`` trials of ``split`` ("train" or "test"); ``index`` picks one of many draws."""
        check_option("split", split, SPLITS)
        return self._generate(check_int("n", n), self.rng(split, index), split)

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:  # pragma: no cover
        raise NotImplementedError

    def loss(self, output: Tensor, data: TaskData) -> Tensor:  # pragma: no cover
        """The training loss of a batch of model outputs."""
        raise NotImplementedError

    def metric(self, output: Tensor, data: TaskData) -> float:  # pragma: no cover
        """The task's performance measure (e.g. accuracy) of a batch of model outputs."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config.items())})"


def last_step_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Accuracy of the argmax of the last step's logits, (trial, time, classes)."""
    return float((logits[:, -1].argmax(-1) == labels).float().mean())


def summed_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy summed over time steps, averaged over the batch (per-step readouts, Spoerer et al. 2017).

    ``logits`` is (batch, time, class), ``labels`` (batch,): every step is scored against the label.
    """
    n, steps, classes = logits.shape
    per_step = torch.nn.functional.cross_entropy(logits.reshape(n * steps, classes), labels.repeat_interleave(steps))
    return per_step * steps


def as_tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    """A numpy array as a contiguous torch tensor of ``dtype``."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
