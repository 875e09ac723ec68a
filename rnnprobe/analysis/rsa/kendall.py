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
values go through scipy's ``kendalltau`` (tau-b, rescaled to tau-a by the ties), as rsatoolbox does.
"""

from __future__ import annotations

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
    """Tau-a from scipy's tau-b, pair by pair: tau_a = tau_b sqrt((n0 - t_a)(n0 - t_b)) / n0 (0 for a constant row).
    The pairs in equal shares on the library threads (``kendalltau`` runs mostly without the interpreter lock).
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


HEAD = 64  # a row's first entries that decide, where they hold more than FEW_LEVELS values, that it holds many


class _Rows:
    """One argument of :func:`tau_a`: its rows, those whose pairs are still to count (``left``), and the
    :func:`_sorted_runs` of those a stage needs, each row sorted once (200 data RDMs of 92 conditions: 25 ms).
    """

    def __init__(self, values: np.ndarray) -> None:
        self.values, self.left = values, np.arange(len(values))
        self._order = np.empty((0, 0), dtype=np.intp)
        self._new = np.empty((0, 0), dtype=bool)
        self._sorted = np.zeros(len(values), dtype=bool)

    def runs(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The sorted runs of ``rows`` (default: those left), sorting those not sorted yet."""
        rows = self.left if rows is None else rows
        missing = rows[~self._sorted[rows]]
        if len(missing):
            if not self._order.size:
                self._order, self._new = np.empty(self.values.shape, np.intp), np.empty(self.values.shape, bool)
            self._order[missing], self._new[missing] = _sorted_runs(self.values[missing])
            self._sorted[missing] = True
        return self._order[rows], self._new[rows]

    def few(self) -> np.ndarray:
        """The rows left that take at most ``FEW_LEVELS`` values: sorted whole only where their first ``HEAD``
        entries take so few (a continuous RDM's first entries rule it out: no argsort of many-valued rows, which
        a bootstrap's noise ceilings compare with each other by scipy).
        """
        head = np.sort(self.values[self.left, :HEAD], axis=1)
        maybe = self.left[(head[:, 1:] != head[:, :-1]).sum(axis=1) < FEW_LEVELS]
        return maybe[self.runs(maybe)[1].sum(axis=1) <= FEW_LEVELS] if len(maybe) else maybe


def _stage(name: str, mine: _Rows, theirs: _Rows) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows of ``mine`` that the stage counts, their tau-a with the rows of ``theirs`` left, None where it counts
    none): "two" where they take at most two values, "few" at most ``FEW_LEVELS``.
    """
    if name == "two":
        found = mine.left[two_valued(mine.values[mine.left])]
        return found, _two_valued_tau(mine.values[found], theirs.values[theirs.left]) if len(found) else None
    found = mine.few()
    return found, _few_level_tau(mine.runs(found), theirs.runs()) if len(found) else None


def tau_a(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-a (len(a), len(b)) of every row of ``a`` with every row of ``b`` (rows free of NaN): from
    midranks where either row of a pair takes two values, level by level where either takes at most
    ``FEW_LEVELS``, by scipy otherwise. A side's rows are checked only while the other's has rows left.
    """
    out = np.empty((len(a), len(b)))
    x, y = _Rows(a), _Rows(b)
    for name in ("two", "few"):
        for mine, theirs in ((x, y), (y, x)):
            found, tau = _stage(name, mine, theirs)
            if tau is not None:
                out[np.ix_(found, theirs.left) if mine is x else np.ix_(theirs.left, found)] = (
                    tau if mine is x else tau.T
                )
            mine.left = np.setdiff1d(mine.left, found)
            if not len(mine.left):
                return out
    out[np.ix_(x.left, y.left)] = _scipy_tau(a[x.left], b[y.left])
    return out
