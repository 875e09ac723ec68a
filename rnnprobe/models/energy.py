"""Energy-efficient RNN (Ali, Ahmad, de Groot, van Gerven & Kietzmann 2022, Patterns 3:100639,
"Predictive coding is a consequence of energy efficiency in recurrent neural networks").

One unit per input element; the input drives the units directly and the network
learns recurrent weights that minimise its preactivation ("energy")::

    a_t = W h_{t-1} + x_t,      h_t = ReLU(a_t)
    loss = sum_t mean |a_t|

A network trained on predictable sequences learns to cancel the expected input
with its recurrent drive: some units carry the prediction (prediction units),
the others respond to what was not predicted (error units).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import check_finite, check_grouping, check_int, check_number
from ..errors import ArgumentError, NonFiniteError, ShapeError, describe
from ..recording.tap import Tap
from .base import RecurrentModel


class EnergyEfficientRNN(RecurrentModel):
    """a_t = W h_{t-1} + x_t, h_t = ReLU(a_t); outputs are the preactivations a_t.

    Parameters
    ----------
    size : int
        Number of units = input size (e.g. 64 for 8x8 digit images).

    Notes
    -----
    Taps: ``a`` (preactivation) and ``h``.

    Examples
    --------
    >>> import torch
    >>> model = EnergyEfficientRNN(64)
    >>> a = model(torch.rand(3, 10, 64))
    >>> float(model.training_loss(a).detach()) > 0
    True
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        check_int("size", size)
        self.input_size = self.output_size = size
        self.recurrent = nn.Linear(size, size, bias=False)
        nn.init.normal_(self.recurrent.weight, std=0.1 / size**0.5)
        self.tap_a, self.tap_h = Tap("a"), Tap("h")
        self.config = dict(size=size)

    def init_state(self, batch_size: int) -> Tensor:
        """Zero activity, for ``batch_size`` sequences."""
        device, dtype = self._like()
        return torch.zeros(batch_size, self.input_size, device=device, dtype=dtype)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One step: preactivation a = W h + x, then h = relu(a)."""
        a = self.tap_a(self.recurrent(state) + x_t)
        return a, self.tap_h(torch.relu(a))

    def connection_parameters(self) -> dict[str, list[list[str]]]:
        """``recurrent`` (W, the learned prediction of the next input)."""
        return {"recurrent": [["recurrent.weight"]]}

    @staticmethod
    def training_loss(preactivations: Tensor, data: object = None) -> Tensor:
        """Sum over time of the mean |a_t| over batch and units."""
        return preactivations.abs().mean(dim=(0, 2)).sum()


def prediction_units(
    preactivations: np.ndarray, labels: np.ndarray, *, threshold: float = 2.576
) -> dict[int, np.ndarray]:
    """Units that carry a class-specific prediction, per class.

    For each class c, take every unit's median preactivation over the stimuli of
    class c (``m[c, u]``); a unit is a prediction unit for c when ``m[c, u]`` lies
    more than ``threshold`` robust standard deviations from the median of
    ``m[c, :]`` over units, the robust SD being the median absolute deviation
    scaled by 1.4826 (consistent with the SD for normal data), so that 2.576 is
    the two-sided 1% level (after Ali et al. 2022). A class for which half the units or more share one
    median has no spread to judge by (a MAD of 0): it gets no prediction units.

    Parameters
    ----------
    preactivations : ndarray, (stimulus, units)
        Preactivations at the step of interest (Ali et al.: the last step, before
        the next input), e.g. ``rec.get("a", time=-1)``.
    labels : ndarray, (stimulus,)
        Class of each stimulus (of the input that is predicted, or that was shown).

    Returns
    -------
    dict of int to ndarray
        Class -> sorted unit indices.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((40, 6)); labels = np.repeat([0, 1], 20)
    >>> a[labels == 0, 2] = -5.0; a += np.random.default_rng(0).normal(0, 0.1, a.shape)
    >>> prediction_units(a, labels)[0]
    array([2])
    """
    a = check_finite(np.asarray(preactivations, dtype=float), name="preactivations")
    labels = check_grouping(labels, name="labels")
    threshold = check_number("threshold", threshold, minimum=0, inclusive=False)
    if a.ndim != 2 or labels.shape != (a.shape[0],):
        raise ShapeError(
            f"preactivations, labels: got {describe(a)} and {describe(labels)}. Pass preactivations of shape "
            f"(stimulus, units) at one step and one label per stimulus."
        )
    result = {}
    for c in np.unique(labels):
        medians = np.median(a[labels == c], axis=0)
        center = np.median(medians)
        mad = 1.4826 * np.median(np.abs(medians - center))  # normal-consistent MAD
        result[c.item()] = np.flatnonzero(np.abs(medians - center) > threshold * mad) if mad > 0 else np.array([], int)
    return result


def input_prediction(preactivations: Any, inputs: Any) -> np.ndarray:
    """How much of each input the recurrent drive predicts: 1 - ||a_t||^2 / ||x_t||^2, per stimulus and step.

    With a_t = W h_{t-1} + x_t, the recurrent drive's prediction of the input is -W h_{t-1} =
    x_t - a_t, and this is its R^2 (1: the input is cancelled exactly; 0: no prediction, as at
    t = 0; negative: the drive adds to the input).

    Parameters
    ----------
    preactivations, inputs : array, (stimulus, time, units)
        The model's outputs a_t and the inputs x_t it was given.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 2, 4)); a = np.stack([x[0, 0], 0.5 * x[0, 1]])[None]
    >>> input_prediction(a, x).tolist()
    [[0.0, 0.75]]
    """
    a = np.asarray(preactivations, dtype=float)
    x = np.asarray(inputs, dtype=float)
    if a.shape != x.shape or a.ndim != 3:
        raise ShapeError(
            f"preactivations, inputs: got {describe(a)} and {describe(x)}. Pass both as (stimulus, time, units)."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(x))):
        raise NonFiniteError("preactivations, inputs: hold NaN or inf; the share of the input predicted is undefined.")
    power = (x**2).sum(axis=-1)
    if np.any(power == 0):
        raise ArgumentError("inputs: an input is all zeros, so the fraction of it that is predicted is undefined.")
    return 1 - (a**2).sum(axis=-1) / power


def error_units(preactivations: np.ndarray, labels: np.ndarray, *, threshold: float = 2.576) -> np.ndarray:
    """Units that are prediction units for no class (see :func:`prediction_units`)."""
    found = prediction_units(preactivations, labels, threshold=threshold)
    taken = np.zeros(np.asarray(preactivations).shape[1], dtype=bool)
    for units in found.values():
        taken[units] = True
    return np.flatnonzero(~taken)
