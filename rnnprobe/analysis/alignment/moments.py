"""The alignment metrics from sums over stimuli: a dask-backed layer no wider than its stimuli.

A layer with no more units than stimuli is as large as its centred states, but every metric needs of
them only sums over stimuli: per fold of stimuli (one fold in sample), each time step's mean, its Gram
matrix Xc'Xc and its cross products Xc'Yc with the other side's steps, each centred on its fold's means.
Dask sums them over chunks of stimuli in passes over the layers: the means (and the finite check), then
the centred Gram matrices (and, for debiased CKA, each stimulus's squared norm), then the cross products,
in groups of pairs of steps whose products fit in BLOCK_BYTES. A training set's moments combine its
folds' (Chan, Golub and LeVeque 1979: the products plus each fold's n_k (m_k - m)(m_k - m)'), and the
held-out fold's own moments give the held-out value (:func:`._core.project_held_out`). Arrays and the
principal coordinates of wider dask-backed layers (:mod:`.blockwise`) enter the same sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import check_finite_layer
from ..blockwise import BLOCK_BYTES
from . import _core
from .inputs import Settings, check_varies, folds


@dataclass
class _Step:
    """One side's time step: its states (stimulus, unit) as a dask array and, per fold, the units' means
    (fold, unit) and centred Gram matrices (fold, unit, unit); each stimulus's squared norm where needed.
    """

    x: Any
    means: np.ndarray | None = None
    grams: np.ndarray | None = None
    row_sq: np.ndarray | None = None


@dataclass
class _Folds:
    """Each stimulus's fold, the folds' sizes, the (train, test) positions; ``held_out``: cross-validated
    (else one fold of every stimulus, trained and scored in sample).
    """

    groups: np.ndarray
    counts: np.ndarray
    splits: list[tuple[np.ndarray, np.ndarray]]
    held_out: bool

    def training(self, k: int) -> np.ndarray:
        """The folds fold k's alignment is fitted on."""
        return np.arange(len(self.counts)) != k if self.held_out else np.ones(1, dtype=bool)


def moment_values(
    sides: Sequence[Sequence[Any]],
    labels: Sequence[str],
    pairs: Sequence[tuple[int, int, int, int]],
    settings: Settings,
    *,
    sources: Sequence[Any],
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """:func:`.engine.pair_values` where some steps are dask arrays (stimulus, unit) no wider than the stimuli."""
    import dask

    fold = _folds(sides[0][0].shape[0], settings)
    steps = _moments(sides, labels, fold, debiased=settings.metric == "debiased_cka")
    prepared = [[[_prepare(step, fold, k, settings, label, t) for t, step in enumerate(side)]
                 for side, label in zip(steps, labels, strict=True)] for k in range(len(fold.splits))]  # fmt: skip
    if settings.metric == "pwcca":  # coordinates of a wider layer: PWCCA reads its variates' loadings from it
        for k, (train, _) in enumerate(fold.splits):
            for side, values, units in zip(prepared[k], sides, sources, strict=True):
                for t, representation in enumerate(side if units is not None else []):
                    representation.b = np.asarray(values[t])[train] - representation.mean
    total, start = np.zeros(len(pairs)), 0
    for block in _pair_blocks(pairs, steps, len(fold.splits)):
        crosses = dask.compute(*[_over_chunks([steps[i][a].x, steps[j][b].x], fold.groups, steps[i][a].means,
                                              steps[j][b].means) for i, a, j, b in block])  # fmt: skip
        for k in range(len(fold.splits)):
            total[start : start + len(block)] += _fold_values(block, crosses, k, prepared[k], steps, fold, settings,
                                                              sources)  # fmt: skip
            if progress is not None:
                progress(len(block))
        start += len(block)
    return total / len(fold.splits)


def _folds(n: int, settings: Settings) -> _Folds:
    if settings.cv is None:
        return _Folds(np.zeros(n, dtype=np.intp), np.array([n]), [(np.arange(n), np.zeros(0, np.intp))], False)
    splits = folds(n, settings.cv, settings.seed)
    groups = np.zeros(n, dtype=np.intp)
    for k, (_, test) in enumerate(splits):
        groups[test] = k
    return _Folds(groups, np.bincount(groups, minlength=len(splits)), splits, True)


def _moments(sides: Sequence[Sequence[Any]], labels: Sequence[str], fold: _Folds, *, debiased: bool) -> list:
    """Every step's per-fold means (a first pass, with the finite check) and centred Gram matrices (and, in
    sample, its stimuli's squared norms about the mean).
    """
    import dask
    import dask.array as da

    chunks = next(x.chunks[0] for side in sides for x in side if not isinstance(x, np.ndarray))
    steps = [[_Step(da.asarray(x).astype(np.float64).rechunk((chunks, -1))) for x in side] for side in sides]
    flat = [step for side in steps for step in side]
    sums = dask.compute(*[_over_chunks([step.x], fold.groups, len(fold.counts)) for step in flat])
    finite = iter(ok for _, ok in sums)
    for side, label in zip(steps, labels, strict=True):
        check_finite_layer(all([next(finite) for _ in side]), label)
    for step, (total, _) in zip(flat, sums, strict=True):
        step.means = total / fold.counts[:, None]
    grams = [_over_chunks([step.x, step.x], fold.groups, step.means, step.means) for step in flat]
    norms = [((step.x - step.means[0]) ** 2).sum(axis=1) if debiased else None for step in flat]
    for step, gram, row_sq in zip(flat, *dask.compute(grams, norms), strict=True):
        step.grams, step.row_sq = gram, row_sq
    return steps


def _over_chunks(arrays: list[Any], groups: np.ndarray, *args: Any) -> Any:
    """Over chunks of stimuli of dask arrays (stimulus, unit) chunked alike: the per-fold sums of one array
    (and whether it is finite), or the per-fold products of two centred on their folds' means (``args``);
    the chunks' results added in a tree, one delayed value: a pass over the arrays holding only sums.
    """
    import dask

    bounds = np.cumsum((0, *arrays[0].chunks[0]))
    function = _block_sums if len(arrays) == 1 else _block_products
    blocks = zip(*[x.to_delayed().ravel() for x in arrays], strict=True)
    parts = [dask.delayed(function)(*chunk, groups[a:b], *args)
             for chunk, a, b in zip(blocks, bounds[:-1], bounds[1:], strict=True)]  # fmt: skip
    while len(parts) > 1:
        pairs = [parts[i : i + 2] for i in range(0, len(parts), 2)]
        parts = [dask.delayed(_add)(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return parts[0]


def _add(first: Any, second: Any) -> Any:
    """Two chunks' results together: arrays added, finite flags joined."""
    if isinstance(first, tuple):
        return first[0] + second[0], first[1] and second[1]
    return first + second


def _block_sums(block: np.ndarray, groups: np.ndarray, n_folds: int) -> tuple[np.ndarray, bool]:
    """(per-fold sums (fold, unit), whether every value is finite) of a chunk of stimuli."""
    sums = np.zeros((n_folds, block.shape[1]))
    np.add.at(sums, groups, block)
    return sums, bool(np.isfinite(block).all())


def _block_products(x: np.ndarray, y: np.ndarray, groups: np.ndarray, means_x: np.ndarray, means_y: np.ndarray
                    ) -> np.ndarray:  # fmt: skip
    """Per fold, the chunk's x'y (fold, p, q), each stimulus centred on its fold's means."""
    xc, yc = x - means_x[groups], y - means_y[groups]
    if x is y:
        return np.stack([_core.gram(xc[groups == k]) for k in range(means_x.shape[0])])
    return np.stack([xc[groups == k].T @ yc[groups == k] for k in range(means_x.shape[0])])


def _combine(counts: np.ndarray, means_a: np.ndarray, means_b: np.ndarray, products: np.ndarray,
             keep: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(n, means, centred product) of the folds ``keep`` together: their products plus each fold's
    n_k (m_k - m)(m_k - m)' (Chan, Golub and LeVeque 1979).
    """
    n = counts[keep]
    ma, mb = n @ means_a[keep] / n.sum(), n @ means_b[keep] / n.sum()
    offsets = np.einsum("k,kp,kq->pq", n, means_a[keep] - ma, means_b[keep] - mb)
    return int(n.sum()), ma, mb, products[keep].sum(axis=0) + offsets


def _prepare(step: _Step, fold: _Folds, k: int, settings: Settings, label: str, t: int) -> _core.Prepared:
    """One step prepared from its training folds' moments (fold k's alignment)."""
    n, mean, _, product = _combine(fold.counts, step.means, step.means, step.grams, fold.training(k))
    prepared = _core.from_moments(product, mean, n, float(np.trace(product)), settings.metric, row_sq=step.row_sq,
                                  alpha=settings.alpha, variance=settings.variance, fit=fold.held_out)  # fmt: skip
    check_varies(prepared.total, label, t, held_out=fold.held_out)
    return prepared


def _pair_blocks(pairs: Sequence[tuple[int, int, int, int]], steps: list, n_folds: int) -> list[list]:
    """The pairs in consecutive blocks whose per-fold cross products fit in BLOCK_BYTES together."""
    blocks, size = [[]], 0
    for pair in pairs:
        i, a, j, b = pair
        nbytes = n_folds * steps[i][a].x.shape[1] * steps[j][b].x.shape[1] * 8
        if blocks[-1] and size + nbytes > BLOCK_BYTES:
            blocks.append([])
            size = 0
        blocks[-1].append(pair)
        size += nbytes
    return blocks


def _fold_values(block: list, crosses: Sequence[np.ndarray], k: int, prepared: list, steps: list, fold: _Folds,
                 settings: Settings, sources: Sequence[Any]) -> np.ndarray:  # fmt: skip
    """The values of fold k (in sample: the only one) for a block of pairs and their per-fold cross products."""
    from .engine import pwcca_read

    keep, metric = fold.training(k), settings.metric
    parts = {}
    for pair, cross in zip(block, crosses, strict=True):
        i, a, j, b = pair
        first, second = steps[i][a], steps[j][b]
        product = _combine(fold.counts, first.means, second.means, cross, keep)[3]
        held_out = (fold.counts[k], (first.means[k], second.means[k]), (first.grams[k], second.grams[k]), cross[k])
        parts[pair] = (prepared[i][a], prepared[j][b], product, held_out if fold.held_out else None)

    def canonical(pair: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        first, second, product, held_out = parts[pair]
        if held_out is None:
            return _core.canonical(first, second, product)[:2]
        fitted = _core.fit_pair(first, second, "cca", product)
        return fitted.u, _core.held_out_correlations(_core.project_held_out(fitted, *held_out))

    if metric == "pwcca" and any(units is not None for units in sources):
        return pwcca_read(block, prepared, sources, fold.splits[k][0], canonical)
    out = []
    for first, second, product, held_out in parts.values():
        if held_out is None:
            out.append(_core.pair_value(first, second, metric, product))
        else:
            fitted = _core.fit_pair(first, second, metric, product)
            out.append(_core.held_out_score(fitted, _core.project_held_out(fitted, *held_out), metric))
    return np.array(out)
