"""PLS regression (PLS2, regression deflation), as scikit-learn's ``PLSRegression(scale=False)``.

Each component's weight w is the first left singular vector of X_k'Y (computed exactly from the
smaller of its two Gram matrices, where scikit-learn's default NIPALS iterates to a tolerance of
1e-6); scores t = X_k w, loadings p = X_k't / t't, q = Y't / t't, and X_{k+1} = X_k - t p'. Three
identities make it cheap: Y never needs deflating (t is orthogonal to the earlier scores, so
t'Y_k = t'Y), X_{k+1}'Y = X_k'Y - p (t'Y) is a rank-one update, so X'Y is formed once, and X_k
itself is never formed.
The coefficients are W (P'W)^+ Q'.

``fit_pls_nipals`` instead runs NIPALS as scikit-learn's ``PLSRegression`` runs it by default (power
iterations from the first non-constant target, stopped when the squared change of w falls below
``tol`` = 1e-6 or after ``max_iter`` = 500, explicit deflation of X and Y): the numbers Brain-Score
reports, which differ from the converged limit where two singular values of X_k'Y are close.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import RnnprobeWarning
from .._lapack import largest_eigh

EPS = np.finfo(np.float64).eps


def first_left_singular_vector(m: np.ndarray) -> np.ndarray:
    """The unit first left singular vector of m (p x q), from the smaller Gram matrix."""
    if m.shape[0] <= m.shape[1]:
        return first_eigenvector(m @ m.T)
    v = first_eigenvector(m.T @ m)
    w = m @ v
    return w / np.linalg.norm(w)


def first_eigenvector(m: np.ndarray) -> np.ndarray:
    """The eigenvector of the symmetric ``m``'s largest eigenvalue (any sign: PLS's predictions do not depend on
    it), alone where ``m`` is large (:func:`.._lapack.largest_eigh`: of 512 x 512, 46 -> 12 ms).
    """
    return largest_eigh(m, 1)[1][:, -1]


def fit_pls(x: np.ndarray, y: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coef p x q, x mean, y mean) of PLS regression with ``n_components`` on x (n x p), y (n x q).

    X is never deflated either: with the scores T and loadings P so far, X_k w = X w - T (P'w), and
    X_k't = X't because t is orthogonal to the earlier scores.
    """
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc = x - x_mean
    yc = y - y_mean
    cross = xc.T @ yc
    (n, p), q = x.shape, y.shape[1]
    weights, loadings = np.zeros((p, n_components)), np.zeros((p, n_components))
    scores, y_loadings = np.zeros((n, n_components)), np.zeros((q, n_components))
    for k in range(n_components):
        w = first_left_singular_vector(cross)
        t = xc @ w - scores[:, :k] @ (loadings[:, :k].T @ w)
        tt = float(t @ t)
        if tt <= 1e-30 * max(float(np.vdot(xc, xc)), 1e-300):  # X is exhausted: the remaining components are zero
            break
        x_load = (t @ xc) / tt
        ty = t @ yc
        cross -= np.outer(x_load, ty)
        weights[:, k], loadings[:, k], scores[:, k], y_loadings[:, k] = w, x_load, t, ty / tt
    return _coefficients(weights, loadings, y_loadings), x_mean, y_mean


def _coefficients(weights: np.ndarray, loadings: np.ndarray, y_loadings: np.ndarray) -> np.ndarray:
    """PLS's coefficients W (P'W)^+ Q' (units x targets) from its weights, loadings and y loadings."""
    return weights @ np.linalg.pinv(loadings.T @ weights) @ y_loadings.T


def fit_pls_gram(kernel: np.ndarray, y: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """(dual coef A (n x q), y mean) of :func:`fit_pls`'s model from the centred training Gram matrix ``kernel``
    (Xc Xc', n x n) alone, for more units than training stimuli: a test stimulus's prediction is k A + y mean, k
    its centred products with the training stimuli.

    Every vector in the units' space is Xc' times one in the stimuli's: with D the projection off the scores so
    far (X_k = D Xc, K_k = D K D), the weight w = X_k'a / ||X_k'a|| where a = Y v, v the first eigenvector of
    Y'K_kY (= (X_k'Y)'(X_k'Y), so w is X_k'Y's first left singular vector), ||X_k'a||^2 = a'K_k a; the scores
    t = K_k a / ||X_k'a||, the loadings Xc't / t't. Y enters the weights only through YY': with more targets
    than stimuli, Y is replaced by U S of its thin SVD. K_k Y is updated by rank-one terms (K_{k+1} = P K_k P,
    P = I - tt'/t't), one product K t per component. The coefficients W (P'W)^+ Q' become
    A_w (A_p' K A_w)^+ Q' with W = Xc'A_w, P = Xc'A_p.
    """
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    n = len(kernel)
    basis = yc if yc.shape[1] <= n else _left_factor(yc)
    kb = kernel @ basis  # K_k Y, k = 0
    parts = _DualParts(n, yc.shape[1], n_components)
    limit = 1e-30 * max(float(np.trace(kernel)), 1e-300)  # fit_pls's test: t't against ||Xc||^2
    for _ in range(n_components):
        m = basis.T @ kb
        v = first_eigenvector((m + m.T) / 2)
        a, ka = basis @ v, kb @ v  # a and K_k a
        norm = np.sqrt(max(float(a @ ka), 0.0))
        t = ka / norm if norm > 0 else ka
        tt = float(t @ t)
        if tt <= limit:  # X is exhausted: the remaining components are zero
            break
        kt = parts.deflate(kernel @ t)  # K_k t (before this component joins the scores)
        parts.add(a / norm, t, (t @ yc) / tt)
        kb -= np.outer(kt, t @ basis) / tt
        kb -= np.outer(t, t @ kb) / tt
    return parts.coef(kernel), y_mean


class _DualParts:
    """The components of PLS's dual form: each weight's vector over the stimuli (w = Xc'D a, D the projection off
    the earlier scores), the scores t, their t't and the y loadings; ``coef`` the dual coefficients
    A_w (A_p' K A_w)^+ Q' (A_p = T / t't: the loadings Xc't / t't).
    """

    def __init__(self, n: int, q: int, n_components: int) -> None:
        self.weights, self.scores = np.zeros((n, n_components)), np.zeros((n, n_components))
        self.tts, self.y_loadings = np.ones(n_components), np.zeros((q, n_components))
        self.k = 0

    def deflate(self, v: np.ndarray) -> np.ndarray:
        """D v: v off the scores so far."""
        scores = self.scores[:, : self.k]
        return v - scores @ ((scores.T @ v) / self.tts[: self.k])

    def add(self, a: np.ndarray, t: np.ndarray, y_loading: np.ndarray) -> None:
        """Component k: the weight X_k'a (a over the stimuli), its scores t and y loading."""
        k = self.k
        self.weights[:, k], self.scores[:, k], self.tts[k], self.y_loadings[:, k] = self.deflate(a), t, t @ t, y_loading
        self.k += 1

    def coef(self, kernel: np.ndarray) -> np.ndarray:
        loadings = self.scores / self.tts
        return self.weights @ np.linalg.pinv(loadings.T @ kernel @ self.weights) @ self.y_loadings.T


def _left_factor(y: np.ndarray) -> np.ndarray:
    """U S of y's thin SVD (n x n for n < columns): U S (U S)' = y y'."""
    u, s, _ = np.linalg.svd(y, full_matrices=False)
    return u * s


def fit_pls_nipals(
    x: np.ndarray, y: np.ndarray, n_components: int, *, tol: float = 1e-6, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coef, x mean, y mean) of PLS regression by NIPALS with scikit-learn's stopping rule and deflation."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xk, yk = x - x_mean, y - y_mean
    p, q = x.shape[1], y.shape[1]
    weights, loadings = np.zeros((p, n_components)), np.zeros((p, n_components))
    y_loadings = np.zeros((q, n_components))
    for k in range(n_components):
        yk[:, np.all(np.abs(yk) < 10 * EPS, axis=0)] = 0.0  # targets explained to rounding are exhausted
        w = _nipals_weights(_Units(xk), yk, tol, max_iter)
        if w is None:  # every target's residual is constant: the remaining components are zero
            break
        w *= np.sign(w[np.argmax(np.abs(w))])
        t = xk @ w
        tt = float(t @ t)
        x_load, y_load = (t @ xk) / tt, (t @ yk) / tt
        xk -= np.outer(t, x_load)
        yk -= np.outer(t, y_load)
        weights[:, k], loadings[:, k], y_loadings[:, k] = w, x_load, y_load
    return _coefficients(weights, loadings, y_loadings), x_mean, y_mean


def fit_pls_nipals_gram(
    kernel: np.ndarray, y: np.ndarray, n_components: int, *, tol: float = 1e-6, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """(dual coef A (n x q), y mean) of :func:`fit_pls_nipals`'s model from the centred training Gram matrix
    (Xc Xc') alone, as :func:`fit_pls_gram`: the same iterations on w = X_k'a (their inner products a'K_k b, the
    scores K_k a), X deflated as K_{k+1} = P K_k P (P = I - tt'/t't), Y explicitly. NIPALS' sign convention on w,
    its largest entry positive, changes no prediction: the weight, scores and loadings flip together.
    """
    y_mean = y.mean(axis=0)
    yk, kk = y - y_mean, kernel.copy()
    parts = _DualParts(len(kernel), y.shape[1], n_components)
    for _ in range(n_components):
        yk[:, np.all(np.abs(yk) < 10 * EPS, axis=0)] = 0.0  # targets explained to rounding are exhausted
        a = _nipals_weights(_Stimuli(kk), yk, tol, max_iter)
        if a is None:  # every target's residual is constant: the remaining components are zero
            break
        t = kk @ a
        tt = float(t @ t)
        y_load = (t @ yk) / tt
        yk -= np.outer(t, y_load)
        parts.add(a, t, y_load)
        kt = kk @ t
        kk += np.outer(t, t) * (float(t @ kt) / tt**2) - (np.outer(t, kt) + np.outer(kt, t)) / tt
    return parts.coef(kernel), y_mean


COVARIANCE_EXHAUSTED = 1e-12  # the covariance forms' floor on t't (of ||Xc||^2) and on a target's residual variance


def fit_pls_covariance(gram: np.ndarray, cross: np.ndarray, n_components: int) -> np.ndarray:
    """The coefficients (p x q) of :func:`fit_pls`'s model from the centred training features' Gram matrix Xc'Xc
    (``gram``, p x p) and their products with the centred targets Xc'Yc (``cross``, p x q) alone, for steps read in
    blocks of stimuli (:mod:`.tall`): t't = w'G_k w, the loadings G_k w / t't, t'Y = w'(X_k'Y), and X deflated as
    G_{k+1} = G_k - t't p p'. G_k's small eigenvalues are differences, exact to rounding of ||G||, so X counts as
    exhausted where t't falls below COVARIANCE_EXHAUSTED (1e-12) of ||Xc||^2 (fit_pls: 1e-30, from the scores).
    """
    p, q = cross.shape
    gk, cross = gram.copy(), cross.copy()
    weights, loadings = np.zeros((p, n_components)), np.zeros((p, n_components))
    y_loadings = np.zeros((q, n_components))
    limit = COVARIANCE_EXHAUSTED * max(float(np.trace(gram)), 1e-300)
    for k in range(n_components):
        w = first_left_singular_vector(cross)
        gw = gk @ w
        tt = float(w @ gw)
        if tt <= limit:  # X is exhausted: the remaining components are zero
            break
        x_load, ty = gw / tt, w @ cross
        cross -= np.outer(x_load, ty)
        gk -= np.outer(x_load, gw)  # tt p p'
        weights[:, k], loadings[:, k], y_loadings[:, k] = w, x_load, ty / tt
    return _coefficients(weights, loadings, y_loadings)


def fit_pls_nipals_covariance(
    gram: np.ndarray, cross: np.ndarray, yy: np.ndarray, n_components: int, *, tol: float = 1e-6, max_iter: int = 500
) -> np.ndarray:
    """The coefficients (p x q) of :func:`fit_pls_nipals`'s model from Xc'Xc (``gram``), Xc'Yc (``cross``) and
    Yc'Yc (``yy``, q x q) alone, as :func:`fit_pls_covariance`: NIPALS' iterate u = Y_k e held as e over the targets
    (X_k'u = (X_k'Y_k) e, u'u = e'(Y_k'Y_k)e, Y_k't = (X_k'Y_k)'w, t't = w'G_k w), Y deflated as Y_k'Y_k -= t't q q'. A
    target counts as exhausted where its residual sum of squares falls below COVARIANCE_EXHAUSTED of its own (the
    data form: every residual below 10 eps), and the iterations start from the first target that is not.
    """
    p, q = cross.shape
    gk, cross, yk = gram.copy(), cross.copy(), yy.copy()
    weights, loadings = np.zeros((p, n_components)), np.zeros((p, n_components))
    y_loadings = np.zeros((q, n_components))
    floor = COVARIANCE_EXHAUSTED * np.diagonal(yy)
    for k in range(n_components):
        spent = np.diagonal(yk) <= floor
        cross[:, spent], yk[spent], yk[:, spent] = 0.0, 0.0, 0.0
        w = _nipals_covariance_weights(gk, cross, yk, tol, max_iter)
        if w is None:  # every target's residual is constant: the remaining components are zero
            break
        w *= np.sign(w[np.argmax(np.abs(w))])
        gw = gk @ w
        tt = float(w @ gw)
        x_load, y_load = gw / tt, (w @ cross) / tt
        cross -= tt * np.outer(x_load, y_load)
        gk -= np.outer(x_load, gw)
        yk -= tt * np.outer(y_load, y_load)
        weights[:, k], loadings[:, k], y_loadings[:, k] = w, x_load, y_load
    return _coefficients(weights, loadings, y_loadings)


def _nipals_covariance_weights(
    gk: np.ndarray, cross: np.ndarray, yk: np.ndarray, tol: float, max_iter: int
) -> np.ndarray | None:
    """:func:`_nipals_weights` from G_k = X_k'X_k, X_k'Y_k and Y_k'Y_k (None: Y_k is exhausted)."""
    columns = np.flatnonzero(np.diagonal(yk) > 0)
    if columns.size == 0:
        return None
    e, previous = np.zeros(len(yk)), None
    e[columns[0]] = 1.0
    for _ in range(max_iter):
        w = (cross @ e) / float(e @ yk @ e)
        w = w / (np.sqrt(w @ w) + EPS)
        c = (w @ cross) / float(w @ gk @ w)
        e = c / (c @ c + EPS)
        if len(yk) == 1 or (previous is not None and float((w - previous) @ (w - previous)) < tol):
            return w
        previous = w
    _warn_not_converged(max_iter, tol)
    return w


class _Units:
    """NIPALS' weights w in the units' space of X_k (n x p)."""

    def __init__(self, xk: np.ndarray) -> None:
        self.xk = xk

    def lift(self, u: np.ndarray) -> np.ndarray:
        return self.xk.T @ u

    def unit(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(w normalised, its scores X_k w), in scikit-learn's order of operations."""
        w = w / (np.sqrt(w @ w) + EPS)
        return w, self.xk @ w

    def change(self, w: np.ndarray, t: np.ndarray, previous: np.ndarray, previous_t: np.ndarray) -> float:
        """||w - previous||^2."""
        return float((w - previous) @ (w - previous))


class _Stimuli:
    """NIPALS' weights w = X_k'a held as a over the stimuli, from K_k = X_k X_k' (n x n): one product with K_k an
    iteration (the scores K_k a give the norm a'K_k a, and the change's K_k (a - a_prev) = t - t_prev).
    """

    def __init__(self, kk: np.ndarray) -> None:
        self.kk = kk

    def lift(self, u: np.ndarray) -> np.ndarray:
        return u

    def unit(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a scaled to ||X_k'a|| = 1, its scores K_k a)."""
        t = self.kk @ a
        scale = np.sqrt(max(float(a @ t), 0.0)) + EPS
        return a / scale, t / scale

    def change(self, a: np.ndarray, t: np.ndarray, previous: np.ndarray, previous_t: np.ndarray) -> float:
        """||X_k'(a - previous)||^2 = (a - previous)'(t - previous_t)."""
        return float((a - previous) @ (t - previous_t))


def _nipals_weights(space: _Units | _Stimuli, yk: np.ndarray, tol: float, max_iter: int) -> np.ndarray | None:
    """NIPALS power iterations for the first left singular vector of X_k'Y_k, in ``space`` (None: Y_k is
    exhausted).
    """
    columns = np.flatnonzero(np.any(np.abs(yk) > EPS, axis=0))
    if columns.size == 0:
        return None
    u, previous, previous_t = yk[:, columns[0]], None, None
    for _ in range(max_iter):
        w, t = space.unit(space.lift(u) / (u @ u))
        c = (yk.T @ t) / (t @ t)
        u = (yk @ c) / (c @ c + EPS)
        if yk.shape[1] == 1 or (previous is not None and space.change(w, t, previous, previous_t) < tol):
            return w
        previous, previous_t = w, t
    _warn_not_converged(max_iter, tol)
    return w


def _warn_not_converged(max_iter: int, tol: float) -> None:
    warnings.warn(
        f"estimator='pls_nipals': NIPALS stopped after {max_iter} iterations without reaching tol={tol} (as "
        f"scikit-learn, the last iterate is used); estimator='pls' gives the converged solution.",
        RnnprobeWarning,
        stacklevel=5,
    )


def predict_pls(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Predictions of a fitted PLS model for x (n x p)."""
    coef, x_mean, y_mean = model
    return (x - x_mean) @ coef + y_mean
