"""One piece of arithmetic for numpy arrays and torch tensors (the ``device=`` paths of ridge and alignment).

numpy and torch name most operations alike (``matmul``, ``sqrt``, ``where``, ``linalg.eigh``, ``einsum``; the
methods ``clip``, ``diagonal``, ``mean(axis=)``); the few that differ are here, chosen by the array's kind.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def namespace(array: Any) -> ModuleType:
    """numpy, or torch for a torch tensor: the functions both name alike (``matmul``, ``sqrt``, ``linalg.eigh``,
    ``empty_like``, ... with ``out=``), so that one piece of arithmetic serves both.
    """
    if type(array).__module__.startswith("torch"):
        import torch

        return torch
    return np


def zeros(like: Any, shape: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` in ``like``'s kind, dtype and device."""
    return like.new_zeros(shape) if namespace(like) is not np else np.zeros(shape, dtype=like.dtype)


def ones(like: Any, n: int) -> Any:
    """A vector of ``n`` ones in ``like``'s kind, dtype and device."""
    return like.new_ones(n) if namespace(like) is not np else np.ones(n, dtype=like.dtype)


def to_numpy(array: Any) -> np.ndarray:
    """A numpy array of ``array`` (a tensor copied to the host)."""
    return array.cpu().numpy() if namespace(array) is not np else np.asarray(array)


def vdot(a: Any, b: Any) -> float:
    """The sum of a * b over every element (numpy's ``vdot`` of real arrays; torch's takes vectors only)."""
    if namespace(a) is np:
        return float(np.vdot(a, b))
    return float((a * b).sum())


def flip(vector: Any) -> Any:
    """A vector in reverse order (torch has no negative steps)."""
    return vector[::-1] if namespace(vector) is np else vector.flip(0)


def svdvals(matrix: Any) -> Any:
    """The singular values, largest first."""
    if namespace(matrix) is np:
        return np.linalg.svd(matrix, compute_uv=False)
    return namespace(matrix).linalg.svdvals(matrix)


def linalg_errors(array: Any) -> tuple[type[Exception], ...]:
    """The exceptions a factorisation of ``array`` raises where it fails (not positive definite, singular)."""
    if namespace(array) is np:
        return (np.linalg.LinAlgError,)
    return (namespace(array).linalg.LinAlgError,)


def send(array: Any, device: Any) -> Any:
    """``array`` as a float64 tensor on the torch ``device``: on the CPU a copy (never the caller's memory); to
    another device as it is, its floats cast there (one transfer from its memory where it is contiguous, half
    the bytes of a float32 layer's float64 copy).
    """
    import torch

    if device.type == "cpu":
        return torch.tensor(np.asarray(array, dtype=np.float64))
    host = np.ascontiguousarray(array)
    if host.dtype not in (np.float16, np.float32, np.float64):  # (longdouble, which torch does not hold, integers)
        host = host.astype(np.float64)
    return to_device(host, device).to(torch.float64)


def to_device(array: np.ndarray, device: Any) -> Any:
    """``array`` on the torch ``device`` in its own dtype: one transfer from its memory where it is contiguous."""
    import torch

    return torch.from_numpy(writable_view(np.ascontiguousarray(array))).to(device)


def writable_view(host: np.ndarray) -> np.ndarray:
    """``host`` where it is writable, else a writable view of it (recordings hand out read-only views, which
    torch refuses to wrap; it only reads this one, to copy it to a device), or a copy where the memory itself is
    read-only (a memory map).
    """
    if host.flags.writeable:
        return host
    try:
        view = host.view()
        view.flags.writeable = True
        return view
    except ValueError:
        return host.copy()
