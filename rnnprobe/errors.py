"""Errors and warnings raised by rnnprobe.

Every error names the argument at fault, echoes what was received and says how
to fix it, in one message::

    rnnprobe.errors.UnknownNameError: layers: 'lstm:cell' is not recordable in
    LSTMModel. Available: 'lstm', 'lstm:output', 'lstm:h_n', ... Pass one of these names.

All errors derive from :class:`RnnprobeError`; those about a bad value also
derive from :class:`ValueError` and those about a bad type from
:class:`TypeError`, so code that catches the built-in exceptions keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "ConvergenceError",
    "IncompleteStoreError",
    "MeasurementError",
    "ModelCallError",
    "NonFiniteError",
    "NonFiniteWarning",
    "RnnprobeError",
    "RnnprobeWarning",
    "ShapeError",
    "StoreExistsError",
    "StoreFormatError",
    "StoreNotFoundError",
    "UnknownNameError",
    "describe",
    "format_choices",
]


class RnnprobeError(Exception):
    """Base class of every error raised by rnnprobe."""


class ArgumentError(RnnprobeError, ValueError):
    """An argument has a value rnnprobe cannot use."""


class ArgumentTypeError(RnnprobeError, TypeError):
    """An argument has a type rnnprobe cannot use."""


class UnknownNameError(ArgumentError):
    """A name (layer, column, method, ...) is not among the valid ones."""


class NonFiniteError(ArgumentError):
    """An array holds NaN or infinite values where rnnprobe needs finite numbers."""


class ShapeError(ArgumentError):
    """An array argument has the wrong shape or length."""


class StoreExistsError(RnnprobeError, FileExistsError):
    """A store path exists and overwriting it was not requested."""


class IncompleteStoreError(RnnprobeError, ValueError):
    """An on-disk recording was not finished (interrupted while writing)."""


class StoreFormatError(RnnprobeError, ValueError):
    """A path is not an rnnprobe store, or one written by an unknown version."""


class StoreNotFoundError(RnnprobeError, FileNotFoundError):
    """A store path does not exist."""


class ModelCallError(RnnprobeError, RuntimeError):
    """Calling the model on the given stimuli failed."""


class ConvergenceError(RnnprobeError, RuntimeError):
    """An iterative solver did not reach its tolerance; no partial result is returned."""


class MeasurementError(RnnprobeError, RuntimeError):
    """A timing run in a fresh interpreter (:func:`rnnprobe.analysis.machine.compare_blas_kernels`) failed."""


class RnnprobeWarning(UserWarning):
    """Base class of rnnprobe warnings."""


class NonFiniteWarning(RnnprobeWarning):
    """Recorded states contain NaN or infinite values."""


def describe(value: Any, *, max_len: int = 80) -> str:
    """Describe a received value briefly: type, and shape/dtype for arrays.

    Parameters
    ----------
    value : object
        Whatever the user passed.
    max_len : int
        Longest ``repr`` echoed for scalars and small containers.

    Returns
    -------
    str
        For example ``"ndarray of shape (3, 4) and dtype float32"``.

    Examples
    --------
    >>> import numpy as np
    >>> describe(np.zeros((3, 4), dtype="float32"))
    'ndarray of shape (3, 4) and dtype float32'
    >>> describe("abc")
    "'abc'"
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(value, (int, float)):
        dims = ", ".join(str(int(s)) for s in shape)
        if len(shape) == 1:
            dims += ","
        return f"{type(value).__name__} of shape ({dims}) and dtype {_dtype_name(dtype)}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{type(value).__name__} of length {len(value)}"
    text = repr(value)
    if len(text) > max_len:
        text = text[: max_len - 3] + "..."
    return text


def _dtype_name(dtype: Any) -> str:
    text = str(dtype)
    return text[len("torch.") :] if text.startswith("torch.") else text


def format_choices(choices: Iterable[Any], *, limit: int = 30) -> str:
    """Quote and join valid choices for an error message, eliding a long list."""
    items = [repr(c) for c in choices]
    if not items:
        return "(none)"
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items) - limit} more)"
    return ", ".join(items)
