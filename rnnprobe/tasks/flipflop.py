"""The N-bit flip-flop task (Sussillo & Barak 2013, Neural Computation 25:626).

Each of ``n_bits`` input channels carries occasional +1/-1 pulses; the matching
output must hold the sign of the most recent pulse on its channel until the
next one. Before a channel's first pulse its target is undefined (masked).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ..errors import ArgumentError, describe
from .base import Task, TaskData, as_tensor


class FlipFlop(Task):
    """N-bit flip-flop memory task.

    Parameters
    ----------
    n_bits : int
        Channels (inputs = outputs = n_bits).
    n_steps : int
        Time steps per trial.
    p_pulse : float
        Probability of a pulse per channel per step.
    seed : int

    Examples
    --------
    >>> data = FlipFlop(n_bits=3, n_steps=50).sample(8)
    >>> tuple(data.x.shape), tuple(data.y.shape), data.metadata["n_pulses"].shape
    ((8, 50, 3), (8, 50, 3), (8,))
    """

    metric_name = "sign accuracy"

    def __init__(self, n_bits: int = 3, *, n_steps: int = 100, p_pulse: float = 0.05, seed: int = 0) -> None:
        super().__init__(seed)
        check_int("n_bits", n_bits)
        check_int("n_steps", n_steps, minimum=2)
        if not 0 < p_pulse < 1:
            raise ArgumentError(f"p_pulse: got {describe(p_pulse)}. Pass a probability between 0 and 1.")
        self.n_bits, self.n_steps, self.p_pulse = n_bits, n_steps, float(p_pulse)
        self.input_size = self.output_size = n_bits
        self.config.update(n_bits=n_bits, n_steps=n_steps, p_pulse=self.p_pulse)

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:
        pulses = rng.random((n, self.n_steps, self.n_bits)) < self.p_pulse
        signs = np.where(rng.random((n, self.n_steps, self.n_bits)) < 0.5, -1.0, 1.0)
        x = np.where(pulses, signs, 0.0)
        # target: the last pulse so far, carried forward (0 before the first one)
        idx = np.where(pulses, np.arange(self.n_steps)[None, :, None], -1)
        last = np.maximum.accumulate(idx, axis=1)
        y = np.where(last >= 0, np.take_along_axis(x, np.maximum(last, 0), axis=1), 0.0)
        return TaskData(
            as_tensor(x), as_tensor(y), torch.from_numpy(last >= 0),
            metadata={"n_pulses": pulses.sum(axis=(1, 2)), "final_bits": _bits_code(y[:, -1])},
        )  # fmt: skip

    def loss(self, output: Tensor, data: TaskData) -> Tensor:
        """Mean squared error over defined targets."""
        mask = data.mask.to(output.dtype)
        return ((output - data.y) ** 2 * mask).sum() / mask.sum().clamp_min(1)

    def metric(self, output: Tensor, data: TaskData) -> float:
        """Fraction of defined targets whose sign the output matches."""
        correct = (torch.sign(output) == data.y) & data.mask
        return float(correct.sum() / data.mask.sum().clamp_min(1))


def _bits_code(bits: np.ndarray) -> np.ndarray:
    """The final bit pattern as an integer (bit k set where output k is +1; 0 bits before any pulse count as -1)."""
    return ((bits > 0) * (2 ** np.arange(bits.shape[1]))).sum(axis=1)
