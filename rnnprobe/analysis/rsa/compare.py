"""`compare_rdms`: similarity of every RDM of one stack with every RDM of another, equal to rsatoolbox."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import check_option
from ...errors import ArgumentError, ShapeError, describe
from .._constant import centred
from .._ranks import rank_rows
from .kendall import tau_a
from .rdms import check_whole, paired_vectors

COMPARISONS = ("cosine", "corr", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov")


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a @ b.T) / np.outer(norm_a, norm_b)


DOT_METHODS = ("cosine", "corr", "spearman", "rho-a")


def similarity_transform(vectors: np.ndarray, comparison: str, *, ranked: bool = False) -> np.ndarray:
    """Rows f(v) such that ``comparison``'s similarity of RDMs a and b is the dot product f(a) . f(b).

    cosine: v / ||v||; corr: centred, then unit norm; spearman: ranks, centred, unit norm; rho-a:
    centred ranks times sqrt(12 / (n^3 - n)). Rows must be free of NaN; ``ranked=True`` says the
    rows already are ranks (spearman, rho-a).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if comparison in ("spearman", "rho-a") and not ranked:
        v = rank_rows(v)
    if comparison == "rho-a":
        n = v.shape[1]
        return (v - v.mean(axis=1, keepdims=True)) * np.sqrt(12 / (n**3 - n))
    if comparison != "cosine":
        v = centred(v, 1)  # (NaN for a constant row: a row of 0.1s keeps about 1e-17 per value once centred)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _correlation_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``, from raw dot products and
    row sums (no centred copies of large stacks): cov = a.b - n mean_a mean_b. Where a row's mean is so
    large against its spread that the difference loses digits (mean^2 above 1e6 times the variance: a
    relative error above about 1e-10), or a row is constant, from centred copies (:func:`.._constant.centred`:
    NaN for a constant row, whose correlation is undefined).
    """
    n = a.shape[1]
    mean_a, mean_b = a.mean(axis=1), b.mean(axis=1)
    raw_a, raw_b = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    centred_a, centred_b = raw_a - n * mean_a**2, raw_b - n * mean_b**2
    if not (np.all(centred_a * (1 + 1e6) > raw_a) and np.all(centred_b * (1 + 1e6) > raw_b)):
        return _cosine_rows(centred(a, 1), centred(b, 1))
    cov = a @ b.T - n * np.outer(mean_a, mean_b)
    return cov / np.outer(np.sqrt(centred_a), np.sqrt(centred_b))


def _whitened(vectors: np.ndarray, n_cond: int, sigma_k: np.ndarray | None) -> np.ndarray:
    """Rsatoolbox's covariance weighting (no missing values, sigma_k None or per-condition variances):
    double-centred second-moment matrices, scaled, as vectors whose plain cosine is the weighted one.
    """
    rows, cols = np.triu_indices(n_cond, k=1)
    g = np.zeros((vectors.shape[0], n_cond, n_cond))
    g[:, rows, cols] = -0.5 * vectors
    g[:, cols, rows] = -0.5 * vectors
    g = g - g.mean(axis=1, keepdims=True) - g.mean(axis=2, keepdims=True) + g.mean(axis=(1, 2), keepdims=True)
    if sigma_k is not None:  # per-condition variances
        scale = 1 / np.sqrt(sigma_k)
        g = g * scale[None, :, None] * scale[None, None, :]
    diagonal = np.einsum("mii->mi", g)
    return np.concatenate([np.sqrt(2) * g[:, rows, cols], diagonal], axis=1)


def _cosine_full_covariance(a: np.ndarray, b: np.ndarray, n_cond: int, sigma_k: np.ndarray) -> np.ndarray:
    """Cos = a^T V^-1 b / sqrt(a^T V^-1 a b^T V^-1 b), V = (C S C^T) o (C S C^T), C the pairwise contrasts
    (the dissimilarities' covariance under pattern noise S; rsatoolbox's definition for a full sigma_k). NaN for
    rows that are NaN (constant RDMs under corr_cov) or zero.
    """
    import scipy.linalg
    import scipy.sparse.linalg

    missing_a, missing_b = np.isnan(a).any(axis=1), np.isnan(b).any(axis=1)
    a, b = np.where(missing_a[:, None], 0.0, a), np.where(missing_b[:, None], 0.0, b)
    rows, cols = np.triu_indices(n_cond, k=1)
    xi = sigma_k[rows][:, rows] - sigma_k[rows][:, cols] - sigma_k[cols][:, rows] + sigma_k[cols][:, cols]
    v = xi * xi
    if v.shape[0] <= 8000:
        factor = scipy.linalg.cho_factor(v)
        a_m, b_m = scipy.linalg.cho_solve(factor, a.T).T, scipy.linalg.cho_solve(factor, b.T).T
    else:  # too large to factorise: conjugate gradients, one vector at a time
        a_m = np.array([scipy.sparse.linalg.cg(v, x, atol=0)[0] for x in a])
        b_m = np.array([scipy.sparse.linalg.cg(v, x, atol=0)[0] for x in b])
    norm_a = np.sqrt(np.einsum("ij,ij->i", a, a_m))
    norm_b = np.sqrt(np.einsum("ij,ij->i", b, b_m))
    with np.errstate(invalid="ignore", divide="ignore"):  # (a zero row: 0 / 0)
        out = (a @ b_m.T) / np.outer(norm_a, norm_b)
    out[missing_a], out[:, missing_b] = np.nan, np.nan
    return out


def compare_rdms(a: Any, b: Any, *, comparison: str = "corr", sigma_k: np.ndarray | None = None) -> np.ndarray:
    """Similarity of every RDM in ``a`` with every RDM in ``b``: an (n_a, n_b) matrix.

    Equals ``rsatoolbox.rdm.compare(a, b, comparison)`` to 1e-6, vectorised over many-vs-many (e.g.
    every model time step x every brain time point in one call).

    Parameters
    ----------
    a, b : RDMs, rsatoolbox RDMs, or (n_rdms, n_pairs) upper-triangle vectors
        Over the same conditions. Dissimilarities that are NaN in any RDM are left out of
        all comparisons (their positions must agree between ``a`` and ``b``, as in rsatoolbox).
    comparison : {"cosine", "corr", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"}
        Cosine similarity; Pearson correlation; Spearman correlation (ranks with ties averaged);
        rho-a (Spearman without tie correction, Nili et al. 2014); Kendall's tau-a;
        correlation or cosine after whitening with the dissimilarities' covariance under
        i.i.d. (or ``sigma_k``) pattern noise (Diedrichsen et al. 2021).
    sigma_k : ndarray, optional
        Pattern covariance for "corr_cov"/"cosine_cov": per-condition variances (n,) or (n, n). With a
        full (n, n) matrix the whitening solves V x = v directly (Cholesky); rsatoolbox uses conjugate
        gradients at scipy's default tolerance, so its values agree with these to about 1e-5 only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model, brain = rng.random((3, 45)), rng.random((5, 45))   # 3 model steps, 5 brain time points
    >>> compare_rdms(model, brain, comparison="spearman").shape
    (3, 5)
    """
    check_option("comparison", comparison, COMPARISONS)
    va, vb = paired_vectors(a, b)
    nan_a, nan_b = np.isnan(va.sum(axis=0)), np.isnan(vb.sum(axis=0))  # no full-size boolean temporaries
    if not np.array_equal(nan_a, nan_b):
        raise ArgumentError(
            f"a, b: NaN dissimilarities at different positions ({int(nan_a.sum())} in a, {int(nan_b.sum())} in b). "
            f"Use the same conditions, or set the same pairs to NaN in both."
        )
    keep = ~nan_a
    if keep.sum() < 3:
        raise ArgumentError(f"a, b: only {int(keep.sum())} valid dissimilarities; comparisons need at least 3.")
    if comparison in ("corr_cov", "cosine_cov"):
        if not keep.all():
            raise ArgumentError(
                f"comparison={comparison!r} with NaN dissimilarities is not supported; leave out the conditions with "
                f"missing values, or use 'corr'/'cosine'."
            )
        n_cond = check_whole(va, "a, b", f"comparison={comparison!r}")
        if sigma_k is not None:
            sigma_k = np.asarray(sigma_k, dtype=np.float64)
            if sigma_k.shape not in ((n_cond,), (n_cond, n_cond)):
                raise ShapeError(f"sigma_k: got {describe(sigma_k)}. Pass ({n_cond},) or ({n_cond}, {n_cond}).")
        if comparison == "corr_cov":  # (a constant RDM: NaN, no correlation)
            va, vb = centred(va, 1), centred(vb, 1)
        if sigma_k is not None and sigma_k.ndim == 2:
            return _cosine_full_covariance(va, vb, n_cond, sigma_k)
        return _cosine_rows(_whitened(va, n_cond, sigma_k), _whitened(vb, n_cond, sigma_k))
    if not keep.all():
        va, vb = va[:, keep], vb[:, keep]
    if comparison == "corr":  # from dot products and sums: no centred copies of large stacks
        return _correlation_rows(va, vb)
    if comparison == "tau-a":
        return tau_a(va, vb)
    if comparison == "cosine":
        return similarity_transform(va, comparison) @ similarity_transform(vb, comparison).T
    return _rank_similarity(va, vb, comparison)


def _rank_similarity(a: np.ndarray, b: np.ndarray, comparison: str, *, block_bytes: int = 2**25) -> np.ndarray:
    """Spearman or rho-a of every row of ``a`` with every row of ``b`` (rows free of NaN).

    The smaller stack is ranked once; the larger one is ranked in blocks of rows into one reused
    buffer (~32 MB), so large stacks never allocate their full rank matrix.
    """
    swap = len(a) > len(b)
    small, large = (b, a) if swap else (a, b)
    n = small.shape[1]
    ranks_small = rank_rows(small)
    out = np.empty((len(small), len(large)))
    rows = max(1, min(len(large), block_bytes // (8 * n)))
    buffer = np.empty((rows, n))
    for start in range(0, len(large), rows):
        ranks = rank_rows(large[start : start + rows], out=buffer[: min(rows, len(large) - start)])
        if comparison == "spearman":
            block = _correlation_rows(ranks_small, ranks)
        else:  # rho-a; ranks always have mean (n + 1) / 2
            block = (ranks_small @ ranks.T - n * ((n + 1) / 2) ** 2) * (12 / (n**3 - n))
        out[:, start : start + len(ranks)] = block
    return out.T if swap else out


def _nan_ranks(vectors: np.ndarray) -> np.ndarray:
    """Average-tie ranks of each row, ignoring NaN (which stays NaN), as rsatoolbox's _nan_rank_data: by
    :func:`.._ranks.rank_rows` (scipy's ``rankdata`` exactly), all rows at once where they are NaN at the same
    pairs (a bootstrap sample's RDMs: the pairs of a condition drawn twice), else row by row.
    """
    missing = np.isnan(vectors)
    if not missing.any():
        return rank_rows(vectors)
    out = np.full(vectors.shape, np.nan)
    if (missing == missing[0]).all():
        out[:, ~missing[0]] = rank_rows(vectors[:, ~missing[0]])
        return out
    for i, row in enumerate(vectors):
        valid = ~missing[i]
        out[i, valid] = rank_rows(row[None, valid])[0]
    return out
