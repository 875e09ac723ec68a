"""Spearman and rho-a of bootstrap samples of conditions, of subjects or of both: blocks of samples at once.

A sample's pair (i, j) stands for w = c_i c_j copies (:mod:`._pattern_bootstrap`), and a value standing for w
tied copies after L smaller copies has the average rank L + (w + 1) / 2; a run of tied values L + (W + 1) / 2
with W the run's copies. Twice a rank is an integer, and so is twice a rank less the mean rank:
``2 rank - (n + 1)``, n the sample's copies, here called a centred rank. Every rank and every sum of ranks is
therefore computed exactly in integers, and the similarities' sums of products (at most n^3) exactly in
float64 while n < 2^17 (up to about 500 conditions): the numbers do not depend on how the samples are grouped.

Each RDM is sorted once; a sample's ranks of it are the running sums of the weights in that fixed order, for
a block of samples at once (their weights gathered in each RDM's order, one running sum per row). In blocks of
several samples (small RDMs), pairs a sample does not contain weigh 0: they take part in these arrays but move
no rank and add nothing to a sum, so the arrays have the same shape for every sample; a block of one sample
(large RDMs) keeps only its own pairs (about 40% of them when every condition is drawn once on average). The
pooled RDMs of the noise ceiling (the sum of the data RDMs' ranks, and each leave-one-out sum, for the subjects
a sample holds) change order from sample to sample: they are sorted per sample, as one integer key per pair
(value, then position; numpy's SIMD sort of plain integers, 3-6x faster than its argsort), the pairs a sample
lacks keyed last, so that only the first pairs of each, as many as a sample of the block contains at most, are
ranked, then put back in pair order for the products.

A block's arrays are allocated once per call of :meth:`RankBootstrap.evaluate` and reused: fresh arrays of a
few MB at each block were mapped by the allocator at each use, and their page faults taken in turns by the
threads (130,000 a run of 300 samples). The blocks of one call run in turn; :func:`rank_bootstrap` runs a call
per thread, and what holds the interpreter lock is a few dozen numpy calls per block, not per sample: sample by
sample, 300 samples of 92 conditions ran 1.27x faster on two threads than on one, in blocks of 2 samples 1.5x
(docs/scale.md); blocks four times as large where the samples are split over threads (:func:`block_bytes`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ArgumentError
from ._draws import distinct_conditions, draw_counts, evaluate_blocks
from .parallel import library_threads
from .rsa import n_conditions

RANKED = ("spearman", "rho-a")  # the rank comparisons with a dot-product form
_BLOCK_BYTES = 2**20  # a block's samples: their float64 rows of centred ranks take about this many bytes
_SHARED_BLOCK_BYTES = 2**22  # the same where the samples are split over threads (see block_bytes)
_COMPACT_PAIRS = 2**14  # RDMs of at least this many pairs (182 conditions) rank each sample's own pairs alone


def rank_bootstrap(
    models: np.ndarray, data: np.ndarray, draws: np.ndarray | None, subject_draws: np.ndarray | None,
    comparison: str, with_ceiling: bool,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Evaluations (n_samples, n_models) and noise ceiling (2, n_samples) of every bootstrap sample of conditions
    (``draws``, (sample, condition)), of subjects (``subject_draws``, (sample, subject)), or of both, by
    "spearman" or "rho-a", for complete RDMs (no NaN). Samples with fewer than 3 distinct conditions are NaN. The
    samples are split in as many parts as the libraries have threads, each evaluated by
    :meth:`RankBootstrap.evaluate` on a thread of its own.
    """
    n_samples = len(draws if draws is not None else subject_draws)
    valid = np.arange(n_samples) if draws is None else np.flatnonzero(distinct_conditions(draws) >= 3)
    subjects = None if subject_draws is None else draw_counts(subject_draws, len(data))
    import torch  # noqa: F401  (before the threads are counted and start, so that each sets its torch threads)

    threads = library_threads()
    plan = RankBootstrap(models, data, comparison, with_ceiling, block_bytes=block_bytes(threads),
                         subject_draws=0 if subject_draws is None else subject_draws.shape[1])  # fmt: skip

    def evaluate(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return plan.evaluate(*(None if d is None else d[samples] for d in (draws, subjects)))

    parts = np.array_split(valid, min(threads, max(1, valid.size)))
    return evaluate_blocks(parts, evaluate, n_samples, len(models), with_ceiling, threads=threads)


def block_bytes(threads: int) -> int:
    """The bytes of a block's rows of centred ranks: 1 MiB on one thread; 4 MiB where the samples are split over
    threads, whose blocks then make a quarter of the numpy calls that each takes the interpreter lock for (AMD
    EPYC Zen 3, 2 threads: 1000 samples of 15 subjects 745-951 -> 595-740 ms, 300 samples of conditions 201-211
    -> 180-190 ms; on one thread the larger blocks took 11-15% longer for the subjects, their arrays out of the
    512 KiB L2 cache). The numbers do not depend on the blocks.
    """
    return _BLOCK_BYTES if threads <= 1 else _SHARED_BLOCK_BYTES


class RankBootstrap:
    """The evaluations (and noise ceilings) of bootstrap samples of conditions, of subjects, or of both, by
    "spearman" or "rho-a", for complete model RDMs (M, pairs) and data RDMs (D, pairs; the subjects): each
    RDM's order and ties found once. ``subject_draws``: how many subjects a sample draws, when they are drawn.
    """

    def __init__(
        self,
        models: np.ndarray,
        data: np.ndarray,
        comparison: str,
        with_ceiling: bool,
        *,
        subject_draws: int = 0,
        block_bytes: int = _BLOCK_BYTES,
    ) -> None:
        rows = np.vstack([models, data])
        self.n_models, self.n_data = len(models), len(data)
        self.comparison, self.with_ceiling = comparison, with_ceiling
        n_rows, n_pairs = rows.shape
        self.n_cond = n_conditions(n_pairs)
        self.first, self.second = np.triu_indices(self.n_cond, k=1)
        order = np.argsort(rows, axis=1)  # (tied values in any order: their ranks are averaged)
        self.order = order.ravel()  # (row-major: each row's ascending order of its pairs)
        self.back = np.empty_like(self.order)  # where each pair comes in its row's order, offset by r P
        self.back[(order + n_pairs * np.arange(n_rows)[:, None]).ravel()] = np.arange(order.size)
        ordered = np.take_along_axis(rows, order, axis=1)
        self.starts = np.ones((n_rows, n_pairs), dtype=bool)  # where a run of equal values starts
        self.starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        self.n_max = self.n_cond**2 // 2 + 1  # more than any sample's copies n (at most n_cond (n_cond - 1) / 2)
        self.n_summed = max(self.n_data, subject_draws)  # the data RDMs a pooled RDM sums, copies included
        self.absent = 2 * self.n_summed * self.n_max + 1  # the pooled sums' key, from 0, of a pair a sample lacks
        self.position_bits = int(n_pairs - 1).bit_length()
        self.int, self.key = integer_types(self.n_cond, self.n_summed)
        self.compact = n_pairs >= _COMPACT_PAIRS  # (then a sample a block)
        self.block = 1 if self.compact else max(1, block_bytes // (8 * n_rows * n_pairs))
        self.run_ids = np.cumsum(self.starts, axis=1).ravel()  # each sorted entry's run of ties, per row

    def evaluate(
        self, draws: np.ndarray | None, subjects: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The evaluations (S, M) and noise ceilings (2, S; None without) of the samples of conditions ``draws``
        (S, n_conditions; None: every condition once), each of at least 3 distinct conditions, and of subjects
        ``subjects`` (S, D: how often each data RDM is drawn; None: once each): blocks of :attr:`block` samples in
        turn, in one set of arrays, each adding its samples' weighted sums of products of centred ranks to
        ``sums``. Without ``draws``, every sample's RDMs are ranked once.
        """
        n_samples = len(draws if draws is not None else subjects)
        counts = np.ones((1, self.n_cond), self.int) if draws is None else draw_counts(draws, self.n_cond)
        wide = counts.astype(np.int64)
        copies = (wide.sum(axis=1) ** 2 - (wide**2).sum(axis=1)) // 2  # n = sum over i < j of c_i c_j
        copies = np.broadcast_to(copies, n_samples)
        counts, subjects = counts.astype(self.int), None if subjects is None else subjects.astype(self.int)
        n_rows, n_pooled = self.n_models + self.n_data, 1 + self.n_data if self.with_ceiling else 0
        sums = {
            name: np.empty((n_samples, *shape))
            for name, shape in [("norms", (n_rows + n_pooled,)), ("cross", (self.n_models, self.n_data)),
                                ("upper", (self.n_data,)), ("lower", (self.n_data,))]
        }  # fmt: skip
        buffers = _Buffers(self, min(self.block, n_samples))
        compact = self.compact and draws is not None  # (large RDMs: each sample's pairs alone, about 40%)
        held = None if subjects is None else held_subjects(subjects)
        for start in range(0, n_samples, self.block):
            part = slice(start, min(start + self.block, n_samples))
            size, n = part.stop - start, copies[part, None, None].astype(self.int)
            if draws is not None or start == 0:  # (without draws, the first block's ranks serve every block)
                drawn = counts[part] if draws is not None else np.broadcast_to(counts, (size, self.n_cond))
                weights = buffers.sized("every_w", (size, len(self.first)), None)
                np.multiply(np.take(drawn, self.first, axis=1), np.take(drawn, self.second, axis=1), out=weights)
                work = self._layout(weights, buffers, compact)
                self._fixed_ranks(work, n)
                self._products(work, sums, part)
            else:  # (the first samples' arrays of the first block: the same ranks)
                work = buffers.block(size, len(self.first)) | {"order": self.order, "back": self.back}
                sums["norms"][part, :n_rows], sums["cross"][part] = sums["norms"][0, :n_rows], sums["cross"][0]
            work["unit"] = draws is None  # (every pair weighs 1: see _pooled_ranks)
            if self.with_ceiling:
                self._pooled_products(work, buffers, n, sums, part, None if held is None else [a[part] for a in held])
        return self._similarities(sums, copies.astype(np.float64), subjects)

    def _fixed_ranks(self, work: dict, n: np.ndarray) -> None:
        """Centred ranks of every model and data RDM in each sample, in pair order (``work["ranks"]``), and as
        float64 (``work["rows"]``), over the pairs ``work["w"]`` weighs, in the RDMs' orders ``work["order"]``
        (back: ``work["back"]``; runs of ties: ``work["starts"]``, absent without ties).
        """
        w, sorted_w, cum = work["w"], work["sorted_w"], work["cum"]
        blocks = len(w)
        # (mode="wrap" here and below: every index is in range by construction, and numpy's wrap path takes 1.5x
        # less time than its clip path; "raise" would buffer the output)
        np.take(w, work["order"], axis=1, out=sorted_w.reshape(blocks, -1), mode="wrap")
        _running_sums(sorted_w, out=cum)
        if "starts" not in work:  # no ties: L = cum - w, 2 rank = 2 cum - w + 1
            cum *= 2
            cum -= sorted_w
            cum += 1
        else:
            _tied_ranks(sorted_w, cum, work["starts"], work, out=cum)
        cum -= n + 1
        np.take(cum.reshape(blocks, -1), work["back"], axis=1, out=work["ranks"].reshape(blocks, -1), mode="wrap")
        np.copyto(work["rows"], work["ranks"])

    def _layout(self, weights: np.ndarray, buffers: _Buffers, compact: bool) -> dict:
        """A block's arrays (:meth:`_Buffers.block`) with its pairs' weights (``w``), each RDM's order of them
        and the way back (``order``, ``back``; positions among them, each row offset by r times their number),
        and where the RDMs' runs of ties start among them (``starts``, absent without ties): every pair
        (``compact`` False), or the one sample's own pairs, those it weighs (about 40% of them).
        """
        if not compact:
            work = buffers.block(len(weights), weights.shape[1]) | {"order": self.order, "back": self.back}
            np.copyto(work["w"], weights)
            return work
        keep = weights[0] > 0
        kept = np.flatnonzero(keep)
        width, n_rows = kept.size, self.n_models + self.n_data
        work = buffers.block(1, width) | {"order": buffers.sized("order", (n_rows * width,), np.intp),
                                          "back": buffers.sized("back", (n_rows * width,), np.intp)}  # fmt: skip
        np.take(weights, kept, axis=1, out=work["w"], mode="wrap")
        among = buffers.sized("among", keep.shape, np.intp)  # each pair's position among the kept ones
        among[kept] = np.arange(width)
        in_order = np.take(keep, self.order)  # (R P): whether each RDM's next pair is kept
        np.take(among, np.compress(in_order, self.order), out=work["order"], mode="wrap")
        rows = work["order"].reshape(n_rows, width) + width * np.arange(n_rows)[:, None]
        work["back"][rows.reshape(-1)] = np.arange(n_rows * width)
        if not self.starts.all():  # a run of ties starts where the run of the kept entry before differs
            runs = buffers.sized("kept_runs", (n_rows, width), np.intp)
            np.compress(in_order, self.run_ids, out=runs.reshape(-1))
            starts = buffers.sized("kept_starts", (1, n_rows, width), bool)
            starts[..., 0] = True
            np.not_equal(runs[:, 1:], runs[:, :-1], out=starts[0, :, 1:])
            work["starts"] = starts
        return work

    def _products(self, work: dict, sums: dict, part: slice) -> None:
        """Each RDM's weighted sum of squared centred ranks and each model's with each data RDM, into ``sums``."""
        import torch

        rows, weighted, n_models, n_rows = work["rows"], work["weighted"], self.n_models, len(work["rows"][0])
        np.multiply(rows, work["w"][:, None, :], out=weighted)
        np.einsum("brp,brp->br", weighted, rows, out=sums["norms"][part, :n_rows])
        # (torch's batched product: numpy's keeps the interpreter lock for outputs under 500 entries)
        torch.bmm(torch.from_numpy(weighted[:, :n_models]), torch.from_numpy(rows[:, n_models:]).mT,
                  out=torch.from_numpy(sums["cross"][part]))  # fmt: skip

    def _pooled_products(
        self, work: dict, buffers: _Buffers, n: np.ndarray, sums: dict, part: slice, subjects: list | None
    ) -> None:
        """The pooled RDMs' weighted sums of squared centred ranks, and each data RDM's with the pooled RDM of
        all (for the upper bound) and of the others (the lower), into ``sums``. With ``subjects`` (the block's
        :func:`held_subjects`), only the subjects a sample holds are left out (each sample's first, as many rows as
        a sample holds at most).
        """
        data = work["rows"][:, self.n_models :]
        held = None if subjects is None else self._held_first(work, buffers, *subjects)
        positions, ranks = self._pooled_ranks(work, buffers, n, held)
        (blocks, n_pooled, _), n_pairs = positions.shape, work["w"].shape[1]
        # back in pair order (positions hold each sample's offset b P): the pairs past the width weigh 0, and keep
        # the (finite) values of an earlier block
        pooled = buffers.sized("pooled_rows", (blocks, n_pooled, n_pairs), np.float64, zeroed=True)
        positions += (n_pairs * (np.arange(blocks)[:, None] * (n_pooled - 1) + np.arange(n_pooled)))[:, :, None]
        pooled.reshape(-1)[positions.reshape(-1)] = ranks.reshape(-1)
        weighted = pooled  # (every pair weighing 1: the ranks themselves)
        if not work["unit"]:
            weighted = buffers.sized("pooled_weighted", pooled.shape, np.float64)
            np.multiply(pooled, work["w"][:, None, :], out=weighted)
        norms = np.einsum("bkp,bkp->bk", weighted, pooled)
        np.einsum("bp,bdp->bd", weighted[:, 0], data, out=sums["upper"][part])
        lower = np.einsum("bdp,bdp->bd", weighted[:, 1:], data if held is None else held["rows"])
        if held is None:
            sums["norms"][part, self.n_models + self.n_data :], sums["lower"][part] = norms, lower
            return
        sums["norms"][part, self.n_models + self.n_data] = norms[:, 0]  # (the subjects not held: 0, left out)
        samples = np.arange(part.start, part.stop)[:, None]
        for name, values, offset in (("norms", norms[:, 1:], self.n_models + self.n_data + 1), ("lower", lower, 0)):
            sums[name][part, offset : offset + self.n_data] = 0
            sums[name][samples, offset + held["order"]] = values

    def _held_first(
        self, work: dict, buffers: _Buffers, order: np.ndarray, counts: np.ndarray, n_held: np.ndarray
    ) -> dict:
        """Each sample's subjects in the order held first (``order``, (B, H): H the most any sample holds), their
        copies (``counts``), integer ranks (``ranks``) and float64 ranks (``rows``), (B, H, P), from the block's
        :func:`held_subjects`.
        """
        blocks, n_rows, n_pairs = work["ranks"].shape
        most = int(n_held.max())
        order, counts = order[:, :most], counts[:, :most]
        rows = (np.arange(blocks)[:, None] * n_rows + self.n_models + order).reshape(-1)  # (rows of the RDMs)
        held = {"order": order, "counts": counts}
        for name, dtype in (("ranks", None), ("rows", np.float64)):
            held[name] = buffers.sized("held_" + name, (*order.shape, n_pairs), dtype)
            np.take(work[name].reshape(-1, n_pairs), rows, axis=0, out=held[name].reshape(-1, n_pairs))
        return held

    def _similarities(
        self, sums: dict, n: np.ndarray, subjects: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The evaluations (S, M) and noise ceilings (2, S) from the sums of products of every sample, whose
        copies are ``n`` (S,), and its subjects' copies ``subjects`` (S, D; None: one each). A sample's
        evaluations weigh each subject by its copies; its ceilings average over the subjects it holds (their
        similarities only: a subject not drawn may have none), and need two of them at least.
        """
        n_models, n_rows = self.n_models, self.n_models + self.n_data
        norms = sums["norms"]
        data_norms = norms[:, n_models:n_rows]
        subjects = np.ones((len(n), self.n_data)) if subjects is None else subjects.astype(np.float64)
        held = subjects > 0
        similarity = self._similarity(sums["cross"], norms[:, :n_models, None], data_norms[:, None], n[:, None, None])
        evaluations = np.einsum("smd,sd->sm", np.where(held[:, None], similarity, 0), subjects) / subjects.sum(
            axis=1, keepdims=True
        )
        if not self.with_ceiling:
            return evaluations, None
        pooled = {"lower": norms[:, n_rows + 1 :], "upper": norms[:, n_rows : n_rows + 1]}  # of the others, of all
        bounds = [
            np.where(held, self._similarity(sums[name], pooled[name], data_norms, n[:, None]), 0).sum(axis=1)
            for name in pooled
        ]
        counted = held.sum(axis=1)
        return evaluations, np.where(counted >= 2, np.stack(bounds) / counted, np.nan)

    def _pooled_ranks(
        self, work: dict, buffers: _Buffers, n: np.ndarray, held: dict | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pooled data RDMs (their ranks' sum, then each leave-one-out sum; ``held``: the subjects held, by
        :meth:`_held_first`, None: every data RDM once) ranked in each sample: the pairs' positions in ascending
        order of each (each offset by its sample's b P) and their centred ranks (B, 1 + D or 1 + H, width): the
        first ``width`` pairs, the most any sample of the block contains (the pairs a sample lacks are keyed last,
        and those within the width weigh 0).
        """
        w, (blocks, n_pairs) = work["w"], work["w"].shape
        if held is None:
            data, keys = work["ranks"][:, self.n_models :], work["keys"]
            np.sum(data, axis=1, out=keys[:, 0])
            np.subtract(keys[:, :1], data, out=keys[:, 1:])
        else:  # a subject's copies leave together (and the subjects not held add nothing)
            keys = buffers.sized("keys", (blocks, 1 + held["order"].shape[1], n_pairs), self.key)
            np.multiply(held["ranks"], held["counts"][:, :, None], out=keys[:, 1:])
            np.sum(keys[:, 1:], axis=1, out=keys[:, 0])
            np.subtract(keys[:, :1], keys[:, 1:], out=keys[:, 1:])
        n_pooled = keys.shape[1]
        keys += self.n_summed * self.n_max  # (from 0: the same order)
        width = n_pairs
        if not work["unit"]:  # (samples of subjects alone hold every pair)
            absent = work["absent"]  # (B, P): the key of a pair the sample lacks, 0 for the others
            np.equal(w, 0, out=absent)
            absent *= self.absent
            np.maximum(keys, absent[:, None, :], out=keys)  # (copyto's where= kept the interpreter lock)
            width -= int(np.count_nonzero(absent, axis=1).min())
        keys <<= self.position_bits
        keys |= np.arange(n_pairs, dtype=keys.dtype)  # value, then position: no two keys are equal
        keys.sort(axis=-1)
        shape = (blocks, n_pooled, width)
        positions = buffers.sized("positions", shape, np.intp)
        np.bitwise_and(keys[..., :width], (1 << self.position_bits) - 1, out=positions)
        values = buffers.sized("values", shape, self.key)
        np.right_shift(keys[..., :width], self.position_bits, out=values)  # ascending
        positions += (n_pairs * np.arange(blocks))[:, None, None]
        weights, cum = buffers.sized("pooled_w", shape, self.int), buffers.sized("pooled_cum", shape, self.int)
        if work["unit"]:  # every weight 1: the running sums are 1, 2, ..., width in every row
            weights.fill(1)
            np.copyto(cum, np.arange(1, width + 1, dtype=cum.dtype))
        else:
            np.take(w, positions, out=weights, mode="wrap")
            _running_sums(weights, out=cum)
        starts = buffers.sized("pooled_starts", shape, bool)
        starts[..., 0] = True
        np.not_equal(values[..., 1:], values[..., :-1], out=starts[..., 1:])
        _tied_ranks(weights, cum, starts, work, out=cum)
        cum -= n + 1
        return positions, cum

    def _similarity(self, cross: np.ndarray, norms_a: np.ndarray, norms_b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Spearman (the correlation of the ranks) or rho-a (their products, 12 / (n^3 - n) of the sum) from the
        weighted sums of products of centred ranks (twice the ranks less their mean: 4 times the products).
        """
        if self.comparison == "rho-a":
            return cross * 3 / (n**3 - n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return cross / np.sqrt(norms_a * norms_b)


def held_subjects(subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sample's data RDMs, those it holds first (S, D), their copies in that order (S, D), and how many it
    holds (S,), from the copies ``subjects`` (S, D): for every sample at once (per block of one sample, these small
    calls held the interpreter lock about a tenth of the time on two threads).
    """
    order = np.argsort(subjects == 0, axis=1, kind="stable")
    return order, np.take_along_axis(subjects, order, axis=1), np.count_nonzero(subjects, axis=1)


def integer_types(n_cond: int, n_data: int) -> tuple[type, type]:
    """The integer types of the ranks and of the pooled RDMs' sort keys, for samples of ``n_cond`` conditions
    and ``n_data`` data RDMs: int32 where every value fits, else int64. A sample's copies n are below
    n_max = n_cond^2 / 2 + 1, its ranks' running sums below 2 n + 2; a pooled sum of centred ranks is within
    [-D n, D n], keyed from 0 (up to 2 D n_max + 1 for the pairs a sample lacks) and shifted past the pairs'
    positions.

    Examples
    --------
    >>> integer_types(92, 10)
    (<class 'numpy.int32'>, <class 'numpy.int32'>)
    """
    n_max = n_cond**2 // 2 + 1
    key_bits = (2 * n_data * n_max + 1).bit_length() + int(n_cond * (n_cond - 1) // 2 - 1).bit_length()
    if key_bits > 63:
        raise ArgumentError(
            f"data: got {n_data} RDMs of {n_cond} conditions, too many for a rank bootstrap of conditions: the "
            "pooled RDMs' sort keys would overflow 64-bit integers. Compare fewer data RDMs at a time, or use "
            "comparison='corr'."
        )
    return np.int32 if 2 * n_max + 2 < 2**31 else np.int64, np.int32 if key_bits <= 31 else np.int64


class _Buffers:
    """A block's arrays, allocated once for ``size`` samples (pages are touched only where used): :meth:`block`
    gives the views a block of samples over a number of pairs needs, :meth:`sized` one array in a given shape.
    """

    def __init__(self, plan: RankBootstrap, size: int) -> None:
        self.plan, self.size = plan, size
        n_rows, n_pairs = plan.n_models + plan.n_data, len(plan.first)
        self.pooled = 1 + plan.n_data if plan.with_ceiling else 0
        self.capacity = 2 * size * max(n_rows, self.pooled) * n_pairs  # the most entries an array holds
        self.arrays: dict[str, np.ndarray] = {}
        self.shaped: dict[tuple, np.ndarray] = {}
        self.views: dict[tuple, dict] = {}
        if not plan.starts.all():  # the RDMs' runs of ties over every pair, the same in every sample
            self.arrays["starts"] = np.broadcast_to(plan.starts, (size, *plan.starts.shape)).copy()

    def block(self, size: int, width: int) -> dict:
        """Views for ``size`` samples over ``width`` pairs: the weights, each RDM's ranks (in order, their running
        sums, in pair order, as float64, weighted), the pooled RDMs' keys, the runs of ties' flat arrays (and
        over every pair, the RDMs' runs of ties). Kept for the next block over every pair.
        """
        if (size, width) in self.views:
            return self.views[(size, width)]
        plan, n_rows = self.plan, self.plan.n_models + self.plan.n_data
        shapes = {"w": (size, width), "absent": (size, width), "sorted_w": (size, n_rows, width),
                  "cum": (size, n_rows, width), "ranks": (size, n_rows, width), "rows": (size, n_rows, width),
                  "weighted": (size, n_rows, width), "keys": (size, self.pooled, width),
                  "run": (self.capacity // 2,), "run_values": (self.capacity,)}  # fmt: skip
        types = {"absent": plan.key, "keys": plan.key, "rows": np.float64, "weighted": np.float64, "run": np.intp}
        views = {name: self.sized(name, shape, types.get(name)) for name, shape in shapes.items()}
        if width == len(plan.first):  # (every pair: the same views for every block of this size)
            if "starts" in self.arrays:
                views["starts"] = self.arrays["starts"][:size]
            self.views[(size, width)] = views
        return views

    def sized(self, name: str, shape: tuple, dtype: type | None, *, zeroed: bool = False) -> np.ndarray:
        """A C-contiguous ``shape`` view of the flat array ``name`` (made at the first call, of zeros if
        ``zeroed``; ``dtype`` None: the ranks' integers).
        """
        view = self.shaped.get((name, shape))
        if view is None:  # (made once per shape: Python around each block's arrays holds the interpreter lock)
            if name not in self.arrays:
                make = np.zeros if zeroed else np.empty
                self.arrays[name] = make(self.capacity, self.plan.int if dtype is None else dtype)
            view = self.shaped[(name, shape)] = self.arrays[name][: math.prod(shape)].reshape(shape)
        return view


def _tied_ranks(w: np.ndarray, cum: np.ndarray, starts: np.ndarray, work: dict, *, out: np.ndarray) -> None:
    """Twice the average-tie ranks of rows of values in ascending order, entries standing for ``w`` copies
    each, ``cum`` their running sums along each row, ``starts`` where a run of equal values starts (each row's
    first entry among them): a run of W copies after L smaller ones ranks L + (W + 1) / 2, so twice its rank is
    L + (L + W) + 1, the running sums before its first entry and at its last. Written into ``out`` (may be
    ``cum``).
    """
    flat_starts, flat_cum = starts.reshape(-1), cum.reshape(-1)
    size = flat_starts.size
    run = _running_sums(flat_starts, out=work["run"][:size])  # each entry's run, from 1
    firsts = np.flatnonzero(flat_starts)  # (once: three compress calls found them three times)
    n_runs = firsts.size
    values, ends = work["run_values"][:n_runs], work["run_values"][n_runs : 2 * n_runs]
    # L at each run's first entry, then L + W at its last: the entry before the next run's first (or the end)
    np.take(flat_cum, firsts, out=values, mode="wrap")
    values -= np.take(w.reshape(-1), firsts, out=ends, mode="wrap")  # (ends: a buffer here)
    firsts -= 1  # (each next run's first less one: the last entry of the run before)
    np.take(flat_cum, firsts[1:], out=ends[:-1], mode="wrap")
    ends[-1] = flat_cum[-1]
    values += ends
    values += 1
    run -= 1
    np.take(values, run, out=out.reshape(-1), mode="wrap")


def _running_sums(values: np.ndarray, *, out: np.ndarray) -> np.ndarray:
    """Running sums along the last axis into ``out`` (C-contiguous; its dtype), by torch: numpy's ``cumsum``
    keeps the interpreter lock (two threads' running sums took turns), as does torch's without ``out=`` while
    it allocates.
    """
    import torch

    torch.cumsum(torch.from_numpy(values), -1, out=torch.from_numpy(out))
    return out
