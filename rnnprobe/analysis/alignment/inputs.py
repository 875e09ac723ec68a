"""What the alignment functions read and check: representations, settings, folds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import (
    check_int,
    check_number,
    check_numeric,
    check_option,
    check_recording,
    check_seed,
    layer_states,
)
from ...errors import ArgumentError, ShapeError, describe
from ...recording import Recording

METRICS = ("shape", "cca", "svcca", "pwcca", "cka", "debiased_cka", "rbf_cka")
DISTANCE_METRICS = ("shape",)  # the others are similarities
FITTED_METRICS = ("shape", "cca", "svcca", "pwcca")  # an alignment fitted on stimuli: cross-validation applies


@dataclass
class Representation:
    """States of one side: (stimulus, time, unit) float64 (lazy: a dask-backed layer no wider than its
    stimuli), the layer's name and time coordinate.
    """

    states: np.ndarray
    label: str
    times: np.ndarray
    source: Any = None  # a dask-backed layer: its selected states (lazy), the units behind ``states``


@dataclass
class Settings:
    """Checked settings of one comparison."""

    metric: str
    alpha: float
    variance: float
    cv: int | None
    seed: int | None
    sigma: float = 1.0


def read_representation(value: Any, layer: str | None, time: Any, name: str, *, kernel: bool = False,
                        whole: bool = False) -> Representation:  # fmt: skip
    """A Recording's layer (through the validation layer) or an array (stimulus, unit) / (stimulus, time, *units);
    a dask-backed layer as its coordinates or lazily (:func:`.blockwise.compressed_states`), never read whole
    (``kernel``: the metric needs the stimuli's n x n kernel), unless ``whole`` (for a device, which holds it).
    """
    if isinstance(value, Recording) and value.is_dask and not whole:
        from .blockwise import compressed_states

        label = check_recording(value, name).resolve_layer(layer)
        positions = value.time_positions(label, time)
        states, source = compressed_states(value, label, positions, kernel=kernel)
        return Representation(states, label, np.asarray(value.times[label])[positions], source)
    if not isinstance(value, Recording):
        if layer is not None:
            raise ArgumentError(f"layer: {name} is an array, which has no layers. Pass layer=None for arrays.")
        array = check_numeric(value, name=name)
        if array.ndim < 2 or 0 in array.shape:
            raise ShapeError(
                f"{name}: got {describe(array)}. Pass a Recording, or an array (stimulus, unit) or (stimulus, time, "
                f"*units)."
            )
        value = Recording({name: array[:, None] if array.ndim == 2 else array})  # the same checks as a layer's
    label, positions, states = layer_states(value, layer, time=time, name=name)
    return Representation(states, label, np.asarray(value.times[label])[positions])


def pair_argument(value: Any, name: str) -> tuple[Any, Any]:
    """``value`` for both sides, or a tuple (for a, for b) (a list is one selection, not a pair)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ArgumentError(f"{name}: got a tuple of {len(value)}. Pass one value for both sides, or (a, b).")
        return value[0], value[1]
    return value, value


def check_settings(
    metric: Any, alpha: Any, variance: Any, cv: Any, seed: Any, n_stimuli: int, sigma: Any = 1.0
) -> Settings:
    """Checked settings of an alignment comparison over ``n_stimuli`` stimuli."""
    metric = check_option("metric", metric, METRICS)
    sigma = check_number("sigma", sigma, minimum=0, inclusive=False)
    if metric != "rbf_cka" and sigma != 1.0:
        raise ArgumentError(f"sigma: got {sigma:g}, but sigma (the RBF kernel's width) applies to metric='rbf_cka'.")
    alpha = check_number("alpha", alpha, minimum=0, maximum=1)
    if metric != "shape" and alpha != 1.0:
        raise ArgumentError(f"alpha: got {alpha:g}, but alpha (partial whitening) applies to metric='shape' only.")
    variance = check_number("variance", variance, minimum=0, maximum=1, inclusive=True)
    if variance <= 0:
        raise ArgumentError("variance: got 0. Pass the share of variance SVCCA keeps, in (0, 1] (e.g. 0.99).")
    minimum = 4 if metric == "debiased_cka" else 4 if cv is not None else 2
    if n_stimuli < minimum:
        raise ShapeError(f"a, b: {n_stimuli} stimuli; metric={metric!r} with cv={cv} needs at least {minimum}.")
    if cv is not None:
        if metric not in FITTED_METRICS:
            raise ArgumentError(
                f"cv: got {cv!r}, but metric={metric!r} fits nothing to the stimuli; cross-validation applies to "
                f"{', '.join(FITTED_METRICS)}. Pass cv=None."
            )
        cv = check_int("cv", cv, minimum=2, maximum=n_stimuli // 2)
    return Settings(metric, alpha, variance, cv, check_seed(seed), sigma)


def check_before_reading(values: list[Any], metric: Any, alpha: Any, variance: Any, cv: Any, seed: Any,
                         sigma: Any) -> None:  # fmt: skip
    """Where a dask-backed recording is among ``values``, check the settings and the stimuli's counts (from
    the shapes) before any of them is read blockwise, the costly part; otherwise they are checked after.
    """
    if not any(isinstance(value, Recording) and value.is_dask for value in values):
        return
    counts = [value.n_stimuli if isinstance(value, Recording) else np.shape(value)[0] if np.ndim(value) else None
              for value in values]  # fmt: skip
    known = [count for count in counts if count is not None]
    for count in known[1:]:
        check_same_stimuli(known[0], count)
    check_settings(metric, alpha, variance, cv, seed, known[0], sigma)


def check_same_stimuli(n_a: int, n_b: int) -> int:
    """The number of stimuli, the same on both sides."""
    if n_a != n_b:
        raise ShapeError(
            f"a, b: {n_a} and {n_b} stimuli. Both sides must hold the same stimuli in the same order (select or "
            f"reorder one with Recording.select)."
        )
    return n_a


def folds(n: int, cv: int | None, seed: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of shuffled k-fold splits, or one in-sample pair where cv is None."""
    everything = np.arange(n)
    if cv is None:
        return [(everything, everything)]
    order = np.random.default_rng(seed).permutation(n)
    return [(np.sort(np.setdiff1d(order, part)), np.sort(part)) for part in np.array_split(order, cv)]


def check_varies(total_variance: float, label: str, time: Any, *, held_out: bool = False) -> None:
    """Refuse a representation that is the same for every stimulus (no alignment is defined)."""
    if total_variance <= 0:
        where = " in a training fold" if held_out else ""
        raise ArgumentError(
            f"{label}: the states at time position {time} are the same for every stimulus{where}, so no alignment "
            f"is defined. Select time steps where the representation varies."
        )


def check_identifiable(a: Any, b: Any, metric: str, alpha: float) -> None:
    """Refuse a held-out fit of CCA-like metrics whose canonical directions are arbitrary.

    In a training fold of n stimuli, centred representations of ranks r_a and r_b share at least
    r_a + r_b - (n - 1) directions exactly (canonical correlations of 1); two or more such directions make
    the fitted directions among them, and so the held-out value, arbitrary (they depend on rounding).
    """
    if metric not in ("cca", "svcca", "pwcca") and not (metric == "shape" and alpha == 0.0):
        return
    ranks = int((a.d > 0).sum()), int((b.d > 0).sum())
    shared = ranks[0] + ranks[1] - (a.n - 1)
    if shared >= 2:
        raise ArgumentError(
            f"cv: a training fold of {a.n} stimuli holds representations of rank {ranks[0]} and {ranks[1]}, so at "
            f"least {shared} canonical correlations are exactly 1 on it and the fitted directions among them (and "
            f"the held-out value) are arbitrary. Use more stimuli, fewer dimensions (metric='svcca' with a smaller "
            f"variance, or PCA first), or cv=None."
        )
