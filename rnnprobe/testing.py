"""Helpers for testing code built on rnnprobe (and rnnprobe's own tests).

- :func:`assert_recordings_equal`: two recordings hold the same layers, states (exactly, or to a
  tolerance), dtypes, time coordinates, metadata and provenance;
- :func:`assert_components_equal`: components (columns) equal up to one sign each, e.g. a decomposition
  against another package's;
- :func:`make_recording`: a small labelled recording whose label becomes decodable at a chosen step;
- :func:`make_dynamics`: noisy trials of a line attractor, a point attractor or a limit cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_int, check_number
from .errors import ShapeError
from .recording.container import Recording

__all__ = ["assert_components_equal", "assert_recordings_equal", "make_dynamics", "make_recording"]


def assert_recordings_equal(
    actual: Recording,
    expected: Recording,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    check_provenance: bool = True,
) -> None:
    """Raise ``AssertionError`` unless two recordings are the same.

    Layers (in order), state dtypes, shapes and values (exactly by default; within ``rtol``/``atol``
    if given), time coordinates and their dtypes, metadata columns (names, dtypes, values) and,
    unless ``check_provenance=False``, provenance must agree.

    Examples
    --------
    >>> rec = make_recording(n_stimuli=4, n_time=2, n_units=3)
    >>> assert_recordings_equal(rec, rec.load_into_memory())
    """
    assert actual.layers == expected.layers, f"layers differ: {actual.layers} != {expected.layers}"
    for name in actual.layers:
        x, y = actual.get(name), expected.get(name)
        assert x.dtype == y.dtype, f"layer {name!r}: dtype {x.dtype} != {y.dtype}"
        assert x.shape == y.shape, f"layer {name!r}: shape {x.shape} != {y.shape}"
        if rtol or atol:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"layer {name!r}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"layer {name!r}")
        tx, ty = actual.times[name], expected.times[name]
        assert tx.dtype == ty.dtype, f"times of {name!r}: dtype {tx.dtype} != {ty.dtype}"
        np.testing.assert_array_equal(tx, ty, err_msg=f"times of {name!r}")
    assert actual.columns == expected.columns, f"metadata columns differ: {actual.columns} != {expected.columns}"
    for column in actual.columns:
        a, b = actual.column(column), expected.column(column)
        assert a.dtype == b.dtype, f"metadata {column!r}: dtype {a.dtype} != {b.dtype}"
        assert a.tolist() == b.tolist(), f"metadata {column!r} differs"
    if check_provenance:
        assert actual.provenance == expected.provenance, "provenance differs"


def assert_components_equal(
    actual: list[np.ndarray], desired: list[np.ndarray], *, columns: Any = None, atol: float = 1e-9
) -> None:
    """Raise ``AssertionError`` unless components are equal up to one sign each.

    ``actual`` and ``desired`` are lists of (feature, component) arrays of the same components (a
    decomposition's decoders and encoders, say); component k's sign is the one that aligns
    ``actual[0][:, k]`` with ``desired[0][:, k]``, applied to every array of the list. ``columns`` (a mask or
    indices) restricts the check to the components that are defined (within the decomposition's rank). NaN
    is never equal to anything, NaN included (a component that is NaN on both sides fails).

    Examples
    --------
    >>> import numpy as np
    >>> w = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 2)))[0]
    >>> assert_components_equal([w, 2 * w], [w * [1, -1], 2 * w * [1, -1]])
    """
    shapes = [np.shape(a) for a in actual], [np.shape(d) for d in desired]
    if not actual or shapes[0] != shapes[1] or any(len(shape) != 2 for shape in shapes[0]):
        raise ShapeError(
            f"actual, desired: got arrays of shapes {shapes[0]} and {shapes[1]}. Pass two non-empty lists of "
            f"(feature, component) arrays, the same shapes in the same order."
        )
    columns = slice(None) if columns is None else columns
    signs = np.sign(np.sum(actual[0] * desired[0], axis=0))[columns]
    for k, (a, d) in enumerate(zip(actual, desired, strict=True)):
        np.testing.assert_allclose(a[:, columns], d[:, columns] * signs, atol=atol, equal_nan=False,
                                   err_msg=f"array {k}")  # fmt: skip


def make_recording(
    n_stimuli: int = 40,
    n_time: int = 6,
    n_units: int = 8,
    *,
    n_classes: int = 2,
    onset: int = 0,
    signal: float = 0.0,
    layer: str = "h",
    seed: Any = 0,
) -> Recording:
    """A small recording: Gaussian states and a random ``label``, added to unit 0 from step ``onset``.

    ``states[:, onset:, 0] += signal * label``: with ``signal > 0`` the label is decodable from step
    ``onset`` on. ``seed`` may be a numpy Generator, which is then advanced (labels first, then states).

    Examples
    --------
    >>> rec = make_recording(n_stimuli=6, n_time=3, n_units=2, signal=1.0, seed=1)
    >>> rec.shapes, rec.columns
    ({'h': (6, 3, 2)}, ['label'])
    """
    n_stimuli, n_time, n_units = (check_int(k, v) for k, v in
                                  (("n_stimuli", n_stimuli), ("n_time", n_time), ("n_units", n_units)))  # fmt: skip
    n_classes = check_int("n_classes", n_classes, minimum=2)
    onset = check_int("onset", onset, minimum=0, maximum=n_time)
    signal = check_number("signal", signal)
    rng = np.random.default_rng(seed)
    label = rng.integers(0, n_classes, size=n_stimuli)
    states = rng.normal(size=(n_stimuli, n_time, n_units))
    states[:, onset:, 0] += signal * label[:, None]
    return Recording({layer: states}, metadata={"label": label})


DYNAMICS = ("line", "point", "cycle")


def make_dynamics(
    kind: str,
    *,
    n_trials: int = 20,
    n_steps: int = 200,
    n_units: int = 32,
    noise: float = 0.05,
    seed: int | None = 0,
) -> np.ndarray:
    """Noisy trials (trial, time, unit) of a planar system embedded in ``n_units`` by a random orthonormal map.

    "line": a line attractor (x1 persists, x2 decays by 0.9 per step); "point": a point attractor (both
    decay by 0.9); "cycle": a limit cycle (the Hopf normal form, radius 1, 0.2 rad per step). Every
    step adds Gaussian noise of s.d. ``noise`` to the latent state, and each unit independent noise of
    s.d. ``noise / 2`` (so the units are not confined to a plane); trials start at random points.

    Examples
    --------
    >>> make_dynamics("cycle", n_trials=2, n_steps=5, n_units=3).shape
    (2, 5, 3)
    """
    from ._validation import check_option, check_seed

    kind = check_option("kind", kind, DYNAMICS)
    n_trials, n_steps = check_int("n_trials", n_trials), check_int("n_steps", n_steps, minimum=2)
    n_units = check_int("n_units", n_units, minimum=2)
    noise = check_number("noise", noise, minimum=0)
    rng = np.random.default_rng(check_seed(seed))
    z = np.empty((n_trials, n_steps, 2))
    z[:, 0] = rng.uniform(-1.5, 1.5, size=(n_trials, 2))
    for t in range(n_steps - 1):
        x, y = z[:, t, 0], z[:, t, 1]
        if kind == "cycle":
            radius, angle = np.hypot(x, y), np.arctan2(y, x)
            radius = radius + 0.1 * radius * (1 - radius**2)
            step = np.stack([radius * np.cos(angle + 0.2), radius * np.sin(angle + 0.2)], axis=1)
        else:
            step = np.stack([x if kind == "line" else 0.9 * x, 0.9 * y], axis=1)
        z[:, t + 1] = step + noise * rng.normal(size=(n_trials, 2))
    basis = np.linalg.qr(rng.normal(size=(n_units, 2)))[0]
    return z @ basis.T + noise / 2 * rng.normal(size=(n_trials, n_steps, n_units))
