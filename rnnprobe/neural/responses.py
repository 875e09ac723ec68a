"""Neural responses as a `Recording`: arrays of (stimulus, time, unit), or with the axes in another order.

A brain area is then a layer like any model layer, and every analysis takes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_finite, check_numeric
from ..errors import ArgumentError, ShapeError, describe
from ..recording.container import Recording

AXES = ("stimulus", "time", "unit")


def from_responses(
    responses: Any,
    *,
    axes: str = "stimulus time unit",
    layer: str = "responses",
    metadata: Any = None,
    times: Any = None,
    provenance: dict[str, Any] | None = None,
) -> Recording:
    """A `Recording` of neural responses, one layer of shape (stimulus, time, unit).

    Parameters
    ----------
    responses : array-like
        Firing rates, spike counts, sensor or voxel values. 2-d arrays without a time axis (e.g.
        ``axes="stimulus unit"``) get one time step.
    axes : str
        The order of the axes of ``responses``, e.g. ``"time unit stimulus"`` for a time x neuron x
        condition tensor, or ``"stimulus unit time"`` for MEG epochs.
    layer : str
        The layer's name (the brain area, e.g. ``"IT"``).
    metadata, times, provenance
        As for :class:`~rnnprobe.Recording`; ``times`` in ms for neural data.

    Returns
    -------
    Recording
        Non-finite responses are refused.

    Examples
    --------
    >>> import numpy as np
    >>> tensor = np.random.default_rng(0).normal(size=(61, 50, 10))   # time x neuron x condition
    >>> rec = from_responses(tensor, axes="time unit stimulus", layer="M1", times=np.arange(-50, 560, 10))
    >>> rec.shapes, rec.times["M1"][:2]
    ({'M1': (10, 61, 50)}, array([-50, -40]))
    """
    array = check_numeric(responses, name="responses")
    names = axes.split() if isinstance(axes, str) else None
    if (
        not names
        or len(set(names)) != len(names)
        or not set(names) <= set(AXES)
        or not {"stimulus", "unit"} <= set(names)
    ):
        raise ArgumentError(
            f"axes: got {describe(axes)}. Name each axis of the responses once, from 'stimulus', 'time' and "
            f"'unit' (time may be left out), e.g. 'time unit stimulus'."
        )
    if array.ndim != len(names):
        raise ShapeError(f"responses: got {describe(array)}, but axes={axes!r} names {len(names)} axes.")
    if "time" not in names:
        array, names = array[..., None], [*names, "time"]
    states = np.moveaxis(array, [names.index(a) for a in AXES], range(3))
    check_finite(states, name="responses", layer=layer)
    return Recording({layer: states}, metadata=metadata, times=times, provenance=provenance)
