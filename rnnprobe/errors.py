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
    "ModelCallError",
    "NonFiniteWarning",
    "RnnprobeError",
    "RnnprobeWarning",
    "ShapeError",
    "StoreExistsError",
    "StoreFormatError",
    "StoreNotFoundError",
    "UnknownNameError",
    "check_int",
    "check_option",
    "describe",
]


class RnnprobeError(Exception):
    """Base class of every error raised by rnnprobe."""


class ArgumentError(RnnprobeError, ValueError):
    """An argument has a value rnnprobe cannot use."""


class ArgumentTypeError(RnnprobeError, TypeError):
    """An argument has a type rnnprobe cannot use."""


class UnknownNameError(ArgumentError):
    """A name (layer, column, method, ...) is not among the valid ones."""


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


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise `UnknownNameError`.

    Examples
    --------
    >>> check_option("method", "corr", ["corr", "cosine"])
    'corr'
    """
    allowed = list(allowed)
    if value not in allowed:
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
