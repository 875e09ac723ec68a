"""LAPACK's Cholesky solve and leading symmetric eigenpairs without the interpreter lock.

scipy's Python wrappers of LAPACK (``scipy.linalg.lapack.dposv``) hold the interpreter lock while the
routine runs, so solves on several threads take turns (ridge's 512 x 512 systems, AMD EPYC: 1.0x on two
threads). scipy also publishes the same routines to C through ``scipy.linalg.cython_lapack``; called
through ``ctypes``, which releases the lock during a foreign call, they run side by side (2000 x 30 x 512
decoding with generalization on two threads, in one process: 0.64 -> 0.53 s). The routine and its
arguments are the ones scipy's wrapper passes (upper triangle), so the solutions are the same numbers.
Where the C routine cannot be had (another scipy build), scipy's wrapper serves.
"""

from __future__ import annotations

import ctypes
import functools
import re
from typing import Any

import numpy as np

from .parallel import one_blas_thread

_INT = ctypes.POINTER(ctypes.c_int)
_DOUBLE = ctypes.POINTER(ctypes.c_double)
_CHAR, _ARRAY = ctypes.c_char_p, ctypes.c_void_p
_POSV = ctypes.CFUNCTYPE(None, _CHAR, _INT, _INT, _ARRAY, _INT, _ARRAY, _INT, _INT)
SIGNATURE = b"void (char *, int *, int *, double *, int *, double *, int *, int *)"  # the C declaration _POSV calls
_SYEVR = ctypes.CFUNCTYPE(None, _CHAR, _CHAR, _CHAR, _INT, _ARRAY, _INT, _DOUBLE, _DOUBLE, _INT, _INT, _DOUBLE, _INT,
                          _ARRAY, _ARRAY, _INT, _ARRAY, _ARRAY, _INT, _ARRAY, _INT, _INT)  # fmt: skip
SYEVR_SIGNATURE = (
    b"void (char *, char *, char *, int *, double *, int *, double *, double *, int *, int *, double *, int *, "
    b"double *, double *, int *, int *, double *, int *, int *, int *, int *)"
)


def _c_posv() -> Any:
    """``dposv`` of scipy's C interface to LAPACK as a ctypes function, or None."""
    return _c_routine("dposv", SIGNATURE, _POSV)


@functools.cache
def _c_routine(name: str, expected: bytes, prototype: Any) -> Any:
    """LAPACK's routine ``name`` of scipy's C interface as a ctypes function of ``prototype``, or None where scipy
    has no such routine or declares it otherwise than ``expected`` (e.g. 64-bit integers: ctypes would pass the
    wrong types).
    """
    try:
        from scipy.linalg import cython_lapack

        capsule = cython_lapack.__pyx_capi__[name]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        pointer = ctypes.pythonapi.PyCapsule_GetPointer
        pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        signature = get_name(capsule)
        address = pointer(capsule, signature)
    except (ImportError, AttributeError, KeyError, ValueError):  # pragma: no cover - another scipy build
        return None
    if re.sub(rb"__pyx_t_\w+_d\b", b"double", signature) != expected:  # pragma: no cover - another ABI
        return None
    return prototype(address) if address else None


def posv_batch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x (m, n, k), info (m,)) of the symmetric positive definite systems ``a[i] x[i] = b[i]`` (a (m, n, n),
    b (m, n, k)) by LAPACK's ``dposv`` on each ``a[i]``'s upper triangle, as ``scipy.linalg.lapack.dposv(a[i],
    b[i])``; info[i] > 0: not positive definite (x[i] is then not a solution).

    The matrices and right-hand sides are copied into LAPACK's column order once for all, and each call
    passes addresses into those copies: the interpreter's share of a call (its lock held) is then a ctypes
    call, not two array copies and pointer objects (8 systems of 128 unknowns on one thread: 0.56 -> 0.33 ms;
    two threads solving 40 each at once: 1.66x against one thread solving both, AMD EPYC).
    """
    m, n, k = b.shape
    factors = np.array(a.transpose(0, 2, 1), dtype=np.float64, order="C")  # column order; overwritten by factors
    x = np.array(b.transpose(0, 2, 1), dtype=np.float64, order="C")  # column order; overwritten by solutions
    info = np.zeros(m, dtype=np.int64)
    routine = _c_posv()
    with one_blas_thread():  # (scipy's OpenBLAS: its threads would spin beside numpy's)
        if routine is None:  # pragma: no cover - another scipy build
            from scipy.linalg.lapack import dposv

            for i in range(m):
                _, solution, info[i] = dposv(a[i], b[i])
                x[i] = solution.T
            return x.transpose(0, 2, 1), info
        size, columns, status = ctypes.c_int(n), ctypes.c_int(k), ctypes.c_int(0)
        size_ref, columns_ref, status_ref = ctypes.byref(size), ctypes.byref(columns), ctypes.byref(status)
        for i in range(m):
            routine(b"U", size_ref, columns_ref, factors[i].ctypes.data, size_ref, x[i].ctypes.data, size_ref,
                    status_ref)  # fmt: skip
            info[i] = status.value
    return x.transpose(0, 2, 1), info


def leading_eigh(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (k,), vectors (n, k)), ascending, of the ``k`` largest eigenpairs of the symmetric ``a`` (n, n; its
    lower triangle) by LAPACK's MRRR (``dsyevr``), as ``scipy.linalg.eigh(a, subset_by_index=[n - k, n - 1],
    driver="evr")``: the same routine and arguments, the same numbers. Through scipy's C interface, which runs
    without the interpreter lock (scipy's wrapper holds it: two threads of 3 of 180 took turns, 1.06x one).
    Only the k vectors are formed (3 of 180: 3.1 -> 2.1 ms; 10 of 512: 46 -> 14-20 ms, AMD EPYC Zen 3).
    """
    n = len(a)
    routine = _c_routine("dsyevr", SYEVR_SIGNATURE, _SYEVR)
    if routine is None:  # pragma: no cover - another scipy build
        from scipy.linalg import eigh

        with one_blas_thread():
            return eigh(a, subset_by_index=[n - k, n - 1], driver="evr")
    matrix = np.array(a, dtype=np.float64, order="F")  # (overwritten)
    values, vectors = np.empty(n), np.empty((k, n))  # (the vectors in LAPACK's column order: rows here)
    support, found, status = np.empty(2 * max(1, k), dtype=np.intc), ctypes.c_int(0), ctypes.c_int(0)
    ints = [ctypes.c_int(v) for v in (n, n, n - k + 1, n, n)]  # n, lda, il, iu, ldz
    bounds, tolerance = ctypes.c_double(0.0), ctypes.c_double(0.0)  # (vl, vu unused: by index; abstol 0, scipy's)

    def call(work: np.ndarray, lwork: int, iwork: np.ndarray, liwork: int) -> None:
        size, lda, il, iu, ldz = (ctypes.byref(v) for v in ints)
        routine(b"V", b"I", b"L", size, matrix.ctypes.data, lda, ctypes.byref(bounds), ctypes.byref(bounds), il, iu,
                ctypes.byref(tolerance), ctypes.byref(found), values.ctypes.data, vectors.ctypes.data, ldz,
                support.ctypes.data, work.ctypes.data, ctypes.byref(ctypes.c_int(lwork)), iwork.ctypes.data,
                ctypes.byref(ctypes.c_int(liwork)), ctypes.byref(status))  # fmt: skip

    # (on one BLAS thread: scipy's LAPACK calls its own OpenBLAS, whose threads, once woken, spin for a while on
    # the cores that numpy's next products need: a 200 x 200 problem then a product on two threads, 15 -> 7 ms)
    with one_blas_thread():
        work, iwork = np.empty(1), np.empty(1, dtype=np.intc)
        call(work, -1, iwork, -1)  # the workspace query
        lwork, liwork = int(work[0]), int(iwork[0])
        call(np.empty(lwork), lwork, np.empty(liwork, dtype=np.intc), liwork)
    if status.value != 0 or found.value != k:
        raise np.linalg.LinAlgError(f"dsyevr: info {status.value}, {found.value} of {k} eigenpairs found")
    return values[:k], vectors.T


SUBSET_MIN = 128  # rows from which the largest eigenpairs alone may be found (below, every one is as fast)
SUBSET_SHARE = 1 / 8  # the largest share of the rows for which they are (256 of 512 took 1.7x every one)


def largest_eigh(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, vectors), ascending as numpy's ``eigh``, of the symmetric ``a`` (..., n, n: a stack of matrices
    too; their lower triangles): the ``k`` largest alone by :func:`leading_eigh` (matrix by matrix) where ``k`` is
    at most ``SUBSET_SHARE`` of the rows, from ``SUBSET_MIN`` rows on; else every eigenpair by numpy's ``eigh``
    (LAPACK's divide and conquer). The last k columns are the leading vectors either way.
    """
    n = a.shape[-1]
    if not SUBSET_MIN <= n or not 0 < k <= n * SUBSET_SHARE:
        return np.linalg.eigh(a)
    if a.ndim == 2:
        return leading_eigh(a, k)
    values, vectors = np.empty((*a.shape[:-2], k)), np.empty((*a.shape[:-1], k))
    for index in np.ndindex(*a.shape[:-2]):  # (dPCA's significance: 15 of 180 x 180, 32 -> 17 ms)
        values[index], vectors[index] = leading_eigh(a[index], k)
    return values, vectors
