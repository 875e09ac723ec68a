"""Bootstrap over conditions as weighted statistics of the original RDMs: all samples at once.

A bootstrap sample of conditions keeps every pair of drawn copies except a condition paired with
its own copy, so original pair (i, j) appears c_i * c_j times, where c counts how often each
condition was drawn. Any statistic of the resampled RDMs is therefore a statistic of the original
dissimilarities weighted by w_ij = c_i c_j:

- "corr" and "cosine" need only weighted first and second moments of the model and data RDMs:
  one matrix product of the weights (samples x pairs) with the needed products of rows gives
  every sample's evaluations and noise ceiling (the pooled RDMs of :func:`rsa.pool_rdms` enter
  only through their covariances with the subjects' RDMs).
- "spearman" and "rho-a" rank the resampled vectors; a value standing for w tied copies after L
  smaller copies has the average rank L + (w + 1) / 2, so each RDM is sorted once and ranked in
  every sample by a cumulative sum of weights in that fixed order. Only the pooled RDMs of the
  noise ceiling, whose order changes from sample to sample, are sorted per sample
  (:mod:`._rank_bootstrap`: blocks of samples at once, in integers).

Equal to looping over the resampled RDMs (tested against rsatoolbox's ``eval_bootstrap_pattern``
on the same draws).
"""

from __future__ import annotations

import numpy as np

from ._draws import distinct_conditions, draw_counts, evaluate_blocks
from ._rank_bootstrap import RANKED, rank_bootstrap
from .parallel import library_threads
from .rsa import n_conditions

_BLOCK_BYTES = 2**26  # samples are processed in blocks of about this many bytes of weights


def _pair_weights(draws: np.ndarray, n_cond: int) -> np.ndarray:
    """(n_samples, n_pairs) weights c_i c_j of every upper-triangle pair (i < j)."""
    counts = draw_counts(draws, n_cond)
    rows, cols = np.triu_indices(n_cond, k=1)
    return counts[:, rows] * counts[:, cols]


def _ceiling_from_similarities(sim: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Noise ceiling (lower, upper) per sample, (2, S), from the (S, D, D) similarities of the subjects'
    RDMs, for "corr"/"cosine" whose pooled RDM is a sum of normalised RDMs: the similarity of
    sum_k c_k z_k with subject j is sum_k c_k R_kj / sqrt(sum_kl c_k c_l R_kl) (R with unit diagonal), ``counts``
    c (S, D) the subjects' copies in each sample (None: one each); the lower bound leaves subject j out with
    its copies, and both average over the subjects present. The similarities of subjects not drawn are left out
    (they may be undefined there); a sample of fewer than 2 subjects has no ceiling (NaN).
    """
    counts = np.ones(sim.shape[:2]) if counts is None else counts
    present = counts > 0
    sim = np.where(present[:, :, None] & present[:, None, :], sim, 0)
    col = np.einsum("sk,skj->sj", counts, sim)
    total = np.einsum("sj,sj->s", col, counts)
    diag = np.einsum("sjj->sj", sim)
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = np.where(present, col / np.sqrt(total)[:, None], 0).sum(axis=1) / present.sum(axis=1)
        left = total[:, None] - 2 * counts * col + counts**2 * diag
        lower = np.where(present, (col - counts * diag) / np.sqrt(left), 0).sum(axis=1) / present.sum(axis=1)
    return np.where(present.sum(axis=1) >= 2, np.stack([lower, upper]), np.nan)


def _moment_block(
    models: np.ndarray, data: np.ndarray, weights: np.ndarray, comparison: str, with_ceiling: bool,
    counts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Corr / cosine for one block of samples, from weighted moments; ``counts`` (sample, subject): the copies of
    each data RDM in each sample (a bootstrap of conditions and subjects), None: one each.
    """
    n_models, n_data = len(models), len(data)
    rows = np.vstack([models, data])
    if comparison == "corr":  # shift-invariant: centring first keeps the moments well conditioned
        rows = rows - rows.mean(axis=1, keepdims=True)
    m_idx, d_idx = np.meshgrid(np.arange(n_models), n_models + np.arange(n_data), indexing="ij")
    d1, d2 = np.triu_indices(n_data)
    first = np.r_[np.arange(n_models), m_idx.ravel(), n_models + d1]
    second = np.r_[np.arange(n_models), d_idx.ravel(), n_models + d2]
    moments = np.empty((len(weights), first.size))
    for start in range(0, first.size, 64):  # products of rows, 64 at a time
        stop = start + 64
        moments[:, start:stop] = weights @ (rows[first[start:stop]] * rows[second[start:stop]]).T
    if comparison == "corr":
        n = weights.sum(axis=1, keepdims=True)
        sums = weights @ rows.T / n
        raw = moments / n
        moments = raw - sums[:, first] * sums[:, second]
        # an RDM constant over a sample's pairs has no correlation (NaN, as rsatoolbox gives); from
        # moments its variance is a rounding residue, so variances below 1e-12 of the mean square
        # count as zero
        same = first == second
        degenerate = np.zeros_like(moments, dtype=bool)
        degenerate[:, same] = moments[:, same] <= 1e-12 * raw[:, same]
        moments[degenerate] = np.nan
    model_var = moments[:, :n_models]
    cross = moments[:, n_models : n_models + m_idx.size].reshape(-1, n_models, n_data)
    data_moments = np.zeros((len(weights), n_data, n_data))
    data_moments[:, d1, d2] = moments[:, n_models + m_idx.size :]
    data_moments[:, d2, d1] = data_moments[:, d1, d2]
    data_var = np.einsum("sjj->sj", data_moments)
    present = None if counts is None else counts > 0  # (a subject not drawn may have no similarity: left out)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = cross / np.sqrt(model_var[:, :, None] * data_var[:, None, :])
        if counts is None:
            evaluations = sim.mean(axis=2)
        else:
            drawn = np.where(present[:, None, :], sim, 0)
            evaluations = np.einsum("smd,sd->sm", drawn, counts) / counts.sum(axis=1, keepdims=True)
        if not with_ceiling:
            return evaluations, None
        data_sim = data_moments / np.sqrt(data_var[:, :, None] * data_var[:, None, :])
    return evaluations, _ceiling_from_similarities(data_sim, counts)


def pattern_bootstrap(
    models: np.ndarray, data: np.ndarray, draws: np.ndarray, comparison: str, with_ceiling: bool,
    subject_draws: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Evaluations (n_samples, n_models) and noise ceiling (2, n_samples) of every bootstrap
    sample of conditions, for complete RDMs (no NaN) and comparison in corr/cosine/spearman/rho-a.
    Samples with fewer than 3 distinct conditions are NaN. ``subject_draws`` (sample, subject): the data RDMs
    drawn in each sample too (a bootstrap of conditions and subjects), entering as counts (300 samples of 15
    subjects' RDMs of 92 conditions, corr: 0.54 s sample by sample, 25 ms). Rank comparisons:
    :func:`._rank_bootstrap.rank_bootstrap`.
    """
    if comparison in RANKED:
        return rank_bootstrap(models, data, draws, subject_draws, comparison, with_ceiling)
    n_cond = n_conditions(models.shape[1])
    valid = np.flatnonzero(distinct_conditions(draws) >= 3)
    threads = library_threads()  # blocks of samples on the libraries' threads, one each (disjoint rows)
    size = max(1, min(_BLOCK_BYTES // (models.shape[1] * 8), -(-valid.size // threads)))
    blocks = [valid[start : start + size] for start in range(0, valid.size, size)]
    counts = None if subject_draws is None else draw_counts(subject_draws, len(data))

    def moment_block(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return _moment_block(models, data, _pair_weights(draws[samples], n_cond), comparison, with_ceiling,
                             None if counts is None else counts[samples])  # fmt: skip

    return evaluate_blocks(blocks, moment_block, len(draws), len(models), with_ceiling, threads=threads)
