"""Values of many pairs from per-representation preparations, in sample or on held-out folds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any

import numpy as np

from .._arrays import namespace, send
from ..parallel import task_pool, worker_pool
from . import _core
from .inputs import Settings, check_identifiable, check_varies, folds


def pair_values(
    sides: Sequence[Any],
    labels: Sequence[str],
    pairs: Sequence[tuple[int, int, int, int]],
    settings: Settings,
    *,
    n_jobs: int | None = None,
    progress: Callable[[int], Any] | None = None,
    sources: Sequence[Any] | None = None,
    device: Any = None,
) -> np.ndarray:
    """The metric for each (side_i, step_i, side_j, step_j) pair, averaged over folds.

    ``sides`` holds one (stimulus, time, unit) array per side (a layer's time steps, or a model's one);
    every step is prepared once per fold and reused by all its pairs; a dask array (a dask-backed layer no
    wider than its stimuli) enters as sums over its stimuli (:mod:`.moments`). ``sources``: for each side,
    the lazy states (stimulus, time, unit) behind it where it holds coordinates of a dask-backed layer
    (PWCCA reads its loadings from them), else None. ``device``: a torch device (checked) on which every
    side is held and every preparation and pair computed, in float64 (sides read whole: numpy arrays).
    ``n_jobs``: the steps' preparations and the pairs in that many threads (1: one by one, on the BLAS
    library's own threads); None: on the libraries' threads, one each (:func:`..parallel.task_pool`; one
    by one on a device other than the CPU).
    """
    sources = sources or [None] * len(sides)
    if any(not isinstance(side, np.ndarray) for side in sides):  # a dask-backed layer no wider than its stimuli
        from .blockwise import compress_wide
        from .moments import moment_values

        sides, sources = compress_wide(sides, sources)
        return moment_values(sides, labels, pairs, settings, sources=sources, progress=progress)
    if device is not None:
        sides = [send(side, device) for side in sides]
    with _pool(len(pairs), n_jobs, device) as pmap:
        return _fold_values(sides, labels, pairs, settings, pmap, progress, sources)


def _fold_values(sides: Sequence[Any], labels: Sequence[str], pairs: Sequence[tuple[int, int, int, int]],
                 settings: Settings, pmap: Callable[..., Any], progress: Any,
                 sources: Sequence[Any]) -> np.ndarray:  # fmt: skip
    """:func:`pair_values` of sides in memory, the preparations and pairs mapped by ``pmap``."""
    total = np.zeros(len(pairs))
    for train, test in folds(sides[0].shape[0], settings.cv, settings.seed):
        chosen = slice(None) if settings.cv is None else train
        steps = [(side, t) for side in sides for t in range(side.shape[1])]
        flat = iter(pmap(partial(_prepare_step, rows=chosen, settings=settings), steps))
        prepared = [[next(flat) for _ in range(side.shape[1])] for side in sides]
        for side, label in zip(prepared, labels, strict=True):
            for t, representation in enumerate(side):
                check_varies(representation.total, label, t, held_out=settings.cv is not None)
        held_out = None if settings.cv is None else [side[test] for side in sides]
        if settings.metric == "pwcca" and any(units is not None for units in sources):
            canonical = partial(_canonical, prepared=prepared, held_out=held_out)
            total += pwcca_read(pairs, prepared, sources, chosen, canonical)
            if progress is not None:
                progress(len(pairs))
            continue
        value = partial(_pair_value, prepared=prepared, held_out=held_out, metric=settings.metric,
                        alpha=settings.alpha)  # fmt: skip
        total += np.asarray(_counted(pmap(value, pairs), progress))
    return total / (settings.cv or 1)


def _pair_value(
    pair: tuple[int, int, int, int], *, prepared: list, held_out: list | None, metric: str, alpha: float
) -> float:
    """One pair's value: in sample, or fitted on the training fold and scored on the held-out one."""
    i, a, j, b = pair
    first, second = prepared[i][a], prepared[j][b]
    if held_out is None:
        return _core.pair_value(first, second, metric)
    fitted = fit(first, second, metric, alpha)
    return _core.held_out_value(fitted, held_out[i][:, a], held_out[j][:, b], metric)


def fit(first: _core.Prepared, second: _core.Prepared, metric: str, alpha: float,
        product: np.ndarray | None = None) -> _core.Fitted:  # fmt: skip
    """:func:`._core.fit_pair` where its directions are identifiable (:func:`.inputs.check_identifiable`)."""
    check_identifiable(first, second, metric, alpha)
    return _core.fit_pair(first, second, metric, product)


def _canonical(pair: tuple[int, int, int, int], *, prepared: list, held_out: list | None) -> tuple:
    """(canonical directions of the pair's first side, their correlations: in sample, or held out)."""
    i, a, j, b = pair
    first, second = prepared[i][a], prepared[j][b]
    if held_out is None:
        return _core.canonical(first, second)[:2]
    fitted = fit(first, second, "cca", 1.0)  # the canonical directions, without weights
    return fitted.u, _core.held_out_correlations(_core.held_out(fitted, held_out[i][:, a], held_out[j][:, b], "cca"))


def pwcca_read(pairs: Sequence[tuple[int, int, int, int]], prepared: list, sources: Sequence[Any], rows: Any,
               canonical: Callable[[tuple[int, int, int, int]], tuple]) -> np.ndarray:  # fmt: skip
    """PWCCA where a side holds coordinates of a dask-backed layer's units: each pair's canonical directions
    and correlations (``canonical``), then the weights of the variates of such a side read from its layer
    (on its stimuli ``rows``), every pair's in one pass (:func:`.blockwise.read_weights`).
    """
    from .blockwise import read_weights

    correlations, requests = [], []
    for pair in pairs:
        u, rho = canonical(pair)
        i, a = pair[:2]
        correlations.append(rho)
        units = None if sources[i] is None else sources[i][:, a]
        first = prepared[i][a]
        requests.append(_core.pwcca_weights(first, u) if units is None else (units, _core.variates(first, u)))
    weights = read_weights(requests, rows)
    return np.array([_core.weighted_mean(w, rho) for w, rho in zip(weights, correlations, strict=True)])


def _prepare_step(step: tuple[Any, int], *, rows: Any, settings: Settings) -> _core.Prepared:
    """One step (side, time position) of a side prepared on its stimuli ``rows``."""
    side, t = step
    x = side[rows, t]
    x = np.ascontiguousarray(x) if namespace(x) is np else x.contiguous()
    return _core.prepare(x, settings.metric, alpha=settings.alpha, variance=settings.variance,
                         sigma=settings.sigma, fit=settings.cv is not None)  # fmt: skip


def _pool(n_pairs: int, n_jobs: int | None, device: Any) -> Any:
    """A ``map`` in threads (BLAS and LAPACK release the GIL) under the one thread policy
    (:mod:`rnnprobe.analysis.parallel`): ``n_jobs`` of them, or (None) the libraries' threads, one each,
    for ``n_pairs`` pairs; the built-in ``map`` on a device other than the CPU.
    """
    if device is not None and device.type != "cpu":
        return nullcontext(map)
    return task_pool(n_pairs) if n_jobs is None else worker_pool(n_jobs)


def _counted(results: Iterable[float], progress: Any) -> list[float]:
    """The results, each counted by ``progress`` as it comes."""
    out = []
    for result in results:
        out.append(result)
        if progress is not None:
            progress(1)
    return out
