"""The alignment metrics from sums over stimuli: a dask-backed layer no wider than its stimuli.

A layer with no more units than stimuli is as large as its centred states, but every metric needs of
them only sums over stimuli: per fold of stimuli (one fold in sample), each time step's mean, its Gram
matrix Xc'Xc and its cross products Xc'Yc with the other side's steps, each centred on its fold's means.
Dask sums them over chunks of stimuli (every step of a side in one task, at most BLOCK_BYTES of states) in
passes over the layers: the means (and the finite check), then the centred Gram matrices (and, for
debiased CKA, each stimulus's squared norm), then the cross products, in blocks of pairs of steps whose
products fit in BLOCK_BYTES. A training set's moments combine its
folds' (Chan, Golub and LeVeque 1979: the products plus each fold's n_k (m_k - m)(m_k - m)'), and the
held-out fold's own moments give the held-out value (:func:`._core.project_held_out`). Arrays and wider
dask-backed layers enter the same sums, as their principal coordinates where they have more units than
stimuli (:mod:`.blockwise`), so no side's Gram matrix is larger than n x n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import check_finite_layer
from ..blockwise import BLOCK_BYTES, chunk_reduce, group_sums
from . import _core
from .inputs import Settings, check_varies, folds


@dataclass
class _Side:
    """One side's states (stimulus, time, unit) as a dask array chunked along stimuli only, and per fold its
    steps' means (fold, time, unit) and centred Gram matrices (fold, time, unit, unit); in sample, for
    debiased CKA, each stimulus's squared norm about the mean (stimulus, time).
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
    sides: Sequence[Any],
    labels: Sequence[str],
    pairs: Sequence[tuple[int, int, int, int]],
    settings: Settings,
    *,
    sources: Sequence[Any],
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """:func:`.engine.pair_values` where some sides are dask arrays (stimulus, time, unit)."""
    import dask

    fold = _folds(sides[0].shape[0], settings)
    moments = _moments(_aligned(sides), labels, fold, debiased=settings.metric == "debiased_cka")
    prepared = [[[_prepare(side, t, fold, k, settings, label) for t in range(side.x.shape[1])]
                 for side, label in zip(moments, labels, strict=True)] for k in range(len(fold.splits))]  # fmt: skip
    if settings.metric == "pwcca":  # coordinates of a wider layer: PWCCA reads its variates' loadings from it
        for k, (train, _) in enumerate(fold.splits):
            for side, values, units in zip(prepared[k], sides, sources, strict=True):
                for t, representation in enumerate(side if units is not None else []):
                    representation.b = np.asarray(values[train, t]) - representation.mean
    total, start = np.zeros(len(pairs)), 0
    for block in _pair_blocks(pairs, moments, len(fold.splits)):
        (crosses,) = dask.compute(chunk_reduce(_block_crosses, [side.x for side in moments], [fold.groups],
                                               [side.means for side in moments], block))  # fmt: skip
        for k in range(len(fold.splits)):
            total[start : start + len(block)] += _fold_values(block, crosses, k, prepared[k], moments, fold, settings,
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


def _aligned(sides: Sequence[Any]) -> list[Any]:
    """The sides as float64 dask arrays chunked alike along stimuli (a task's chunks of every side's steps
    within BLOCK_BYTES together, at most the first dask side's chunks), whole along time and units.
    """
    import dask.array as da

    native = next(int(side.chunks[0][0]) for side in sides if not isinstance(side, np.ndarray))
    per_stimulus = sum(side.shape[1] * side.shape[2] for side in sides) * 8
    rows = max(1, min(native, BLOCK_BYTES // per_stimulus))
    return [da.asarray(side).astype(np.float64).rechunk((rows, -1, -1)) for side in sides]


def _moments(arrays: list[Any], labels: Sequence[str], fold: _Folds, *, debiased: bool) -> list[_Side]:
    """Every side's per-fold means (a first pass, with the finite check) and centred Gram matrices (and, in
    sample, its stimuli's squared norms about the mean).
    """
    import dask
    import dask.array as da

    sides = [_Side(x) for x in arrays]
    means, finite = dask.compute([group_sums(x, fold.groups, len(fold.counts), mean=True) for x in arrays],
                                 [da.isfinite(x).all() for x in arrays])  # fmt: skip
    for side, label, mean, ok in zip(sides, labels, means, finite, strict=True):
        check_finite_layer(bool(ok), label)
        side.means = mean
    norms = [((side.x - side.means[0]) ** 2).sum(axis=2) if debiased else None for side in sides]
    grams, norms = dask.compute(chunk_reduce(_block_grams, arrays, [fold.groups], means), norms)
    for side, gram, row_sq in zip(sides, grams, norms, strict=True):
        side.grams, side.row_sq = gram, row_sq
    return sides


def _block_grams(blocks: list[np.ndarray], groups: np.ndarray, means: list) -> list[np.ndarray]:
    """Each side's per-fold, per-step Gram matrices (fold, time, unit, unit) of a chunk of stimuli, each
    stimulus centred on its fold's means.
    """
    out = []
    for block, mean in zip(blocks, means, strict=True):
        centred = block - mean[groups]
        out.append(np.array([[_core.gram(part[:, t]) for t in range(block.shape[1])]
                             for part in _by_fold(centred, groups, mean.shape[0])]))  # fmt: skip
    return out


def _by_fold(centred: np.ndarray, groups: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """A chunk's stimuli of each fold (the chunk itself for one fold)."""
    return [centred] if n_folds == 1 else [centred[groups == k] for k in range(n_folds)]


def _block_crosses(blocks: list[np.ndarray], groups: np.ndarray, means: list, pairs: list) -> list[np.ndarray]:
    """Per pair (i, a, j, b), the per-fold products (fold, p, q) of side i's step a with side j's step b over
    a chunk of stimuli, each stimulus centred on its fold's means: per pair of sides and fold, one matrix
    product of the steps its pairs need.
    """
    out = {}
    for i, j in dict.fromkeys((pair[0], pair[2]) for pair in pairs):
        steps_a = sorted({pair[1] for pair in pairs if pair[0] == i and pair[2] == j})
        steps_b = sorted({pair[3] for pair in pairs if pair[0] == i and pair[2] == j})
        folds_a = _by_fold((blocks[i] - means[i][groups])[:, steps_a], groups, means[i].shape[0])
        folds_b = _by_fold((blocks[j] - means[j][groups])[:, steps_b], groups, means[j].shape[0])
        products = np.array(
            [x.reshape(len(x), -1).T @ y.reshape(len(y), -1) for x, y in zip(folds_a, folds_b, strict=True)]
        )
        products = products.reshape(len(folds_a), len(steps_a), blocks[i].shape[2], len(steps_b), -1)
        for a, b in ((pair[1], pair[3]) for pair in pairs if pair[0] == i and pair[2] == j):
            out[i, a, j, b] = products[:, steps_a.index(a), :, steps_b.index(b)]
    return [out[pair] for pair in pairs]


def _combine(counts: np.ndarray, means_a: np.ndarray, means_b: np.ndarray, products: np.ndarray,
             keep: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(n, means, centred product) of the folds ``keep`` together: their products plus each fold's
    n_k (m_k - m)(m_k - m)' (Chan, Golub and LeVeque 1979).
    """
    n = counts[keep]
    ma, mb = n @ means_a[keep] / n.sum(), n @ means_b[keep] / n.sum()
    offsets = np.einsum("k,kp,kq->pq", n, means_a[keep] - ma, means_b[keep] - mb)
    return int(n.sum()), ma, mb, products[keep].sum(axis=0) + offsets


def _prepare(side: _Side, t: int, fold: _Folds, k: int, settings: Settings, label: str) -> _core.Prepared:
    """Step t of a side prepared from its training folds' moments (fold k's alignment)."""
    means, grams = side.means[:, t], side.grams[:, t]
    n, mean, _, product = _combine(fold.counts, means, means, grams, fold.training(k))
    row_sq = None if side.row_sq is None else side.row_sq[:, t]
    total = _core.spread(float(np.trace(product)), mean, n)
    prepared = _core.from_moments(product, mean, n, total, settings.metric, row_sq=row_sq, alpha=settings.alpha,
                                  variance=settings.variance, fit=fold.held_out)  # fmt: skip
    check_varies(prepared.total, label, t, held_out=fold.held_out)
    return prepared


def _pair_blocks(pairs: Sequence[tuple[int, int, int, int]], sides: list[_Side], n_folds: int) -> list[list]:
    """The pairs in consecutive blocks whose per-fold cross products fit in BLOCK_BYTES together."""
    blocks, size = [[]], 0
    for pair in pairs:
        nbytes = n_folds * sides[pair[0]].x.shape[2] * sides[pair[2]].x.shape[2] * 8
        if blocks[-1] and size + nbytes > BLOCK_BYTES:
            blocks.append([])
            size = 0
        blocks[-1].append(pair)
        size += nbytes
    return blocks


def _fold_values(block: list, crosses: Sequence[np.ndarray], k: int, prepared: list, sides: list[_Side],
                 fold: _Folds, settings: Settings, sources: Sequence[Any]) -> np.ndarray:  # fmt: skip
    """The values of fold k (in sample: the only one) for a block of pairs and their per-fold cross products."""
    from .engine import fit, pwcca_read

    keep, metric = fold.training(k), settings.metric
    parts = {}
    for pair, cross in zip(block, crosses, strict=True):
        i, a, j, b = pair
        means = sides[i].means[:, a], sides[j].means[:, b]
        product = _combine(fold.counts, *means, cross, keep)[3]
        held_out = (fold.counts[k], (means[0][k], means[1][k]), (sides[i].grams[k, a], sides[j].grams[k, b]), cross[k])
        parts[pair] = (prepared[i][a], prepared[j][b], product, held_out if fold.held_out else None)

    def canonical(pair: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        first, second, product, held_out = parts[pair]
        if held_out is None:
            return _core.canonical(first, second, product)[:2]
        fitted = fit(first, second, "cca", 1.0, product)
        return fitted.u, _core.held_out_correlations(_core.project_held_out(fitted, *held_out))

    if metric == "pwcca" and any(units is not None for units in sources):
        return pwcca_read(block, prepared, sources, fold.splits[k][0], canonical)
    out = []
    for first, second, product, held_out in parts.values():
        if held_out is None:
            out.append(_core.pair_value(first, second, metric, product))
        else:
            fitted = fit(first, second, metric, settings.alpha, product)
            out.append(_core.held_out_score(fitted, _core.project_held_out(fitted, *held_out), metric))
    return np.array(out)
