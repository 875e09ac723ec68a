"""Ridge regression with a penalty per target chosen by efficient leave-one-out, primal or dual.

With centred training features Xc = U S V' (thin SVD, rank r) and centred targets Yc, ridge with an
(unpenalised) intercept has the hat matrix H = 11'/n + U diag(f) U', f = s^2 / (s^2 + alpha), and the
leave-one-out residuals e_i / (1 - H_ii) with e = Yc - U diag(f) U'Yc (Golub, Heath & Wahba 1979),
as scikit-learn's ``RidgeCV(alpha_per_target=True)`` computes them. Every quantity comes from U, s
and C = U'Yc, which the smaller Gram matrix gives: Xc'Xc (p <= n, primal) or Xc Xc' (p > n, dual: the
features never need to be held, only their n x n Gram matrix). Held-out predictions are
Z diag(s / (s^2 + alpha)) C with Z = Xt_c V, which is (Kt_c U) / s from the test-train Gram matrix.

Every function takes numpy arrays or torch tensors (``fit_encoding(device=...)``: the same arithmetic on a
torch device, :func:`namespace`), and returns the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._arrays import namespace, to_numpy, zeros

RANK_RTOL = 1e-12


@dataclass
class RidgePath:
    """A training fold's factorisation: u (n x r), s2 (r), c = u'Yc (r x targets), the targets' mean."""

    u: np.ndarray
    s2: np.ndarray
    c: np.ndarray
    y_mean: np.ndarray
    yc: np.ndarray
    n: int
    u2: np.ndarray = field(init=False, repr=False)  # u * u, the same under every penalty

    def __post_init__(self) -> None:
        self.u2 = self.u * self.u

    def loo_errors(
        self, alpha: float, *, out: np.ndarray | None = None, weighted: np.ndarray | None = None
    ) -> np.ndarray:
        """Mean squared leave-one-out error of each target under ``alpha`` (``out``: an n x targets buffer,
        ``weighted``: one like c).
        """
        xp = namespace(self.u)
        f = self.s2 / (self.s2 + alpha)
        leverage = 1 / self.n + self.u2 @ f
        weighted = xp.multiply(f[:, None], self.c, out=weighted)
        residual = xp.matmul(self.u, weighted, out=out)
        xp.subtract(self.yc, residual, out=residual)
        xp.square(residual, out=residual)
        return (1 / (1 - leverage) ** 2) @ residual / self.n

    def add_loo_errors(self, alphas: np.ndarray, errors: np.ndarray) -> None:
        """``errors[i] +=`` :meth:`loo_errors` under ``alphas[i]``, through one pair of buffers.

        The penalties in shares on two workers of one BLAS thread each ran slower than one after another on BLAS's
        two threads (1000 x 512 -> 1000 targets, 5 folds, AMD EPYC: 1.77-1.90 s against 1.51-1.57 s).
        """
        xp = namespace(self.yc)
        out, weighted = xp.empty_like(self.yc), xp.empty_like(self.c)
        for i, alpha in enumerate(alphas):
            errors[i] += self.loo_errors(float(alpha), out=out, weighted=weighted)

    def best_alphas(self, alphas: np.ndarray) -> np.ndarray:
        """Index into ``alphas`` of each target's smallest leave-one-out error (the first on ties; NaN errors
        never chosen, index 0 where every error is NaN).
        """
        xp = namespace(self.c)
        errors = zeros(self.c, (len(alphas), self.c.shape[1]))
        self.add_loo_errors(alphas, errors)
        return to_numpy(xp.where(xp.isnan(errors), np.inf, errors).argmin(0))

    def predict(self, z: Any, alphas: np.ndarray, chosen: np.ndarray) -> Any:
        """Predictions from test coordinates z = Xt_c V (n_test x r), each target with its alpha (``chosen``:
        indices into ``alphas``, a numpy array).
        """
        return z @ penalised(self.s2, self.c, alphas, chosen) + self.y_mean


def penalised(s2: np.ndarray, c: np.ndarray, alphas: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """diag(s / (s^2 + alpha)) C (r x targets), each target's column with its alpha ``alphas[chosen]``: the
    weights of the coordinates V'x_c (primal: V times it is the coefficients).
    """
    xp = namespace(c)
    out = xp.empty_like(c)
    s = xp.sqrt(s2)
    for i in np.unique(chosen):
        columns = np.flatnonzero(chosen == i)
        out[:, columns] = (s / (s2 + float(alphas[i])))[:, None] * c[:, columns]
    return out


def factorise(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(u, s^2, v) of centred training features; v is None in the dual form (p > n)."""
    n, p = xc.shape
    if p <= n:
        s2, v = _leading(xc.T @ xc)
        return (xc @ v) / namespace(xc).sqrt(s2), s2, v
    return *factorise_gram(xc @ xc.T), None


def factorise_gram(kc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, s^2) from a centred training Gram matrix Xc Xc'."""
    s2, u = _leading(kc)
    return u, s2


def _leading(a: Any) -> tuple[Any, Any]:
    """The eigenpairs (values, vectors) of the symmetric ``a`` above ``RANK_RTOL`` of its largest value."""
    s2, vectors = namespace(a).linalg.eigh(a)
    keep = s2 > RANK_RTOL * max(float(s2[-1]), np.finfo(float).tiny)
    return s2[keep], vectors[:, keep]


def centre_gram(k: Any, train: np.ndarray, test: np.ndarray) -> tuple[Any, Any]:
    """The training Gram matrix and the test-train one, both centred with the training features' mean."""
    k_train = k[train[:, None], train[None, :]]  # (np.ix_'s indices, which torch takes too)
    k_test = k[test[:, None], train[None, :]]
    row_mean = k_train.mean(axis=0)
    total = row_mean.mean()
    centred_train = k_train - row_mean[:, None] - row_mean[None, :] + total
    centred_test = k_test - k_test.mean(axis=1, keepdims=True) - row_mean[None, :] + total
    return centred_train, centred_test


def ridge_path(u: Any, s2: Any, y: Any) -> RidgePath:
    """The path of a factorised fold for targets y (n x targets)."""
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    return RidgePath(u, s2, u.T @ yc, y_mean, yc, y.shape[0])
