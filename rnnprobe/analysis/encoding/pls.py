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

EPS = np.finfo(np.float64).eps


def first_left_singular_vector(m: np.ndarray) -> np.ndarray:
    """The unit first left singular vector of m (p x q), from the smaller Gram matrix."""
    if m.shape[0] <= m.shape[1]:
        return np.linalg.eigh(m @ m.T)[1][:, -1]
    v = np.linalg.eigh(m.T @ m)[1][:, -1]
    w = m @ v
    return w / np.linalg.norm(w)


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
    rotations = weights @ np.linalg.pinv(loadings.T @ weights)
    return rotations @ y_loadings.T, x_mean, y_mean


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
        w = _nipals_weights(xk, yk, tol, max_iter)
        if w is None:  # every target's residual is constant: the remaining components are zero
            break
        w *= np.sign(w[np.argmax(np.abs(w))])
        t = xk @ w
        tt = float(t @ t)
        x_load, y_load = (t @ xk) / tt, (t @ yk) / tt
        xk -= np.outer(t, x_load)
        yk -= np.outer(t, y_load)
        weights[:, k], loadings[:, k], y_loadings[:, k] = w, x_load, y_load
    rotations = weights @ np.linalg.pinv(loadings.T @ weights)
    return rotations @ y_loadings.T, x_mean, y_mean


def _nipals_weights(xk: np.ndarray, yk: np.ndarray, tol: float, max_iter: int) -> np.ndarray | None:
    """NIPALS power iterations for the first left singular vector of X_k'Y_k (None: Y_k is exhausted)."""
    columns = np.flatnonzero(np.any(np.abs(yk) > EPS, axis=0))
    if columns.size == 0:
        return None
    u, previous = yk[:, columns[0]], None
    for _ in range(max_iter):
        w = (xk.T @ u) / (u @ u)
        w /= np.sqrt(w @ w) + EPS
        t = xk @ w
        c = (yk.T @ t) / (t @ t)
        u = (yk @ c) / (c @ c + EPS)
        if yk.shape[1] == 1 or (previous is not None and float((w - previous) @ (w - previous)) < tol):
            return w
        previous = w
    warnings.warn(
        f"estimator='pls_nipals': NIPALS stopped after {max_iter} iterations without reaching tol={tol} (as "
        f"scikit-learn, the last iterate is used); estimator='pls' gives the converged solution.",
        RnnprobeWarning,
        stacklevel=4,
    )
    return w


def predict_pls(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Predictions of a fitted PLS model for x (n x p)."""
    coef, x_mean, y_mean = model
    return (x - x_mean) @ coef + y_mean
