"""The one thread policy of rnnprobe's own worker pools (``n_jobs=`` of pairwise analyses), and of its
batched solvers (:func:`small_blas`).

A pool of ``n_jobs`` threads whose work calls BLAS (numpy, scipy) or torch would run ``n_jobs`` x
(cores) threads with the libraries' default thread counts: more threads than cores, which contend for
them. While a pool runs, each library is limited to
``max(1, cores // n_jobs)`` threads (threadpoolctl for BLAS/OpenMP, ``torch.set_num_threads`` when torch is
loaded), and the previous settings come back afterwards, also on error. With ``n_jobs=1`` nothing is
limited: the libraries use their own threads. A pool's threads are kept for the next pool of that size
(``_borrowed_pool``), never lent to two callers at once; each task sets its worker's torch thread count.

Limits opened at once by several threads (a pool per task of a multi-threaded dask worker, or two
analyses run from two threads) go through one record (``_LibraryLimits``): BLAS's thread count is the
process's, so the settings before the first limit are kept and, when one ends, rebuilt from those and the
limits still open, whatever the order in which they end; OpenMP's and torch's belong to each thread, which
gives back its own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any


def threads_per_worker(n_jobs: int, threads: int | None = None) -> int:
    """Library threads per worker so that n_jobs workers use ``threads`` (default: the cores) once."""
    return max(1, (threads or os.cpu_count() or 1) // max(1, n_jobs))


@contextlib.contextmanager
def worker_pool(n_jobs: int, *, threads: int | None = None) -> Iterator[Callable[..., Any]]:
    """A ``map`` over ``n_jobs`` threads under the thread policy above (the built-in ``map`` for one job).
    ``threads``: the budget the workers share (default the cores; the batched solvers pass
    :func:`library_threads`, so that a limit the user set is kept).

    Examples
    --------
    >>> with worker_pool(2) as pmap:
    ...     list(pmap(abs, [-1, -2, 3]))
    [1, 2, 3]
    """
    if n_jobs <= 1:
        yield map
        return
    per_worker = threads_per_worker(n_jobs, threads)
    with _LIMITS.limited(per_worker), _borrowed_pool(n_jobs) as pool:
        futures: list[Future] = []

        def pmap(fn: Callable[..., Any], *iterables: Any) -> Iterator[Any]:
            batch = [pool.submit(_call_limited, per_worker, fn, *args) for args in zip(*iterables, strict=False)]
            futures.extend(batch)
            return (future.result() for future in batch)

        try:
            yield pmap
        except BaseException:  # an error or Ctrl-C: the work not yet started is dropped, not run
            for future in futures:
                future.cancel()
            raise
        finally:
            wait(futures)  # what runs ends before the limits are given back


@contextlib.contextmanager
def task_pool(n_tasks: int, *, threads: int | None = None) -> Iterator[Callable[..., Any]]:
    """:func:`worker_pool` for ``n_tasks`` independent pieces of work on the libraries' current thread budget
    (``threads``, default :func:`library_threads`): one worker of one thread per task, at most the budget;
    the built-in ``map`` for one task or a budget of one thread.

    Examples
    --------
    >>> with task_pool(3, threads=2) as pmap:
    ...     list(pmap(abs, [-1, -2, 3]))
    [1, 2, 3]
    """
    threads = library_threads() if threads is None else threads
    with worker_pool(min(threads, n_tasks), threads=threads) as pmap:
        yield pmap


def equal_shares(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices of ``range(n)``, as equal as can be (empty ones where ``parts`` > ``n``): the
    shares of rows, units or samples that workers take.

    Examples
    --------
    >>> equal_shares(5, 2)
    [slice(0, 2, None), slice(2, 5, None)]
    """
    import numpy as np

    edges = np.linspace(0, n, parts + 1).astype(int).tolist()
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def in_shares(fn: Callable[[slice], Any], n: int, *, threads: int | None = None) -> list[Any]:
    """``[fn(share)]`` for each of :func:`equal_shares` of ``range(n)`` that is not empty, in order, one share
    per thread of the libraries' budget (``threads``, default :func:`library_threads`) on :func:`task_pool`'s
    workers; a single share runs on the calling thread, with no pool of its own (one thread, as inside another
    pool's worker).

    Examples
    --------
    >>> in_shares(lambda part: (part.start, part.stop), 5, threads=2)
    [(0, 2), (2, 5)]
    """
    threads = library_threads() if threads is None else threads
    shares = [part for part in equal_shares(n, threads) if part.stop > part.start]
    if len(shares) == 1:
        return [fn(shares[0])]
    with task_pool(len(shares), threads=threads) as pmap:
        return list(pmap(fn, shares))


def library_threads() -> int:
    """The threads the libraries may use now: torch's intra-op count when torch is loaded, else BLAS's."""
    torch = _loaded_torch()
    if torch is not None:
        return max(1, torch.get_num_threads())
    pools = thread_controller().info()
    return max([1, *(pool.get("num_threads", 1) for pool in pools if pool.get("user_api") == "blas")])


_CONTROLLERS: dict[int, Any] = {}  # {number of imported modules: threadpoolctl's view of the loaded libraries}


def thread_controller() -> Any:
    """The ``threadpoolctl.ThreadpoolController`` of the native thread pools loaded now. Finding them reads the
    process's loaded libraries (about 1.5 ms, as much as a small RDM movie's half on a second core), so it
    is found again only when modules were imported since (new native libraries come with new modules).
    """
    from threadpoolctl import ThreadpoolController

    key = len(sys.modules)
    if key not in _CONTROLLERS:
        _CONTROLLERS.clear()
        _CONTROLLERS[key] = ThreadpoolController()
    return _CONTROLLERS[key]


@contextlib.contextmanager
def small_blas() -> Iterator[None]:
    """BLAS limited to one thread while batched solvers run many small products (decoding's folds x time
    steps of n x p matrices): OpenBLAS's threads cost more than they give there (600 x 30 x 128 decoding,
    AMD EPYC: 0.26 s with 2 BLAS threads, 0.10 s with 1), while torch keeps its threads for the batched
    solves. The previous limit comes back afterwards.
    """
    with _LIMITS.limited(1, user_api="blas"):
        yield


def blas_threads() -> int:
    """The most threads any loaded BLAS library (numpy's, scipy's own) may use now; 1 with none loaded.

    Examples
    --------
    >>> from threadpoolctl import threadpool_limits
    >>> with threadpool_limits(limits=1, user_api="blas"):
    ...     blas_threads()
    1
    """
    libraries = thread_controller().select(user_api="blas").lib_controllers
    return max([1, *(library.num_threads for library in libraries)])


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """:func:`small_blas` where a BLAS library may use more than one thread now, else nothing (the check takes
    about 7 us, the limit 65 us): around calls into scipy's LAPACK, which runs on scipy's own OpenBLAS beside
    numpy's. Each library's threads, once woken, spin for a while; a solve of scipy's between products of
    numpy's, each on two threads, has three or four busy threads on two cores (ridge of one time step, 600 x 128
    and 5 folds: 4.6-7.3 ms on one thread, 120-156 ms on two; a product after each small triangular solve 1.3 ->
    9.4 ms; AMD EPYC Zen 3). Problems large enough for BLAS threads to pay (a Cholesky factor of thousands of
    rows) call scipy without it.

    Examples
    --------
    >>> from threadpoolctl import threadpool_limits
    >>> with threadpool_limits(limits=2, user_api="blas"), one_blas_thread():
    ...     blas_threads()
    1
    """
    with small_blas() if blas_threads() > 1 else contextlib.nullcontext():
        yield


def _call_limited(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a pool's worker, whose own torch (and OpenMP) thread count is set to ``threads`` first
    where it differs: a worker thread kept from an earlier pool keeps the count it was given then.
    """
    torch = _loaded_torch()
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return fn(*args)


def _loaded_torch() -> Any:
    """The torch module once imported; None before, and while another thread is still importing it: a module
    being imported is in ``sys.modules`` half initialised, without the thread settings (a pool's worker that
    imports torch for the first time left the others failing with AttributeError).
    """
    torch = sys.modules.get("torch")
    return torch if hasattr(torch, "get_num_threads") and hasattr(torch, "set_num_threads") else None


class Shelf:
    """What callers keep idle for the next one (``idle``: a dict or a list), behind one ``lock``. A forked child,
    which has none of the parent's threads (nor, perhaps, the lock's holder), starts with a new lock and nothing
    idle (:meth:`forget`).
    """

    def __init__(self, idle: Any) -> None:
        self.idle, self.lock = idle, threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.forget)

    def forget(self) -> None:
        """A new lock, nothing idle."""
        self.lock = threading.Lock()
        self.idle.clear()


_POOLS = Shelf({})  # {workers: a pool no one is using}, kept for the next worker_pool


@contextlib.contextmanager
def _borrowed_pool(n_workers: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``n_workers`` threads for this caller alone: the idle one kept from an earlier pool of that
    size, else a new one; kept afterwards for the next. Starting threads and joining them cost 0.3-0.6 ms a
    pool on this VM (AMD EPYC), a tenth of a small RDM movie's time on two threads. A pool in use is never
    lent twice, so a pool opened inside a worker's task, or by another thread, gets its own threads.
    """
    with _POOLS.lock:
        pool = _POOLS.idle.pop(n_workers, None)
    pool = pool or ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="rnnprobe-worker")
    try:
        yield pool
    finally:
        with _POOLS.lock:
            kept = _POOLS.idle.setdefault(n_workers, pool)
        if kept is not pool:  # another of that size is idle already: this one's threads end
            pool.shutdown(wait=False)


class _LibraryLimits:
    """The process's record of the BLAS limits open now, and each thread's own OpenMP and torch limits (see
    the module docstring).

    BLAS's thread count (OpenBLAS, MKL) is the process's: the settings before the first limit are kept,
    and when any limit ends they are rebuilt from those and the limits still open. OpenMP's count (and
    torch's, which follows OpenMP's and seeds new threads' from the last one set) belongs to the thread
    that sets it: each limit sets and gives back its own thread's, as the thread found them.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[int] = []  # the BLAS limits open, in entry order
        self.blas: Any = None  # threadpoolctl's view of the BLAS libraries when the first limit opened
        self.kept: Any = None  # its limiter of the first limit: it restores the settings before it

    @contextlib.contextmanager
    def limited(self, threads: int, *, user_api: str | None = None) -> Iterator[None]:
        """BLAS (``user_api="blas"``) or every library (None: BLAS, OpenMP and torch) limited to ``threads``
        while the context runs.
        """
        with self.blas_limited(threads):
            if user_api == "blas":
                yield
                return
            torch = _loaded_torch()
            previous = torch.get_num_threads() if torch is not None else None  # before OpenMP's limit moves it
            openmp = thread_controller().limit(limits=threads, user_api="openmp")
            try:
                if torch is not None:
                    torch.set_num_threads(threads)
                yield
            finally:
                openmp.restore_original_limits()
                if torch is not None:
                    torch.set_num_threads(previous)

    @contextlib.contextmanager
    def blas_limited(self, threads: int) -> Iterator[None]:
        """BLAS limited to ``threads`` through the process's record."""
        with self.lock, _any_thread_sets_blas():
            if self.open:
                self.blas.limit(limits=threads)
            else:
                self.blas = thread_controller().select(user_api="blas")
                self.kept = self.blas.limit(limits=threads)
            self.open.append(threads)
        try:
            yield
        finally:
            with self.lock, _any_thread_sets_blas():
                self.open.remove(threads)
                self.kept.restore_original_limits()
                for still_open in self.open:
                    self.blas.limit(limits=still_open)
                if not self.open:
                    self.blas, self.kept = None, None


@contextlib.contextmanager
def _any_thread_sets_blas() -> Iterator[None]:
    """Since threadpoolctl 3.8, only one thread, the first to set it, may set OpenBLAS's process-wide thread
    count (the others' calls do nothing) until that thread's ``with threadpool_limits`` ends. The record's
    changes, made under its lock from whichever thread, are released of that rule around them.
    """
    import threadpoolctl

    release = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if release is not None:
        release(force=True)
    try:
        yield
    finally:
        if release is not None:
            release(force=True)


_LIMITS = _LibraryLimits()  # the process's one record
