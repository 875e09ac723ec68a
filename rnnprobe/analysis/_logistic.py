"""L2-penalised logistic regression for every (fold, time step, target set) at once.

Each problem is scikit-learn's ``LogisticRegression(C=1/penalty)`` (lbfgs, l2, with an
unpenalised intercept), optionally after a ``StandardScaler``:

    minimise  sum_i loss(z_i w + b, y_i) + penalty / 2 ||w||^2,   z_i = (x_i - mean) * inv,

with the binary logistic loss on one weight vector (2 classes) or the multinomial loss on one
vector per class (sklearn's parametrisation). Since the multinomial loss's gradient sums to zero
over the classes, the optimal class weights sum to zero: they are W = Theta Q' with Q an
orthonormal basis of the zero-sum class vectors and Theta (p, K - 1), with the same penalty
(||W|| = ||Theta||); that removes the intercepts' redundant direction too.

The solver is a truncated Newton method (Newton-CG with Armijo backtracking), batched over all
problems of a block of time steps: they share the data matrix, so every Hessian-vector product
is one GEMM over all folds and target sets. The conjugate gradients are preconditioned with
Böhning's bound on the Hessian, c Z'Z + penalty I (c = 1/4 binary, 1/2 multinomial), which is
the exact Hessian at the start (w = 0); one per time step serves every fold, built from the Gram
matrix of all the block's samples that :class:`._linear.TimeBlock` shares with the ridge path
(:meth:`_Problems._shared`). Centring on the fold's training mean
makes the intercept's block of it diagonal (c n_train). With more units than samples (a
convolutional layer), problems on the CPU are this solver's narrow problems on each fold's principal
coordinates (:mod:`._logistic_coordinates`: the optimum lies in the training samples' span, so r <= n_train
coordinates replace the p units, exactly: 300 x 4 x 4096, 10 classes, 1.35 -> 0.34 s, against MNE with
scikit-learn's lbfgs 0.71 s; 2 classes with 20 permuted label sets, 3.4 -> 0.47 s against Newton's method in
the samples' space). On a device, binary problems are solved by Newton's method in the samples' space
(:mod:`._logistic_dual`: exact (n + 1) x (n + 1) systems, a few iterations, each a batch of Cholesky
factors, which the conjugate gradients' products with the coordinates outrun on the CPU once there are a few
target sets); multinomial ones keep this solver with the p x p inverses replaced by Woodbury's identity
on n x n systems of the samples centred and scaled over all of them (any positive definite approximation
preconditions; the fits are the same),
weighted by the samples' current curvature at every Newton iteration (Böhning's bound is loose for
them), factored in float32 (in float64 where a tiny penalty leaves them positive definite only there):
200 x 10 x 512, 4 classes, 5 folds, 2.4 -> 0.9-1.2 s, then 0.57 -> 0.44 s in float32 (AMD EPYC, 1
thread; scikit-learn's lbfgs 0.18 s), where the p x p inverses would take minutes for a 4096-unit layer.
A training set that misses a class (a rare class in a permuted label set, or folds by class) is fitted
as scikit-learn does, on the classes present (see :meth:`_Problems._classes`).

Gradients, losses and the line search are float64; the conjugate gradients' Hessian products
and preconditioning, approximate by nature, run in float32 (their GEMMs dominate the cost). It
stops when every problem's gradient of the *mean* loss (sklearn's scaling) is below ``tol`` in
max norm (the samples' space solver: in Euclidean norm, which bounds it): 1e-6 by default, where
sklearn's lbfgs stops at 1e-4, so these solutions are closer to the optimum than sklearn's default
fits (tested against sklearn's Newton solver at 1e-12).
"""

from __future__ import annotations

import numpy as np
import torch

from ._line_search import backtrack, not_converged
from ._linear import (
    BUDGET,
    LinearFit,
    TimeBlock,
    as_device,
    block_budget,
    matmul,
    time_blocks,
    to_original_units,
    work_bytes,
)
from ._logistic_coordinates import fit_in_coordinates
from ._logistic_dual import dual_newton

TOL, MAX_ITER = 1e-6, 100  # the solvers' defaults: the mean loss's gradient norm at which they stop; Newton iterations


def class_basis(n_classes: int) -> np.ndarray:
    """(K, m) map from parameters to class logits: [[0], [1]] for 2 classes (class 1's logit;
    class 0's is 0), else an orthonormal basis of the zero-sum vectors of R^K.
    """
    if n_classes == 2:
        return np.array([[0.0], [1.0]])
    centred = np.eye(n_classes) - 1.0 / n_classes
    q, _ = np.linalg.qr(centred[:, : n_classes - 1])
    return q


class _Problems:
    """The logistic problems of one time block: data (tb, n, p) shared by folds F and sets S. The solver reaches
    the data only through :meth:`_forward`, :meth:`_backward` and :meth:`_through` (the products X v, [X 1]' r and
    a Hessian product's two), which :class:`._logistic_rows.RowProblems` takes over blocks of stimuli.
    """

    def __init__(self, data: TimeBlock, folds: list, y: torch.Tensor, present: torch.Tensor, penalty: float,
                 scale: bool, *, orthogonal: bool = False):  # fmt: skip
        device = self.device = data.device
        n_classes = present.shape[-1]
        self.orthogonal = orthogonal and n_classes > 2  # (the features' columns orthogonal: see _diagonal)
        self.diagonal: torch.Tensor | None = None
        tb, _, p = data.shape
        self.n_sets = y.shape[1]
        self.basis = torch.as_tensor(class_basis(n_classes), dtype=torch.float64, device=device)  # (K, m)
        self.m = self.basis.shape[1]
        self.binary = n_classes == 2
        self.penalty = penalty  # the preconditioners' (of every problem: any positive definite one serves)
        penalties = self._classes(present, penalty)
        onehot = torch.nn.functional.one_hot(y, n_classes).to(torch.float64)  # (n, S, K)
        self.target = (onehot[..., 1:] if self.binary else onehot)[:, None]  # (n, 1, S, 1 or K)
        self.weights = torch.as_tensor(np.stack(folds, axis=1), dtype=torch.float64, device=device)  # (n, F)
        self.c = 0.25 if self.binary else 0.5
        self.moments = [data.fold(f, scale=scale) for f in range(len(folds))]
        mean = torch.stack([fold.mean for fold in self.moments], 1)  # (tb, F, p)
        inv = torch.stack([fold.inv for fold in self.moments], 1)
        self.n_train = self.weights.sum(dim=0)[None, :, None]  # (1, F, 1)
        self.precond_b = self.c * self.n_train[..., None]  # (1, F, 1, 1): the intercepts' block
        self.shape = (tb, len(folds), p, self.n_sets, self.m)
        # more units than samples (the block has no p x p Gram matrices): the preconditioner by Woodbury's
        # identity, from n x n systems
        self.wide = not data.grams
        self.scale_rows = torch.sqrt(self.c * self.weights.T)[None].expand(tb, -1, -1)  # (tb, F, n): S below
        if self.wide:
            y, precond = self._woodbury(data, scale)
        else:  # (orthogonal features: no p x p preconditioner, refresh's diagonal one)
            y, precond = None, None if self.orthogonal else self._shared(data, scale)
        # the data in both precisions: gradients and losses in float64, the conjugate gradients'
        # Hessian products and preconditioning (approximate by nature) in float32, at a third of
        # the cost of the GEMMs that dominate the solver
        arrays = {**self._products(data), "mean": mean, "inv": inv, "shift": mean * inv, "basis": self.basis,
                  "weights": self.weights, "penalties": penalties}  # fmt: skip
        if precond is not None:
            arrays["precond"] = precond
        if self.wide:
            arrays["y"] = y
        self.data = {torch.float64: arrays, torch.float32: {k: v.float() for k, v in arrays.items()}}

    @staticmethod
    def _products(data: TimeBlock) -> dict[str, torch.Tensor]:
        """The arrays the products with the data read: the block's samples (tb, n, p) and, for the adjoint, their
        contiguous transpose with a row of ones (tb, p + 1, n; the GEMM runs twice as fast on it, and the ones add
        the sums over samples).
        """
        tb, n, _ = data.shape
        ones = torch.ones(tb, 1, n, dtype=data.x.dtype, device=data.device)
        return {"x": data.x, "xt": torch.cat([data.x.mT, ones], dim=1)}

    def _classes(self, present: torch.Tensor, penalty: float) -> torch.Tensor:
        """What the classes each training set holds (``present`` (F, S, K)) change, as scikit-learn fits the
        classes present: a class absent from a multiclass problem's training set gets no probability (its
        logit -inf: ``offset``); where two classes remain, the problem is scikit-learn's binary one, whose
        penalty on the one logit difference is half the multinomial's on two opposite class vectors, so
        its penalty doubles; a training set of one class has no finite optimum and is not fitted (``free``
        False; :func:`mask_absent_classes` makes it predict that class). Returns the penalties per problem
        (1, F, 1, S, 1).
        """
        count = present.sum(dim=-1)  # (F, S)
        self.free = count > 1
        self.offset = torch.where(present, 0.0, -torch.inf).to(torch.float64)  # (F, S, K)
        factor = torch.where((count == 2) & (present.shape[-1] > 2), 2.0, 1.0).to(torch.float64)
        return (penalty * factor)[None, :, None, :, None]

    def _shared(self, data: TimeBlock, scale: bool) -> torch.Tensor:
        """(c n_f / n D X'X D + penalty I)^-1 (tb, p, p), one per step for every fold: X the block's samples
        centred over all of them, D their inverse standard deviations (1 without ``scale``, or where
        constant), n_f the folds' mean training count. Any positive definite matrix preconditions to the
        same fits; the folds' training sets share most samples, so this one is close to each fold's own
        and, read once for all folds and target sets, cheaper to apply (per-fold matrices are read once per
        fold: 600 x 10 x 400, 4 classes, 1.42 -> 0.79 s, with 84 Hessian products against 111).
        """
        n = data.shape[1]
        gram = data.gram_all * (self.c * float(self.n_train.mean()) / n)
        if scale:
            inv = data.inverse_std()
            gram = gram * inv[:, :, None] * inv[:, None, :]
        torch.diagonal(gram, dim1=1, dim2=2).add_(self.penalty)
        return torch.cholesky_inverse(torch.linalg.cholesky(gram))

    def _woodbury(self, data: TimeBlock, scale: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(Y, Cholesky factors of K_f (tb, F, n, n)) for a preconditioner by Woodbury's identity: with Y the
        samples centred and scaled over all samples (not per fold: any positive definite approximation of
        the Hessian preconditions, and one product serves every fold) and S_f = sqrt(c) on fold f's
        training rows, 0 elsewhere (``scale_rows``; :meth:`refresh` may change it), K_f = penalty I +
        S_f Y Y' S_f and (Y' S_f^2 Y + penalty I)^-1 r = (r - Y' S_f K_f^-1 S_f Y r) / penalty: n x n
        systems instead of p x p ones (p > n).
        """
        y = data.x
        if scale:  # the samples' population standard deviation, 1 where constant
            y = y * data.inverse_std()[:, None, :]
        self.kernel = matmul(y, y.mT)  # (tb, n, n)
        return y, self._woodbury_factors(self.scale_rows)

    def _woodbury_factors(self, rows: torch.Tensor) -> torch.Tensor:
        """Cholesky factors of penalty I + S K S per fold (tb, F, n, n), S = ``rows`` (tb or 1, F, n): solves
        with them cost less than products with their inverses, and no inverse is formed.
        """
        for dtype in (torch.float32, torch.float64):  # float32: 2x faster (200 x 10 x 512: 0.57 -> 0.44 s)
            scale = rows.to(dtype)
            system = scale[..., :, None] * self.kernel.to(dtype)[:, None] * scale[..., None, :]
            torch.diagonal(system, dim1=-2, dim2=-1).add_(self.penalty)
            factor, info = torch.linalg.cholesky_ex(system)
            if not bool(info.any()):  # else a tiny penalty: positive definite only in float64
                return factor.float()
        raise torch.linalg.LinAlgError("the preconditioner is not positive definite")

    def refresh(self, prob: torch.Tensor) -> None:
        """Wide multinomial problems: the preconditioner from the current curvature instead of Böhning's
        bound, which overestimates the softmax Hessian by K / 2 at the start and more as the fits sharpen
        (200 x 10 x 512, 4 classes: 227 -> 79 conjugate-gradient steps, 1.9 -> 0.9 s): each sample weighted
        by its Hessian block's mean eigenvalue, (1 - sum p^2) / m, averaged over the target sets, then
        (Y' W Y + penalty I)^-1 by Woodbury's identity; on orthogonal features, the diagonal of Z' W Z +
        penalty I (:meth:`_diagonal`). Binary problems keep the bound (wide binary problems are solved in the
        samples' space, :mod:`._logistic_dual`; when they took this path, refreshing cost more than it saved).
        """
        if self.binary or not (self.wide or self.orthogonal):
            return
        curvature = (1 - (prob * prob).sum(dim=-1)) / self.m  # (tb, n, F, S)
        weight = curvature.mean(dim=3).permute(0, 2, 1) * self.weights.T[None]  # (tb, F, n)
        self.precond_b = torch.clamp(weight.sum(dim=2), min=1e-12 * self.weights.shape[0])[..., None, None]
        if self.orthogonal:
            self.diagonal = self._diagonal(weight)
            return
        self.scale_rows = torch.sqrt(weight)
        self.data[torch.float32]["precond"] = self._woodbury_factors(self.scale_rows)

    def _diagonal(self, weight: torch.Tensor) -> torch.Tensor:
        """Multinomial problems on orthogonal features (a wide layer's principal coordinates, whose Gram matrix is
        diagonal, :mod:`._logistic_coordinates`): the inverse of the Hessian's diagonal at the samples' current
        curvature ``weight`` (tb, F, n), in float32, where Bohning's bound is that diagonal at a fixed, loose
        weight (500 x 4 x 4096 after a ReLU, 10 classes, 5 folds: 3198 -> 2195 Hessian products, 4.5 -> 3.1 s,
        AMD EPYC, 1 thread). Any positive definite preconditioner gives the same fits to the tolerance. Binary
        problems keep the bound: weighted by p (1 - p), they ran 1.04-1.09x faster, but their stopping points
        lay further from the optimum (300 x 4 x 4096, 20 permutations: 3 of 105 scores off a fit at 1e-11, the
        bound's 1, up to 5 test samples).
        """
        data = self.data[torch.float64]
        x, mean = data["x"], data["mean"]  # (tb, n, p), (tb, F, p)
        # diag(Z_f' W Z_f), Z_f = (x - mean_f) inv_f: inv^2 (W x^2 - 2 mean W x + mean^2 sum W)
        spread = matmul(weight, x * x) - 2 * mean * matmul(weight, x) + mean * mean * weight.sum(dim=2)[..., None]
        return (1 / (spread.clamp(min=0) * data["inv"] ** 2 + self.penalty)).float()

    def linear(self, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Z_f [w; b] for every problem: w (tb, F, p, S, m), b (tb, F, S, m) -> (tb, n, F, S, m)."""
        scaled, offset = self._scaled(w, b)
        return self._forward(scaled).view(len(offset), -1, *offset.shape[1:]) + offset[:, None]

    def _scaled(self, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the weights of the centred data, (tb, p, F S m); the offsets, (tb, F, S, m)) that give Z_f [w; b]."""
        tb, f, p, s, m = w.shape
        data = self.data[w.dtype]
        scaled = (w * data["inv"][..., None, None]).permute(0, 2, 1, 3, 4).reshape(tb, p, f * s * m)
        return scaled, b - torch.einsum("tfp,tfpsm->tfsm", data["shift"], w)

    def _forward(self, scaled: torch.Tensor) -> torch.Tensor:
        """X scaled: the centred data times (tb, p, columns) -> (tb, n, columns)."""
        return matmul(self.data[scaled.dtype]["x"], scaled)

    def _backward(self, r: torch.Tensor) -> torch.Tensor:
        """[X 1]' r: (tb, n, columns) -> (tb, p + 1, columns), the last row the sums over samples."""
        return matmul(self.data[r.dtype]["xt"], r)

    def adjoint(self, r: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Z_f' r for r (tb, n, F, S, m), plus penalty * w."""
        return self._gathered(self._backward(r.reshape(*r.shape[:2], -1)), w, r.dtype)

    def _gathered(self, back: torch.Tensor, w: torch.Tensor | None, dtype: torch.dtype) -> tuple:
        """(Z_f' r + penalty * w, the sums of r over samples) from [X 1]' r (tb, p + 1, F S m)."""
        _, f, _, s, m = self.shape
        data = self.data[dtype]
        back = back.view(len(back), -1, f, s, m).permute(0, 2, 1, 3, 4)
        back, total = back[:, :, :-1], back[:, :, -1]  # the last row of xt is ones: the sums over samples
        gw = (back - data["mean"][..., None, None] * total[:, :, None]) * data["inv"][..., None, None]
        if w is not None:
            gw = gw + data["penalties"] * w
        return gw, total

    def loss(self, eta: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Objective per problem (tb, F, S) at linear predictions eta (tb, n, F, S, m)."""
        if self.binary:  # log(1 + e^eta) - y eta
            nll = (torch.nn.functional.softplus(eta) - eta * self.target).sum(dim=-1)
        else:
            logits = eta @ self.basis.T  # an absent class's target is 0 on the training samples (weight 1)
            nll = torch.logsumexp(logits + self.offset, dim=-1) - (logits * self.target).sum(dim=-1)  # (tb, n, F, S)
        data = torch.einsum("tnfs,nf->tfs", nll, self.weights)
        return data + 0.5 * self.data[torch.float64]["penalties"][:, :, 0, :, 0] * (w * w).sum(dim=(2, 4))

    def probabilities(self, eta: torch.Tensor) -> torch.Tensor:
        """Class 1's probability (binary) or all classes' (tb, n, F, S, m or K)."""
        return torch.sigmoid(eta) if self.binary else torch.softmax(eta @ self.basis.T + self.offset, dim=-1)

    def gradient(self, prob: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        residual = prob - self.target
        if not self.binary:
            residual = residual @ self.basis
        return self.adjoint(residual * self.weights[None, :, :, None, None], w)

    def curvature(self, prob: torch.Tensor) -> torch.Tensor:
        """What the Hessian products need of the probabilities, in float32, training weights
        included: p (1 - p) (binary), or the class probabilities.
        """
        if self.binary:
            return (prob * (1 - prob) * self.weights[None, :, :, None, None]).float()
        return prob.float()

    def hessian_vector(self, curvature: torch.Tensor, vw: torch.Tensor, vb: torch.Tensor) -> tuple:
        """H [vw; vb] (in float32): the softmax Jacobian (diag(P) - P P') applied to Z_f v,
        mapped back.
        """
        vw = vw.float()
        scaled, offset = self._scaled(vw, vb.float())
        hw, hb = self._gathered(self._through(scaled, offset, curvature), vw, torch.float32)
        return hw.double(), hb.double()

    def _through(self, scaled: torch.Tensor, offset: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
        """[X 1]' J (X scaled + offset): the Hessian product's two products with the data, J the curvature's."""
        tb = offset.shape[0]
        u = self._forward(scaled).view(tb, -1, *offset.shape[1:]) + offset[:, None]
        return self._backward(self.jacobian(curvature, u, slice(None)).reshape(tb, u.shape[1], -1))

    def jacobian(self, curvature: torch.Tensor, u: torch.Tensor, rows: slice) -> torch.Tensor:
        """The softmax Jacobian at the samples ``rows`` (their curvature's) applied to u (tb, rows, F, S, m)."""
        if self.binary:
            return curvature[:, rows] * u
        basis = self.data[torch.float32]["basis"]
        pu = curvature[:, rows] * (u @ basis.T)
        ju = (pu - curvature[:, rows] * pu.sum(dim=-1, keepdim=True)) @ basis
        return ju * self.data[torch.float32]["weights"][None, rows, :, None, None]

    def precondition(self, rw: torch.Tensor, rb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bohning's bound's inverse applied to the residual (in float32): the intercepts' block is diagonal."""
        tb, f, p, s, m = rw.shape
        data = self.data[torch.float32]
        r = rw.float()
        if self.diagonal is not None:
            return (r * self.diagonal[..., None, None]).double(), rb / self.precond_b
        if not self.wide:
            z = matmul(data["precond"], r.permute(0, 2, 1, 3, 4).reshape(tb, p, f * s * m))
            return z.view(tb, p, f, s, m).permute(0, 2, 1, 3, 4).double(), rb / self.precond_b
        rows = self.scale_rows.float()[..., None]  # (tb, F, n, 1): S, zero outside the fold's training set
        zr = matmul(data["y"], r.permute(0, 2, 1, 3, 4).reshape(tb, p, -1)).view(tb, -1, f, s * m)  # Y r_f, all f
        solved = torch.cholesky_solve(zr.permute(0, 2, 1, 3) * rows, data["precond"]) * rows  # S M^-1 S Y r_f
        back = matmul(data["y"].mT, solved.permute(0, 2, 1, 3).reshape(tb, -1, f * s * m))  # Y_f' (...)
        back = back.view(tb, p, f, s, m).permute(0, 2, 1, 3, 4)
        return ((r - back) / self.penalty).double(), rb / self.precond_b


def _dot(aw: torch.Tensor, ab: torch.Tensor, bw: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """Inner products per problem (tb, F, S)."""
    return (aw * bw).sum(dim=(2, 4)) + (ab * bb).sum(dim=-1)


def _newton(problems: _Problems, *, tol: float, max_iter: int, max_cg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated Newton with preconditioned CG and Armijo backtracking, all problems at once."""
    w = torch.zeros(problems.shape, dtype=torch.float64, device=problems.device)
    b = torch.zeros(w.shape[:2] + w.shape[3:], dtype=torch.float64, device=w.device)
    eta = problems.linear(w, b)
    loss = problems.loss(eta, w)
    first = None
    for _ in range(max_iter):
        prob = problems.probabilities(eta)
        problems.refresh(prob)
        gw, gb = problems.gradient(prob, w)
        # the gradient of the mean loss (sklearn's scaling, where lbfgs stops at 1e-4)
        size = torch.maximum(gw.abs().amax(dim=(2, 4)), gb.abs().amax(dim=-1)) / problems.n_train  # (tb, F, S)
        if first is None:
            first = torch.clamp(size, min=1e-300)
        active = (size > tol) & problems.free
        if not active.any():
            return w, b
        # inexact Newton: solve H s = -g to a relative residual of min(0.5, sqrt(|g| / |g0|))
        forcing = torch.clamp(torch.sqrt(size / first), max=0.5)
        sw, sb = torch.zeros_like(w), torch.zeros_like(b)
        rw, rb = -gw, -gb
        zw, zb = problems.precondition(rw, rb)
        dw, db = zw, zb
        rz = _dot(rw, rb, zw, zb)
        curvature = problems.curvature(prob)
        target = (forcing**2) * _dot(gw, gb, gw, gb)
        for _ in range(max_cg):
            running = (_dot(rw, rb, rw, rb) > target) & active
            if not running.any():
                break
            hw, hb = problems.hessian_vector(curvature, dw, db)
            bend = _dot(dw, db, hw, hb)
            step = torch.where(running, rz / torch.clamp(bend, min=1e-300), 0.0)
            sw = sw + step[:, :, None, :, None] * dw
            sb = sb + step[..., None] * db
            rw = rw - step[:, :, None, :, None] * hw
            rb = rb - step[..., None] * hb
            zw, zb = problems.precondition(rw, rb)
            rz_new = _dot(rw, rb, zw, zb)
            beta = torch.where(running, rz_new / torch.clamp(rz, min=1e-300), 0.0)
            dw = zw + beta[:, :, None, :, None] * dw
            db = zb + beta[..., None] * db
            rz = rz_new
        # Armijo backtracking on each problem's step
        direction = problems.linear(sw, sb)  # linear in (sw, sb): eta(w + a s) = eta(w) + a Z s

        def trial(t: torch.Tensor) -> torch.Tensor:  # the objective at step sizes t (called at once, below)
            return problems.loss(eta + t[:, None, :, :, None] * direction, w + t[:, :, None, :, None] * sw)  # noqa: B023

        scale, loss = backtrack(trial, loss, _dot(gw, gb, sw, sb), active)
        w = w + scale[:, :, None, :, None] * sw
        b = b + scale[..., None] * sb
        eta = eta + scale[:, None, :, :, None] * direction
    raise not_converged(active, max_iter)


def classes_present(y: np.ndarray, folds: list[np.ndarray], n_classes: int) -> np.ndarray:
    """(F, S, K): whether fold f's training samples (``folds[f]``, a mask) hold class k in target set s
    (``y`` (n, S) of class indices).
    """
    codes = np.eye(n_classes, dtype=bool)
    return np.stack([codes[y[train]].any(axis=0) for train in folds])


def mask_absent_classes(fit: LinearFit, present: np.ndarray) -> None:
    """Decoders that never predict a class their training set lacked, as scikit-learn's classifiers
    (fitted on the classes present): the class's column (K > 2 classes: one per class and target set)
    gets weights 0 and intercept -inf; a binary problem trained on one class predicts it (decision
    +inf or -inf). ``present`` (F, S, K) from :func:`classes_present`; ``fit`` changed in place.
    """
    n_classes = present.shape[-1]
    if n_classes == 2:
        fold, target_set = np.nonzero(present.sum(axis=-1) == 1)
        columns, value = target_set, np.where(present[fold, target_set, 1], np.inf, -np.inf)
    else:
        fold, target_set, k = np.nonzero(~present)
        columns, value = target_set * n_classes + k, -np.inf
    fit.coef[fold, :, :, columns] = 0.0
    fit.intercept[fold, :, columns] = np.reshape(value, (-1, 1))  # indexed shape (problems, T)


def _iterative_fits(data: TimeBlock, folds: list[np.ndarray], y: torch.Tensor, present: torch.Tensor, *,
                   n_classes: int, penalty: float, scale: bool, tol: float, max_iter: int, max_cg: int,
                   orthogonal: bool = False) -> tuple[torch.Tensor, torch.Tensor, list]:  # fmt: skip
    """Every fold's decoders of one block of steps by Newton's method, in the decision columns: (w (tb, F, p,
    S * n_out), b (tb, F, S * n_out), the folds' moments); binary problems of wide blocks in the samples'
    space (:mod:`._logistic_dual`), the others by the conjugate gradients above.
    """
    if not data.grams and n_classes == 2:
        w, b, moments = dual_newton(data, folds, y, present.all(dim=-1), penalty=penalty, scale=scale, tol=tol,
                                    max_iter=max_iter)  # fmt: skip
        w, b = w[..., None], b[..., None]  # one parameter per problem: m = 1
    else:
        problems = _Problems(data, folds, y, present, penalty, scale, orthogonal=orthogonal)
        w, b = _newton(problems, tol=tol, max_iter=max_iter, max_cg=max_cg)
        moments = problems.moments
    return (*decision_columns(w, b, n_classes), moments)


def decision_columns(w: torch.Tensor, b: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The solvers' parameters w (tb, F, p, S, m), b (tb, F, S, m) as decision columns: (tb, F, p, S n_out), (tb, F,
    S n_out), class 1's logit (2 classes) or every class's.
    """
    basis = class_basis(n_classes)
    to_logits = torch.as_tensor(basis if n_classes > 2 else basis[1:], dtype=torch.float64, device=w.device)
    tb, f_count, p = w.shape[:3]
    return (w @ to_logits.T).reshape(tb, f_count, p, -1), (b @ to_logits.T).reshape(tb, f_count, -1)


def _coordinates_on(device: torch.device) -> bool:
    """Whether wide problems are fitted in the training samples' coordinates (the CPU), or by the device's solvers."""
    return device.type == "cpu"


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[np.ndarray],
    *,
    n_classes: int,
    penalty: float,
    scale: bool,
    tol: float = TOL,
    max_iter: int = MAX_ITER,
    max_cg: int = 200,
    device: str | torch.device | None = None,
    orthogonal: bool = False,
) -> LinearFit:
    """Fit logistic regression for every fold's training set, time step and target set.

    Parameters
    ----------
    x : (n_samples, n_times, n_features) float64
    y : (n_samples, n_sets) class indices 0..n_classes-1 (the true labels, then permuted ones)
    folds : one boolean mask per fold, True for the *training* samples
    penalty : 1 / C; scale : standardise features by the training standard deviation
    orthogonal : the features' columns are orthogonal (principal coordinates): multinomial problems' conjugate
        gradients are preconditioned by the Hessian's diagonal (the same fits)

    Returns
    -------
    LinearFit with the decision values of each set as consecutive columns: 1 (class 1's logit)
    for 2 classes, else n_classes logits.
    """
    device = as_device(device)
    present = classes_present(y, folds, n_classes)
    n, n_times, p = x.shape
    n_sets = y.shape[1]
    n_out = 1 if n_classes == 2 else n_classes
    coef = np.empty((len(folds), n_times, p, n_sets * n_out))
    intercept = np.empty((len(folds), n_times, n_sets * n_out))
    y_t = torch.as_tensor(y, dtype=torch.int64, device=device)
    wide = p > n  # no p x p Gram matrices: the coordinates (CPU); a device's binary Newton or Woodbury's preconditioner
    coordinates = wide and _coordinates_on(device)  # whose blocks of steps run faster large (300 x 4 x 4096, 10
    # classes, AMD EPYC: 0.36 s in blocks of 256 MiB, 0.39 s in 32 MiB; 200 x 10 x 512, 4 classes: 0.23 and 0.29 s)
    kernels = coordinates or (wide and n_classes == 2)  # the samples' kernels: coordinates, or the binary Newton
    per_step = 8 * (len(folds) * min(p, n) ** 2 * 2 + 12 * n * len(folds) * n_sets * n_classes + n * p)
    per_step += 8 * n * p * 2 if wide else work_bytes(p, len(folds))
    per_step += 8 * len(folds) * n * n if kernels else 0  # (their Newton systems: _logistic_dual's budget)
    solver = dict(n_classes=n_classes, penalty=penalty, scale=scale, tol=tol, max_iter=max_iter, max_cg=max_cg,
                  orthogonal=orthogonal)  # fmt: skip
    for block in time_blocks(n_times, per_step, budget=BUDGET if coordinates else block_budget(device)):
        data = TimeBlock(x, block, device, folds, grams=not wide)
        if coordinates:  # wide, CPU: the narrow problems of each fold's coordinates

            def narrow(q: np.ndarray, y_train: np.ndarray) -> LinearFit:
                return fit_logistic(q, y_train, [np.ones(len(q), dtype=bool)], device=device,
                                    **{**solver, "scale": False, "orthogonal": True})  # fmt: skip

            w, b, moments = fit_in_coordinates(data, folds, y_t, scale=scale, narrow=narrow)
        else:
            w, b, moments = _iterative_fits(data, folds, y_t, torch.as_tensor(present, device=device), **solver)
        for f, fold in enumerate(moments):
            coef[f, block], intercept[f, block] = to_original_units(w[:, f], b[:, f], fold, data.centre)
    fit = LinearFit(coef, intercept)
    mask_absent_classes(fit, present)
    return fit
