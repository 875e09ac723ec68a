"""PLS regression (PLS2, regression deflation), as scikit-learn's ``PLSRegression(scale=False)``.

Each component's weight w is the first left singular vector of X_k'Y (computed exactly from the
smaller of its two Gram matrices, where scikit-learn's default NIPALS iterates to a tolerance of
1e-6); scores t = X_k w, loadings p = X_k't / t't, q = Y't / t't, and X_{k+1} = X_k - t p'. Three
identities make it cheap: Y never needs deflating (t is orthogonal to the earlier scores, so
t'Y_k = t'Y), X_{k+1}'Y = X_k'Y - p (t'Y) is a rank-one update, so X'Y is formed once, and X_k
itself is never formed.
The coefficients are W (P'W)^+ Q'.
"""

from __future__ import annotations

import numpy as np


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


def predict_pls(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Predictions of a fitted PLS model for x (n x p)."""
    coef, x_mean, y_mean = model
    return (x - x_mean) @ coef + y_mean
