"""The one validation layer: every public function checks its arguments through these.

Each check returns the value in the form the caller needs (an int, a float, a torch device, the
name of a layer, the positions of time steps, a finite float64 array) or raises one error from
:mod:`rnnprobe.errors` that names the argument, what was received and how to fix it.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from .errors import (
    ArgumentError,
    ArgumentTypeError,
    NonFiniteError,
    UnknownNameError,
    describe,
    format_choices,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .recording.container import Recording

MAX_SEED = 2**63 - 1
MAX_RESAMPLES = 10**7  # permutations or bootstrap samples: more would not finish (or fit) anyway


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise `UnknownNameError`.

    Examples
    --------
    >>> check_option("comparison", "corr", ["corr", "cosine"])
    'corr'
    """
    allowed = list(allowed)
    try:
        known = value in allowed
    except TypeError:  # an unhashable or uncomparable value
        known = False
    if not known:
        raise UnknownNameError(
            f"{name}: got {describe(value)}, which is not one of {format_choices(allowed)}. Pass one of these."
        )
    return value


def check_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in [minimum, maximum], else raise `ArgumentError`.

    Examples
    --------
    >>> check_int("steps", 3)
    3
    >>> check_int("n_pairs", 30, maximum=26)
    Traceback (most recent call last):
    ...
    rnnprobe.errors.ArgumentError: n_pairs: got 30. Pass an integer from 1 to 26.
    """
    is_int = isinstance(value, int) or type(value).__name__.startswith(("int", "uint"))  # numpy ints too
    if isinstance(value, bool) or not is_int or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            wanted = f"an integer from {minimum} to {maximum}"
        else:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ArgumentError(f"{name}: got {describe(value)}. Pass {wanted}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float within the bounds, else raise `ArgumentError`.

    Examples
    --------
    >>> check_number("alpha", 1e-3, minimum=0, inclusive=False)
    0.001
    >>> check_number("alpha", float("nan"), minimum=0)
    Traceback (most recent call last):
    ...
    rnnprobe.errors.ArgumentError: alpha: got nan. Pass a finite number >= 0.
    """
    if _real(value) and math.isfinite(value):
        low = minimum is not None and (value < minimum if inclusive else value <= minimum)
        high = maximum is not None and (value > maximum if inclusive else value >= maximum)
        if not (low or high):
            return float(value)
    bounds = [f"{'>=' if inclusive else '>'} {minimum:g}"] if minimum is not None else []
    bounds += [f"{'<=' if inclusive else '<'} {maximum:g}"] if maximum is not None else []
    raise ArgumentError(
        f"{name}: got {describe(value)}. Pass a finite number{' ' * bool(bounds)}{' and '.join(bounds)}."
    )


def _real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def check_probability(name: str, value: Any) -> float:
    """A level such as a significance threshold or a confidence level: a number in (0, 1).

    Examples
    --------
    >>> check_probability("level", 0.95)
    0.95
    """
    return check_number(name, value, minimum=0, maximum=1, inclusive=False)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``None`` or a non-negative integer below 2**63 (what numpy and torch both accept).

    Examples
    --------
    >>> check_seed(0), check_seed(None)
    (0, None)
    """
    if seed is None:
        return None
    return check_int(name, seed, minimum=0, maximum=MAX_SEED)


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


def check_progress(progress: Any) -> bool:
    """Whether to show a progress bar: ``None`` means only when stderr is a terminal.

    Examples
    --------
    >>> check_progress(False)
    False
    """
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    if not isinstance(progress, (bool, np.bool_)):
        raise ArgumentTypeError(
            f"progress: got {describe(progress)}. Pass True, False, or None (a bar only when stderr is a terminal)."
        )
    return bool(progress)


def check_device(device: Any, *, allow_none: bool = True) -> torch.device | None:
    """A torch device that exists on this machine (``None`` where the caller has a default).

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("nonsense")
    Traceback (most recent call last):
    ...
    rnnprobe.errors.ArgumentError: device: got 'nonsense'. Pass a torch device such as 'cpu' or 'cuda'.
    """
    if device is None and allow_none:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ArgumentError(f"device: got {describe(device)}. Pass a torch device such as 'cpu' or 'cuda'.") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(
                f"device: {device!r} was requested but torch sees no CUDA device on this machine. Use device='cpu'."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ArgumentError(
                f"device: {device!r} was requested but this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif parsed.type not in ("cpu", "mps", "xpu"):
        raise ArgumentError(f"device: got {device!r}. Pass 'cpu' or 'cuda' (a device torch can compute on).")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError(f"device: {device!r} was requested but torch sees no MPS device here. Use device='cpu'.")
    return parsed


def check_recording(recording: Any, name: str = "recording") -> Recording:
    """The argument is a :class:`~rnnprobe.Recording`.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> check_recording(Recording({"h": np.zeros((2, 3, 4))})).layers
    ['h']
    """
    from .recording.container import Recording

    if not isinstance(recording, Recording):
        raise ArgumentTypeError(
            f"{name}: got {describe(recording)}. Pass an rnnprobe Recording (rnnprobe.record(...), "
            f"rnnprobe.Recording.load(path), or rnnprobe.Recording({{'layer': array}}))."
        )
    return recording


DOT_ROWS = 8192  # values per dot product of all_finite: OpenBLAS computes dots of up to 10,000 on one thread


def all_finite(array: np.ndarray) -> bool:
    """Whether every value of a numeric array is finite (no NaN, no inf).

    Contiguous float32/float64 values are summed as squares by dot products of rows of ``DOT_ROWS`` values:
    a NaN or an inf among them makes the sum NaN or +inf whatever the order of the additions (squares are
    never negative, so no inf - inf), and finite values give a finite sum unless their squares overflow
    (then each value is checked). 2.36 M float64 values: 0.27 ms against 0.43 ms for
    ``np.isfinite(array).all()``, which allocates a mask as large as the array (AMD EPYC). Rows, not one dot
    of all values: OpenBLAS splits a long dot product across its threads, which then spin for a while and
    take a core from the worker pool that follows (a small RDM movie on two threads: 4.7 against 8.0 ms).

    Examples
    --------
    >>> import numpy as np
    >>> all_finite(np.ones((3, 4))), all_finite(np.array([1.0, np.inf])), all_finite(np.array([1e200, 1e200]))
    (True, False, True)
    """
    if array.dtype.kind not in "fc":
        return True
    if array.dtype in (np.float32, np.float64) and (array.flags.c_contiguous or array.flags.f_contiguous):
        flat = array.ravel(order="K")  # a view
        whole = flat.size - flat.size % DOT_ROWS
        rows, tail = flat[:whole].reshape(-1, DOT_ROWS), flat[whole:]
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below, value by value
            squares = np.matmul(rows[:, None], rows[:, :, None]).sum() + np.dot(tail, tail)
        if np.isfinite(squares):
            return True
    return bool(np.isfinite(array).all())


def check_finite(array: np.ndarray, *, name: str, layer: str | None = None) -> np.ndarray:
    """Refuse NaN and infinite values with their count and first positions.

    Examples
    --------
    >>> import numpy as np
    >>> check_finite(np.array([1.0, np.nan]), name="states", layer="h")
    Traceback (most recent call last):
    ...
    rnnprobe.errors.NonFiniteError: states: layer 'h' holds 1 non-finite value(s) (NaN or inf) of 2, first at (1,). ...
    """
    if all_finite(array):
        return array
    bad = ~np.isfinite(array)  # (some value is not finite: all_finite said so)
    where = f"layer {layer!r} holds" if layer is not None else "holds"
    first = ", ".join(str(tuple(int(i) for i in p)) for p in np.argwhere(bad)[:3])
    axes = " (stimulus, time, unit)" if array.ndim == 3 else ""
    raise NonFiniteError(
        f"{name}: {where} {int(bad.sum())} non-finite value(s) (NaN or inf) of {array.size}, first at "
        f"{first}{axes}. Drop those stimuli (recording.select(stimuli=...)) or time steps, or find where the "
        f"model diverges; rnnprobe computes no statistic from non-finite states."
    )


def refuse_non_finite_squares(
    states: np.ndarray, *, name: str, layer: str | None, what: str, remedy: str, overflowing: str = "squares"
) -> NoReturn:
    """Raise for ``states`` whose sums of squares (or other sums: ``overflowing``), computed by an analysis anyway,
    came out NaN or inf, so that ``what`` computed from them is not finite: NaN or inf among the states (named with
    their count and positions by :func:`check_finite`, searched only now), else finite states whose squares (sums)
    overflow (squares above about 1e154; ``remedy``: what dividing the states by a constant changes, or not).
    """
    check_finite(states, name=name, layer=layer)
    where = f"layer {layer!r} holds finite states" if layer is not None else "holds finite values"
    raise NonFiniteError(
        f"{name}: {where} (up to {float(np.abs(states).max()):.3g}) whose {overflowing} overflow, so no {what} from "
        f"them is finite. Divide the states by a constant ({remedy})."
    )


def check_grouping(values: Any, *, name: str) -> np.ndarray:
    """A metadata column's values that group stimuli into conditions (or folds, levels), refused where any is
    missing (NaN, or None in an object column): a missing value names no condition, and numpy's grouping would
    make it one (or Python's, one per NaN).
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        missing = int(np.isnan(values).sum())
    elif values.dtype.kind == "O":
        missing = sum(1 for v in values.ravel() if v is None or (isinstance(v, float) and v != v))
    else:
        missing = 0
    if missing:
        raise ArgumentError(
            f"{name}: {missing} value(s) are missing (NaN or None); a missing value names no condition or group. Drop "
            f"those stimuli first (recording.select(stimuli=...)) or give them a value."
        )
    return values


def symmetric_with_zero_diagonal(matrix: np.ndarray) -> bool:
    """Whether a square matrix is symmetric (NaN where its transpose is; values to 1e-9 of its largest) with a zero
    diagonal (to 1e-12 of its largest, NaN ignored): tolerances relative to its scale, not absolute (numpy's
    default atol of 1e-8 took any matrix of values below it for a symmetric one).
    """
    missing = np.isnan(matrix)
    if not np.array_equal(missing, missing.T):
        return False
    values = np.where(missing, 0.0, matrix)
    scale = float(np.abs(values[np.isfinite(values)]).max(initial=0.0))  # (infinities, equal or not, apart)
    with np.errstate(invalid="ignore"):  # (inf - inf where both are inf: equal, so no difference)
        asymmetry = np.where(values == values.T, 0.0, np.abs(values - values.T))
    diagonal = np.abs(np.diag(values))
    return bool(asymmetry.max(initial=0.0) <= 1e-9 * scale and diagonal.max(initial=0.0) <= 1e-12 * scale)


def check_numeric(array: Any, *, name: str) -> np.ndarray:
    """An array of numbers (bool, int or float), as numpy, else `ArgumentTypeError`.

    Examples
    --------
    >>> check_numeric([1, 2], name="x").dtype.kind
    'i'
    """
    try:
        out = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"{name}: got {describe(array)}, which is not an array ({exc}).") from None
    if out.dtype.kind not in "biuf":
        raise ArgumentTypeError(f"{name}: got {describe(array)}. Pass numbers (an int or float array).")
    return out


def check_finite_layer(finite: bool, layer: str) -> None:
    """Refuse a dask-backed layer whose selected states hold NaN or inf (``finite``: the blockwise check's
    answer; the positions are not gathered).
    """
    if not finite:
        raise NonFiniteError(
            f"recording: layer {layer!r} holds NaN or inf among the selected states; rnnprobe computes no statistic "
            f"from non-finite states. Drop those stimuli (recording.select(stimuli=...)) or time steps, or find "
            f"where the model diverges."
        )


def layer_states(
    recording: Recording,
    layer: str | None,
    *,
    time: Any = None,
    stimuli: Any = None,
    dtype: Any = np.float64,
    name: str = "recording",
    finite_checked_later: bool = False,
) -> tuple[str, np.ndarray, np.ndarray]:
    """Check and read one layer: (layer name, time positions, finite states (stimulus, time, units)).

    The states are flattened over units and cast to ``dtype``; a layer with NaN or inf among the
    selected states is refused (:func:`check_finite`), unless ``finite_checked_later``: the caller refuses them
    itself, from numbers it computes anyway (``compute_rdms``: its Gram matrices' diagonals; ``fit_pca``: its
    steps' sums of squares; ``fit_timescales`` and ``fit_tdr``: their spreads; ``condition_average``: its means), by
    :func:`refuse_non_finite_squares`, which searches these states for the error's count and positions.
    """
    check_recording(recording, name)
    layer = recording.resolve_layer(layer)
    positions = recording.time_positions(layer, time)
    states = recording.get(layer, stimuli=stimuli, time=positions, flatten=True)
    states = np.asarray(states, dtype=dtype)
    if not finite_checked_later:
        check_finite(states, name=name, layer=layer)
    return layer, positions, states
