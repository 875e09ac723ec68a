"""Alignment metrics between two representations of the same stimuli, from prepared factors.

Every metric here depends on a representation X (n stimuli x p units) only through its centred
version Xc = X - mean, and is unchanged by rotating Xc's units (Xc -> Xc Q). So each representation
is *prepared* once: centred, and kept as n x r coordinates B with B'B diagonal (principal
coordinates, eigenvalues ``lam``) when the metric needs its spectrum, or as Xc itself when it does
not. A pair then costs one cross product B_x' B_y and a small decomposition; many pairs (time steps,
models) reuse the preparations.

- shape (Williams et al. 2021, netrep's ``LinearMetric``): partial whitening
  ``d = alpha + (1 - alpha) / sqrt(max(lam, 1e-7))`` (lam: eigenvalues of Xc'Xc, unnormalised, as
  netrep), then the angle arccos(||Xw' Yw||_* / (||Xw|| ||Yw||)) after the best rotation.
- cca / svcca: full whitening of the directions kept (all with lam above a relative tolerance, or the
  top ones explaining ``variance`` of it); the canonical correlations are the singular values of
  B_x' B_y after whitening; the mean over min(r_x, r_y) of them; pwcca weights them by how much of X
  each canonical variate accounts for (Morcos et al. 2018).
- cka (Kornblith et al. 2019): ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F); debiased: the unbiased HSIC
  estimator (Song et al. 2012) in its feature-space form (Nguyen et al. 2021); rbf_cka: the same with
  centred Gaussian kernel matrices (n x n) in place of Xc Xc'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._arrays import flip, linalg_errors, namespace, ones, svdvals, to_numpy, vdot
from .._constant import rounding_only

EIGVAL_TOL = 1e-7  # netrep's clipping of the unnormalised covariance's eigenvalues
RANK_RTOL = 1e-10  # directions with lam below this fraction of the largest are not canonical directions
TINY = np.finfo(np.float64).tiny


@dataclass
class Prepared:
    """One centred representation: coordinates ``b`` (n x r) and what the metric needs of them.

    ``units`` maps centred units to principal coordinates (p x r: coordinates = Xc units); where
    ``rotate`` is True, ``b`` is Xc itself and the rotation by ``units`` is applied lazily to cross
    products (cheaper than rotating n x p data). ``lam`` are the eigenvalues of the principal
    coordinates' Gram matrix, ``d`` the per-coordinate whitening factors.
    """

    b: np.ndarray | None  # None: held as moments (the cross products are passed to the pair functions)
    mean: np.ndarray
    units: np.ndarray | None
    rotate: bool
    lam: np.ndarray | None
    d: np.ndarray | None
    row_sq: np.ndarray | None = None  # squared row norms (debiased CKA)
    self_term: float = 0.0  # ||Xc'Xc||_F or its unbiased HSIC (CKA); ||Xw||^2 (shape)
    total: float = 0.0  # ||Xc||_F^2: 0 for a representation that is the same for every stimulus
    n: int = 0  # stimuli


def gram(x: np.ndarray) -> np.ndarray:
    """X'X (numpy's matmul recognises the pattern and calls BLAS syrk). numpy.linalg only: a second
    BLAS (scipy bundles its own OpenBLAS) would leave its threads spinning against numpy's.
    """
    return x.T @ x


def principal(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(b, eigenvalues r, units p x r, rotate): principal coordinates of centred xc.

    From the smaller Gram matrix: Xc'Xc (p <= n: ``b`` stays Xc, rotated lazily by its eigenvectors)
    or Xc Xc' (p > n: ``b`` = U sqrt(lam), units Xc' U / sqrt(lam), directions of lam ~ 0 dropped).
    """
    n, p = xc.shape
    xp = namespace(xc)
    if p <= n:
        lam, vectors = xp.linalg.eigh(gram(xc))
        return xc, lam, vectors, True
    b, lam, u = coordinates(gram(xc.T))
    return b, lam, (xc.T @ u) / xp.sqrt(lam), False


def coordinates(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(b = U sqrt(lam), eigenvalues lam, eigenvectors U) of a centred Gram matrix Xc Xc' (n x n): the
    principal coordinates of the stimuli, directions of lam ~ 0 dropped; b b' = Xc Xc', so b is Xc up to a
    rotation of its units.
    """
    xp = namespace(kernel)
    lam, u = xp.linalg.eigh(kernel)
    keep = lam > RANK_RTOL * max(_largest(lam), TINY)
    lam, u = lam[keep], u[:, keep]
    return u * xp.sqrt(lam), lam, u


def prepare(
    x: np.ndarray, metric: str, *, alpha: float = 1.0, variance: float = 0.99, sigma: float = 1.0, fit: bool = False
) -> Prepared:
    """Prepare one representation (n x p float64) for ``metric`` (``fit``: keep what fitting
    an alignment for held-out stimuli needs).
    """
    mean = x.mean(axis=0)
    xc = x - mean
    n, p = xc.shape
    total = spread(vdot(xc, xc), mean, n)
    if metric == "rbf_cka":
        kernel = centred_rbf_kernel(xc, sigma)
        return Prepared(kernel, mean, None, False, None, None, self_term=frobenius(kernel), total=total,
                        n=n)  # fmt: skip
    if p > n and not whitened(metric, alpha, fit):  # compress to n columns: every quantity used is rotation-free
        xc = principal(xc)[0]
    elif p > n:
        b, lam, units, rotate = principal(xc)
        return spectral(Prepared(b, mean, units, rotate, None, None, total=total, n=n), lam, metric, alpha, variance)
    row_sq = namespace(xc).einsum("ij,ij->i", xc, xc) if metric == "debiased_cka" else None
    product = gram(xc) if metric != "shape" or whitened(metric, alpha, fit) else None  # Procrustes: not needed
    return from_moments(product, mean, n, total, metric, b=xc, row_sq=row_sq, alpha=alpha, variance=variance,
                        fit=fit)  # fmt: skip


def spread(total: float, mean: np.ndarray, n: int) -> float:
    """The centred states' total square ``total`` (of ``n`` stimuli whose mean is ``mean``), 0 where it is no more
    than rounding leaves (:func:`.._constant.rounding_only`, over the units together): states the same for every
    stimulus at a value no float64 mean equals (a learned initial state, 0.1) keep about 1e-34 per unit once
    centred, and are the same for every stimulus all the same (:func:`.inputs.check_varies` refuses them).
    """
    return 0.0 if rounding_only(total / n, frobenius(mean), n) else total


def frobenius(array: np.ndarray) -> float:
    """The square root of the sum of squares of ``array``'s elements."""
    return float(namespace(array).linalg.norm(array))


def whitened(metric: str, alpha: float, fit: bool) -> bool:
    """Whether ``metric`` whitens (or rotates) the principal coordinates: all but CKA and, in sample,
    the Procrustes shape distance.
    """
    return not (metric in ("cka", "debiased_cka") or (metric == "shape" and alpha == 1.0 and not fit))


def from_moments(
    product: np.ndarray | None,
    mean: np.ndarray,
    n: int,
    total: float,
    metric: str,
    *,
    b: np.ndarray | None = None,
    row_sq: np.ndarray | None = None,
    alpha: float = 1.0,
    variance: float = 0.99,
    fit: bool = False,
) -> Prepared:
    """Prepare one representation from its centred Gram matrix Xc'Xc (p x p; None for the in-sample
    Procrustes distance, which needs only the total), its mean and its n stimuli; ``b``: the centred
    states where held (else its cross products with the other side's are passed to the pair functions);
    ``row_sq``: the stimuli's squared norms (debiased CKA).
    """
    prepared = Prepared(b, mean, None, False, None, None, total=total, n=n, row_sq=row_sq)
    if metric == "cka":
        prepared.self_term = frobenius(product)
    elif metric == "debiased_cka":
        prepared.self_term = float(debiased_hsic(product, prepared, prepared))
    elif not whitened(metric, alpha, fit):
        prepared.self_term = total
    if not whitened(metric, alpha, fit):
        return prepared
    prepared.rotate = True
    if metric == "cca" or (metric == "shape" and alpha == 0.0):
        prepared.units = cholesky_whitening(product, n)
        if prepared.units is not None:  # full rank: whitened by L^-T, the same canonical correlations
            prepared.lam = prepared.d = ones(product, product.shape[0])
            prepared.self_term = float(product.shape[0])
            return prepared
    lam, prepared.units = namespace(product).linalg.eigh(product)
    return spectral(prepared, lam, metric, alpha, variance)


def spectral(prepared: Prepared, lam: np.ndarray, metric: str, alpha: float, variance: float) -> Prepared:
    """Set the principal coordinates' eigenvalues ``lam`` and the metric's whitening factors."""
    if metric == "shape":  # numerically null directions (rounding noise) are dropped, not amplified
        xp = namespace(lam)
        d = alpha + (1 - alpha) / xp.sqrt(lam.clip(EIGVAL_TOL, None))
        d = xp.where(lam > RANK_RTOL * max(_largest(lam), TINY), d, 0.0)
    else:
        d = canonical_factors(lam, metric, variance)
    prepared.lam, prepared.d = lam.clip(0, None), d
    prepared.self_term = float((prepared.lam * d * d).sum())
    return prepared


def centred_rbf_kernel(xc: np.ndarray, sigma: float) -> np.ndarray:
    """H K H with K = exp(-d^2 / (2 sigma^2 median(d^2))), d the distances between stimuli (the median over
    all n^2 pairs, the diagonal's zeros included, as Kornblith et al.'s code; of a device's matrix, on the host).
    """
    xp = namespace(xc)
    gram_n = xc @ xc.T
    norms = gram_n.diagonal()
    squared = (norms[:, None] + norms[None, :] - 2 * gram_n).clip(0, None)
    median = float(np.median(to_numpy(squared)))
    kernel = xp.exp(-squared / (2 * sigma**2 * median)) if median > 0 else xp.ones_like(squared)
    kernel -= kernel.mean(axis=0)
    kernel -= kernel.mean(axis=1, keepdims=True)
    return kernel


def cholesky_whitening(product: np.ndarray, n: int) -> np.ndarray | None:
    """L^-T with L L' = Xc'Xc (``product``, of n stimuli) where every eigenvalue provably exceeds the
    clipping tolerances, else None.

    lambda_min >= 1 / ||L^-1||_F^2 and lambda_max <= trace: where the bound clears both netrep's
    absolute clipping and the relative rank tolerance, whitening by L^-T equals the eigen-whitening up
    to a rotation, which no metric here sees (canonical correlations, the CCA shape distance).
    """
    if product.shape[0] > n:
        return None
    xp = namespace(product)
    try:
        factor = xp.linalg.cholesky(product)
        inverse = xp.linalg.inv(factor)
    except linalg_errors(product):
        return None
    bound = 1 / vdot(inverse, inverse)
    if not bound > max(EIGVAL_TOL, RANK_RTOL * float(product.trace())):
        return None
    return inverse.T


def _largest(lam: np.ndarray) -> float:
    """The largest eigenvalue (ascending order), 0 for none (a representation the same for every stimulus)."""
    return float(lam[-1]) if lam.shape[0] else 0.0


def canonical_factors(lam: np.ndarray, metric: str, variance: float) -> np.ndarray:
    """Whitening factors 1 / sqrt(lam) of the canonical directions kept, 0 for the others."""
    xp = namespace(lam)
    keep = lam > RANK_RTOL * max(_largest(lam), TINY)
    if metric == "svcca":  # the top directions explaining `variance` of the total (Raghu et al. 2017)
        positive = flip(lam).clip(0, None)
        share = xp.cumsum(positive, 0) / max(float(positive.sum()), TINY)
        n_keep = int(xp.searchsorted(share, variance)) + 1
        keep[: max(lam.shape[0] - n_keep, 0)] = False
    return xp.where(keep, 1 / xp.sqrt(lam.clip(TINY, None)), 0.0)


def raw_cross(a: Prepared, b: Prepared, product: np.ndarray | None = None) -> np.ndarray:
    """B_a' B_b of the coordinates held (``product`` where it was computed elsewhere: a side held as moments)."""
    return a.b.T @ b.b if product is None else product


def cross(a: Prepared, b: Prepared, product: np.ndarray | None = None) -> np.ndarray:
    """B_a' B_b in principal coordinates (rotated by each side's map where it is lazy)."""
    product = raw_cross(a, b, product)
    if a.rotate:
        product = a.units.T @ product
    if b.rotate:
        product = product @ b.units
    return product


def whitened_cross(a: Prepared, b: Prepared, product: np.ndarray | None = None) -> np.ndarray:
    """The cross product of both sides' whitened coordinates."""
    return a.d[:, None] * cross(a, b, product) * b.d[None, :]


def debiased_hsic(xty: np.ndarray, a: Prepared, b: Prepared) -> float:
    """Unbiased HSIC of two centred linear kernels (times n (n - 3)), from X'Y, row norms and norms."""
    n = a.n
    norms = float(a.row_sq.sum()) * float(b.row_sq.sum())
    return vdot(xty, xty) - n / (n - 2) * float(a.row_sq @ b.row_sq) + norms / ((n - 1) * (n - 2))


def pair_value(a: Prepared, b: Prepared, metric: str, product: np.ndarray | None = None) -> float:
    """The metric's value for one pair of prepared representations (``product``: see :func:`raw_cross`)."""
    if metric == "cka":
        product = raw_cross(a, b, product)
        return vdot(product, product) / (a.self_term * b.self_term)
    if metric == "rbf_cka":  # b holds the centred kernel matrices
        return vdot(a.b, b.b) / (a.self_term * b.self_term)
    if metric == "debiased_cka":
        return debiased_cka_value(debiased_hsic(raw_cross(a, b, product), a, b), a.self_term, b.self_term)
    if metric == "shape":
        product = raw_cross(a, b, product) if a.d is None else whitened_cross(a, b, product)
        return angle(nuclear_norm(product), a.self_term, b.self_term)
    if metric == "pwcca":
        u, rho, _ = canonical(a, b, product)
        return weighted_mean(pwcca_weights(a, u), rho)
    k = min(int((a.d > 0).sum()), int((b.d > 0).sum()))
    return float(singular_values(whitened_cross(a, b, product))[:k].clip(0, 1).mean())


def debiased_cka_value(cross_term: float, self_a: float, self_b: float) -> float:
    """Debiased CKA; 0 where either unbiased self-HSIC is <= 0 (no structure distinguishable from noise)."""
    if self_a <= 0 or self_b <= 0:
        return 0.0
    return cross_term / float(np.sqrt(self_a * self_b))


def angle(inner: float, squared_a: float, squared_b: float) -> float:
    """arccos(inner / (||a|| ||b||)), clipped to [0, pi]; pi / 2 where a side is all zero."""
    if squared_a <= 0 or squared_b <= 0:
        return float(np.pi / 2)
    return float(np.arccos(np.clip(inner / np.sqrt(squared_a * squared_b), -1.0, 1.0)))


def singular_values(m: np.ndarray) -> np.ndarray:
    """Singular values, largest first; of large matrices from the eigenvalues of the smaller Gram
    matrix (about 2x faster than an SVD; absolute error about 1e-8 of the largest, for the smallest).
    """
    if min(m.shape) <= 64:
        return svdvals(m)
    xp = namespace(m)
    product = gram(m) if m.shape[1] <= m.shape[0] else gram(m.T)
    return flip(xp.sqrt(xp.linalg.eigvalsh(product).clip(0, None)))


def nuclear_norm(m: np.ndarray) -> float:
    """Sum of singular values (the trace of the best rotation's alignment)."""
    return float(singular_values(m).sum())


def canonical(a: Prepared, b: Prepared, product: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u r_a x k, canonical correlations k, v r_b x k), largest first, over k = min(r_a, r_b) directions."""
    k = min(int((a.d > 0).sum()), int((b.d > 0).sum()))
    m = whitened_cross(a, b, product)
    u, rho, vh = namespace(m).linalg.svd(m, full_matrices=False)
    return u[:, :k], rho[:k].clip(0, 1), vh[:k].T


def pwcca_weights(a: Prepared, u: np.ndarray) -> np.ndarray:
    """The PWCCA weight sum_j |<h_i, x_j>| of each of a's canonical variates h_i (columns of u)."""
    return abs(pwcca_loadings(a, u)).sum(axis=0)


def weighted_mean(weights: np.ndarray, rho: np.ndarray) -> float:
    """PWCCA: the canonical correlations' mean weighted by their variates' weights."""
    return float((weights * rho).sum() / weights.sum())


def variates(a: Prepared, u: np.ndarray) -> np.ndarray:
    """The canonical variates h_i = whitened coordinates u_i of a's stimuli (n x k): where ``a`` holds
    coordinates of a layer's units rather than the units (a dask-backed layer), its PWCCA weights are
    sums over the units of Xc' h_i, read from the layer.
    """
    return a.b @ ((a.units @ (a.d[:, None] * u)) if a.rotate else a.d[:, None] * u)


def pwcca_loadings(a: Prepared, u: np.ndarray) -> np.ndarray:
    """<h_i, x_j> of each canonical variate h_i of a with each of a's units x_j (p x k).

    h_i = Xc units diag(d) u_i, so Xc' h_i = units diag(lam d) u_i (eigen-whitening: Xc'Xc units =
    units diag(lam)); the PWCCA weight of variate i is sum_j |<h_i, x_j>| (Morcos et al. 2018).
    """
    return a.units @ ((a.lam * a.d)[:, None] * u)


@dataclass
class Fitted:
    """An alignment fitted on training stimuli: means, the full whitening maps (units -> whitened
    coordinates) and the k matched directions of each side.
    """

    mean_a: np.ndarray
    mean_b: np.ndarray
    whiten_a: np.ndarray
    whiten_b: np.ndarray
    u: np.ndarray
    v: np.ndarray
    weights: np.ndarray | None


def fit_pair(a: Prepared, b: Prepared, metric: str, product: np.ndarray | None = None) -> Fitted:
    """Fit the alignment of two prepared training representations (prepared with units kept)."""
    if metric == "shape":
        m = whitened_cross(a, b, product)
        u, _, vh = namespace(m).linalg.svd(m, full_matrices=False)
        k = min(u.shape[1], int((a.d > 0).sum()), int((b.d > 0).sum()))
        u, v = u[:, :k], vh[:k].T
    else:
        u, _, v = canonical(a, b, product)
    weights = pwcca_weights(a, u) if metric == "pwcca" else None
    return Fitted(a.mean, b.mean, a.units * a.d, b.units * b.d, u, v, weights)


@dataclass
class HeldOut:
    """Held-out stimuli under a fitted alignment, in its k matched directions: their number, their means
    there (from the training means), the diagonals of their centred cross product and Gram matrices there
    (k each), and their squared whitened norms about the training means (the shape metric's denominators).
    """

    n: int
    offset_a: np.ndarray
    offset_b: np.ndarray
    covariance: np.ndarray
    variance_a: np.ndarray
    variance_b: np.ndarray
    squared_a: float = 0.0
    squared_b: float = 0.0


def held_out(fitted: Fitted, x: np.ndarray, y: np.ndarray, metric: str) -> HeldOut:
    """Held-out stimuli x, y (n_test x p, n_test x q) under a fitted alignment."""
    if metric == "shape":
        xw, yw = (x - fitted.mean_a) @ fitted.whiten_a, (y - fitted.mean_b) @ fitted.whiten_b
        zx, zy = xw @ fitted.u, yw @ fitted.v
        squared = vdot(xw, xw), vdot(yw, yw)
    else:
        zx = (x - fitted.mean_a) @ (fitted.whiten_a @ fitted.u)
        zy = (y - fitted.mean_b) @ (fitted.whiten_b @ fitted.v)
        squared = (0.0, 0.0)
    offset_a, offset_b = zx.mean(axis=0), zy.mean(axis=0)
    zx, zy = zx - offset_a, zy - offset_b
    return HeldOut(x.shape[0], offset_a, offset_b, (zx * zy).sum(axis=0), (zx * zx).sum(axis=0),
                   (zy * zy).sum(axis=0), *squared)  # fmt: skip


def project_held_out(fitted: Fitted, n: int, means: tuple, grams: tuple, product: np.ndarray) -> HeldOut:
    """:func:`held_out` from the held-out stimuli's moments in the units (``means``, centred ``grams`` of
    each side, their centred cross ``product``).
    """
    a, b = fitted.whiten_a @ fitted.u, fitted.whiten_b @ fitted.v
    shift_a, shift_b = means[0] - fitted.mean_a, means[1] - fitted.mean_b
    sides = ((fitted.whiten_a, grams[0], shift_a), (fitted.whiten_b, grams[1], shift_b))
    squared = [float(np.vdot(w, (gram + n * np.outer(shift, shift)) @ w)) for w, gram, shift in sides]
    return HeldOut(n, shift_a @ a, shift_b @ b, (a * (product @ b)).sum(axis=0), (a * (grams[0] @ a)).sum(axis=0),
                   (b * (grams[1] @ b)).sum(axis=0), *squared)  # fmt: skip


def held_out_value(fitted: Fitted, x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """The metric on held-out stimuli x, y (n_test x p, n_test x q) under a fitted alignment."""
    return held_out_score(fitted, held_out(fitted, x, y, metric), metric)


def held_out_score(fitted: Fitted, h: HeldOut, metric: str) -> float:
    """The metric on held-out stimuli (:class:`HeldOut`) under a fitted alignment."""
    if metric == "shape":  # sum over stimuli of <xw u, yw v> about the training means, over |xw| |yw|
        return angle(float(h.covariance.sum()) + h.n * vdot(h.offset_a, h.offset_b), h.squared_a, h.squared_b)
    rho = held_out_correlations(h)
    return weighted_mean(fitted.weights, rho) if metric == "pwcca" else float(rho.mean())


def held_out_correlations(h: HeldOut) -> np.ndarray:
    """The correlations of the held-out stimuli's matched canonical variates."""
    denominator = namespace(h.covariance).sqrt(h.variance_a.clip(0, None) * h.variance_b.clip(0, None))
    return h.covariance / denominator.clip(TINY, None)
