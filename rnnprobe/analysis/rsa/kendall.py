"""Kendall's tau-a of RDM vectors (rsatoolbox's ``"tau-a"``): (concordant - discordant pairs) / (n (n - 1) / 2),
ties counting as neither, the measure Nili et al. (2014) recommend for categorical model RDMs.

A model RDM of two values (the usual categorical model: one dissimilarity within a category, another between
them) needs no pairwise count: with the other RDM's midranks r and the n1 entries of the larger value, the
Mann-Whitney statistic U = sum(r over those entries) - n1 (n1 + 1) / 2 counts the cross pairs that the other RDM
orders the same way (ties a half), so concordant - discordant = 2 U - n0 n1. Every two-valued row against every
other row is then one matrix product of 0/1 indicators with midranks, exact in float64 (half-integers, sums far
below 2^53): ranking the other rows is most of the cost (2 categorical models against 200 RDMs of 92 conditions,
6x faster than rsatoolbox, AMD EPYC), and a permutation test, whose data are ranked once, gathers it as a dot
product (512 permutations of 5 models: 2.34 s -> 10.5 ms). A row of a few values (up to ``FEW_LEVELS``: nested
categories) is counted level by level in each other row's order (one sort of that row, then a cumulative sum per
level: 2.7-3.5x faster than scipy for 3 such models against 20 RDMs of 92 conditions). Pairs of rows of many
values are counted by Knight's algorithm, as scipy's ``kendalltau`` (which rsatoolbox runs) counts them, but with
each row sorted once rather than both rows of every pair again: one row's codes in the other's order, scipy's
count of the discordant pairs in them (a Fenwick tree, without the interpreter lock), and the ties (5 continuous
models against 20 RDMs of 92 conditions 4.7x faster than rsatoolbox). A permutation test's permuted models are
never sorted (:meth:`Rows.permuted`): 512 permutations of 5 continuous models, 2.7 -> 0.35-0.4 s on one thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from .._ranks import rank_rows
from ..parallel import in_shares


def two_valued(vectors: np.ndarray) -> np.ndarray:
    """Whether each row (no NaN) takes at most two distinct values."""
    low, high = vectors.min(axis=1, keepdims=True), vectors.max(axis=1, keepdims=True)
    return ((vectors == low) | (vectors == high)).all(axis=1)


def indicators(vectors: np.ndarray) -> np.ndarray:
    """0/1 float rows marking each two-valued row's entries of its larger value (every entry of a constant row)."""
    return (vectors == vectors.max(axis=1, keepdims=True)).astype(np.float64)


def _counts(upper: np.ndarray) -> tuple[np.ndarray, float]:
    """(offset, pairs) with concordant - discordant = 2 upper . r - offset for rows of :func:`indicators` ``upper``
    over n entries and another RDM's midranks r (2 U - n0 n1, U = upper . r - n1 (n1 + 1) / 2; a constant row,
    n1 = n: 0), and the n (n - 1) / 2 pairs that divide it.
    """
    n = upper.shape[1]
    n1 = upper.sum(axis=1)
    return n1 * (n1 + 1) + (n - n1) * n1, n * (n - 1) / 2


def affine(upper: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, shift) with tau-a = scale * (upper . midranks) + shift (a permutation test's observed values and
    null, from the data's mean midranks).
    """
    offset, pairs = _counts(upper)
    return 2 / pairs, -offset / pairs


def _two_valued_tau(levels: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Tau-a (len(levels), len(others)) of two-valued rows ``levels`` with any rows ``others``, to the rounding of
    one division: the counts are whole numbers and half-integers, below 2^53.
    """
    upper = indicators(levels)
    offset, pairs = _counts(upper)
    return (2 * (upper @ rank_rows(others).T) - offset[:, None]) / pairs


FEW_LEVELS = 16  # rows of at most this many values are counted level by level; beyond, scipy's merge sort per pair
WORK = 2**20  # elements of the level-by-level count's work arrays (other rows x entries)


def _sorted_runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's order (ties in any order: stable sorts of floats took twice as long), and at each place of it
    whether a new value starts there.
    """
    order = np.argsort(rows, axis=1)
    ordered = np.take_along_axis(rows, order, axis=1)
    new = np.ones(rows.shape, dtype=bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=new[:, 1:])
    return order, new


def _dense_levels(order: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows' values as their order among the row's distinct values (int32 codes 0..G-1), and G per row, from
    their :func:`_sorted_runs`.
    """
    dense = np.cumsum(new, axis=1, dtype=np.int32) - 1
    codes = np.empty_like(dense)
    np.put_along_axis(codes, order, dense, axis=1)
    return codes, dense[:, -1] + 1


def _run_starts(new: np.ndarray) -> np.ndarray:
    """At each place of rows' sorted orders (:func:`_sorted_runs`), the place where its run of equal values
    starts.
    """
    return np.maximum.accumulate(np.where(new, np.arange(new.shape[1]), 0), axis=1)


def _few_level_tau(levels: tuple[np.ndarray, np.ndarray], others: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Tau-a of rows of at most ``FEW_LEVELS`` values with any rows, both given by their :func:`_sorted_runs`,
    exactly: in each other row's order, an entry b at level h counts the entries before its run of ties (smaller
    there) at levels below h less those above (sign(h - level), summed), G passes over the entries per pair.
    """
    codes, counts = _dense_levels(*levels)
    n = codes.shape[1]
    out = np.empty((len(codes), len(others[0])))
    step = max(1, WORK // n)
    for start in range(0, len(others[0]), step):
        order, starts = others[0][start : start + step], _run_starts(others[1][start : start + step])
        running = np.zeros((len(order), n + 1), dtype=np.int32)
        starts += (n + 1) * np.arange(len(order))[:, None]  # (flat, into running)
        for i, (row, count) in enumerate(zip(codes, counts, strict=True)):
            placed = row[order]  # the levels in each other row's order
            total = np.zeros(len(order), dtype=np.int64)
            for h in range(count):
                np.cumsum(np.sign(h - placed), axis=1, out=running[:, 1:])
                total += np.where(placed == h, np.take(running, starts), 0).sum(axis=1)
            out[i, start : start + step] = total / (n * (n - 1) / 2)
    return out


def _scipy_tau(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tau-a from scipy's tau-b, pair by pair: tau_a = tau_b sqrt((n0 - t_a)(n0 - t_b)) / n0 (0 for a constant row),
    where scipy lacks the count :func:`discordant_counter` uses. The pairs in equal shares on the library threads.
    """
    from scipy.stats import kendalltau

    n0 = a.shape[1] * (a.shape[1] - 1) / 2

    def ties(v: np.ndarray) -> float:
        _, counts = np.unique(v, return_counts=True)
        return float((counts * (counts - 1) / 2).sum())

    ties_a, ties_b = [ties(v) for v in a], [ties(v) for v in b]
    out = np.empty((a.shape[0], b.shape[0]))
    pairs = [(i, j) for i in range(len(a)) for j in range(len(b))]

    def share(part: slice) -> None:
        for i, j in pairs[part]:
            tau_b = kendalltau(a[i], b[j]).statistic
            out[i, j] = 0.0 if np.isnan(tau_b) else tau_b * np.sqrt((n0 - ties_a[i]) * (n0 - ties_b[j])) / n0

    in_shares(share, len(pairs))
    return np.clip(out, -1, 1)


@functools.cache
def discordant_counter() -> Callable[[np.ndarray, np.ndarray], int] | None:
    """Scipy's count of discordant pairs (``scipy.stats._stats._kendall_dis``, the Fenwick tree that ``kendalltau``
    runs, without the interpreter lock): ``count(x, y)`` for x non-decreasing whole numbers from 1 and y whole
    numbers from 1 (0 would never end), the pairs i < k with x_i < x_k and y_i > y_k. It is private to scipy, so
    it is checked on a case with ties first; None where it is missing or counts otherwise (then
    :func:`_scipy_tau`).
    """
    try:
        from scipy.stats._stats import _kendall_dis
    except ImportError:
        return None
    try:  # pairs (0, 3) and (2, 3) discordant; (0, 1), tied in x, not counted
        works = int(_kendall_dis(np.array([1, 1, 2, 3], np.intp), np.array([2, 1, 3, 1], np.intp))) == 2
    except (TypeError, ValueError):
        works = False
    return _kendall_dis if works else None


def _tied_pairs(new: np.ndarray) -> np.ndarray:
    """The pairs of tied entries of each row (int64), from where new values start in its sorted order
    (:func:`_sorted_runs`; every row starts one).
    """
    pairs = np.zeros(len(new), np.int64)
    tied = np.flatnonzero(~new.all(axis=1))  # (rows without ties: none to count)
    if len(tied):
        starts = np.flatnonzero(new[tied])
        lengths = np.diff(np.append(starts, len(tied) * new.shape[1]))
        pairs[tied] = np.bincount(starts // new.shape[1], lengths * (lengths - 1) // 2, minlength=len(tied))
    return pairs


def _joint_ties(ranks: np.ndarray, codes: np.ndarray) -> int:
    """The pairs tied in both rows, from one row's ranks in its order (non-decreasing) and the other's codes there."""
    keys = np.sort(ranks * (int(codes.max()) + 1) + codes)
    return int(_tied_pairs(np.r_[True, keys[1:] != keys[:-1]][None])[0])


HEAD = 64  # a row's first entries that decide, where they hold more than FEW_LEVELS values, that it holds many


UNKNOWN, NOT_TWO, TWO, FEW, MANY = range(5)  # what a row of :class:`Rows` is known to hold: two, few or many values


class Rows:
    """One argument of :func:`tau_a`: its rows (``values``), those whose pairs are still to count (``left``), what
    each is known to hold (``kinds``), the :func:`_sorted_runs` of those a stage needs and their codes
    (:meth:`ranked`), each row sorted once (200 data RDMs of 92 conditions: 25 ms) and kept for later calls. The
    rows of a permutation of the entries (:meth:`permuted`) take their values, order and codes from these rows,
    each only where a stage asks for it, and share their kinds.
    """

    def __init__(self, values: np.ndarray | None, *, source: tuple[Rows, np.ndarray] | None = None) -> None:
        self._values, self._source = values, source
        n = len(values) if source is None else len(source[0].kinds)
        self.left = np.arange(n)
        self.kinds = np.full(n, UNKNOWN, np.int8) if source is None else source[0].kinds
        self._order = np.empty((0, 0), dtype=np.intp)
        self._new = np.empty((0, 0), dtype=bool)
        self._sorted = np.zeros(n, dtype=bool)
        self._ranked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def values(self) -> np.ndarray:
        """The rows (a permutation's: gathered when first asked for)."""
        if self._values is None:
            rows, index = self._source
            self._values = np.take(rows.values, index, axis=1)
        return self._values

    def runs(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The sorted runs of ``rows`` (default: those left), sorting those not sorted yet (a permutation's rows:
        the order of the rows they permute through the inverse permutation, all at once).
        """
        rows = self.left if rows is None else rows
        missing = rows[~self._sorted[rows]]
        if len(missing) and self._source is not None:
            source, index = self._source
            order, self._new = source.runs(np.arange(len(self.kinds)))
            inverse = np.empty_like(index)
            inverse[index] = np.arange(len(index))
            self._order, self._sorted[:] = inverse[order], True
        elif len(missing):
            if not self._order.size:
                self._order, self._new = np.empty(self.values.shape, np.intp), np.empty(self.values.shape, bool)
            self._order[missing], self._new[missing] = _sorted_runs(self.values[missing])
            self._sorted[missing] = True
        return self._order[rows], self._new[rows]

    def ranked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row's codes (its values as their ranks 1, 2, ... among the row's distinct values, intp), those codes
        in the row's order (non-decreasing) and its pairs of tied entries, from its sorted runs; made once (a
        permutation's: the codes gathered).
        """
        if self._ranked is None and self._source is not None:
            source, index = self._source
            codes, ranks, ties = source.ranked()
            self._ranked = np.take(codes, index, axis=1), ranks, ties
        elif self._ranked is None:
            order, new = self.runs(np.arange(len(self.kinds)))
            ranks = np.cumsum(new, axis=1, dtype=np.intp)
            codes = np.empty_like(ranks)
            np.put_along_axis(codes, order, ranks, axis=1)
            self._ranked = codes, ranks, _tied_pairs(new)
        return self._ranked

    def take(self, rows: np.ndarray) -> Rows:
        """These rows alone (indices), with what is known of them: kinds, order and codes (rows not sorted again)."""
        taken = Rows(self.values[rows])
        taken.kinds[:] = self.kinds[rows]
        if self._order.size:
            taken._order, taken._new, taken._sorted = self._order[rows], self._new[rows], self._sorted[rows]
        if self._ranked is not None:
            taken._ranked = tuple(part[rows] for part in self._ranked)
        return taken

    def permuted(self, index: np.ndarray) -> Rows:
        """The rows with their entries gathered by ``index``, a permutation of them (a permutation test's models with
        their conditions permuted), never sorted: their kinds are these rows' and their order and codes come
        from these rows' (see the class).
        """
        return Rows(None, source=(self, index))

    def all_many(self) -> bool:
        """Whether every row holds more than ``FEW_LEVELS`` values (deciding it where not known yet)."""
        self.left = np.arange(len(self.kinds))
        return not self.of_kind(TWO).any() and not self.of_kind(FEW).any()

    def of_kind(self, kind: int) -> np.ndarray:
        """Whether each row left holds two values (``TWO``) or at most ``FEW_LEVELS`` (``FEW``, asked after
        ``TWO``), deciding it for the rows not known yet. A row is sorted whole for ``FEW`` only where its first
        ``HEAD`` entries take so few values (a continuous RDM's first entries rule it out).
        """
        kinds = self.kinds[self.left]
        unknown = self.left[kinds == (UNKNOWN if kind == TWO else NOT_TWO)]
        if len(unknown) and kind == TWO:
            self.kinds[unknown] = np.where(two_valued(self.values[unknown]), TWO, NOT_TWO)
        elif len(unknown):
            head = np.sort(self.values[unknown, :HEAD], axis=1)
            self.kinds[unknown] = MANY
            maybe = unknown[(head[:, 1:] != head[:, :-1]).sum(axis=1) < FEW_LEVELS]
            if len(maybe):
                self.kinds[maybe] = np.where(self.runs(maybe)[1].sum(axis=1) <= FEW_LEVELS, FEW, MANY)
        return self.kinds[self.left] == kind


def _gathered_tau(gathered: np.ndarray, ranks: np.ndarray, ties: list[int], tie: int, count: Callable) -> np.ndarray:
    """Tau-a of rows x, given as their codes in the order of one row y (``gathered``, (k, n)), with y (``ranks``: its
    codes in its order, from 1): :func:`discordant_counter`'s count D per row, then (n0 - t_x - t_y + t_xy - 2 D) / n0
    with the pairs tied in x (``ties``), in y (``tie``) and in both (Knight's algorithm, as in scipy's
    ``kendalltau``, which sorts both rows again for every pair).
    """
    n0 = ranks.size * (ranks.size - 1) // 2
    out = np.empty(len(gathered))
    for i, theirs in enumerate(gathered):
        joint = _joint_ties(ranks, theirs) if ties[i] and tie else 0
        out[i] = (n0 - ties[i] - tie + joint - 2 * int(count(ranks, theirs))) / n0
    return out


def _many_valued_tau(x: Rows, y: Rows) -> np.ndarray:
    """Tau-a of the rows of ``x`` and ``y`` left, exactly, each row sorted once (:meth:`Rows.ranked`): x's codes in
    each row of y's order, then :func:`_gathered_tau`. The pairs in equal shares on the library threads.
    """
    count = discordant_counter()
    if count is None:
        return _scipy_tau(x.values[x.left], y.values[y.left])
    (codes, _, ties_x), (_, ranks, ties_y) = x.ranked(), y.ranked()
    codes, ties_x, order_y = codes[x.left], ties_x[x.left].tolist(), y.runs()[0]
    out = np.empty((len(x.left), len(y.left)))
    pairs = [(i, j) for j in range(len(y.left)) for i in range(len(x.left))]

    def share(part: slice) -> None:
        for i, j in pairs[part]:
            row = y.left[j]
            out[i, j] = _gathered_tau(codes[i : i + 1].take(order_y[j], axis=1), ranks[row], ties_x[i : i + 1],
                                      int(ties_y[row]), count)[0]  # fmt: skip

    in_shares(share, len(pairs))
    return out


def permuted_tau(x: Rows, y: Rows, index: np.ndarray) -> np.ndarray | None:
    """Tau-a (len(index), len(x), len(y)) of the rows of ``x`` with their entries gathered by each row of ``index``
    (permutations: a permutation test's models, their conditions permuted) and the rows of ``y``, where every row of
    both holds many values: x's codes gathered once into each of y's orders through all the permutations, then
    :func:`_gathered_tau` (no array op per pair but the count, which runs without the interpreter lock: chunks of
    permutations on two threads share the cores). None where a row holds few values or scipy lacks the count.
    """
    count = discordant_counter()
    if count is None or not (x.all_many() and y.all_many()):
        return None
    (codes, _, ties_x), (_, ranks, ties_y) = x.ranked(), y.ranked()
    out = np.empty((len(index), len(x.kinds), len(y.kinds)))
    ties = ties_x.tolist()
    for j, order in enumerate(y.runs(np.arange(len(y.kinds)))[0]):
        through = np.take(index, order, axis=1)  # y's order, through each permutation
        for p, permuted in enumerate(through):
            out[p, :, j] = _gathered_tau(np.take(codes, permuted, axis=1), ranks[j], ties, int(ties_y[j]), count)
    return out


def _stage(kind: int, mine: Rows, theirs: Rows) -> tuple[np.ndarray, np.ndarray | None]:
    """(whether each row of ``mine`` left is of ``kind`` (:meth:`Rows.of_kind`), the tau-a of those with the rows of
    ``theirs`` left, None where there are none): from midranks for ``TWO``, level by level for ``FEW``.
    """
    found = mine.of_kind(kind)
    if not found.any():
        return found, None
    rows = mine.left[found]
    if kind == TWO:
        return found, _two_valued_tau(mine.values[rows], theirs.values[theirs.left])
    return found, _few_level_tau(mine.runs(rows), theirs.runs())


def tau_a(a: np.ndarray | Rows, b: np.ndarray | Rows) -> np.ndarray:
    """Kendall's tau-a (len(a), len(b)) of every row of ``a`` with every row of ``b`` (rows free of NaN): from
    midranks where either row of a pair takes two values, level by level where either takes at most
    ``FEW_LEVELS``, by :func:`_many_valued_tau` otherwise. A side's rows are checked only while the other's has
    rows left. Either side may be :class:`Rows` kept from an earlier call, whose rows are not sorted again.
    """
    x, y = (side if isinstance(side, Rows) else Rows(side) for side in (a, b))
    x.left, y.left = np.arange(len(x.kinds)), np.arange(len(y.kinds))
    out = np.empty((len(x.kinds), len(y.kinds)))
    for kind in (TWO, FEW):
        for mine, theirs in ((x, y), (y, x)):
            found, tau = _stage(kind, mine, theirs)
            if tau is not None:
                rows = mine.left[found]
                out[np.ix_(rows, theirs.left) if mine is x else np.ix_(theirs.left, rows)] = tau if mine is x else tau.T
            mine.left = mine.left[~found]
            if not len(mine.left):
                return out
    out[np.ix_(x.left, y.left)] = _many_valued_tau(x, y)
    return out
