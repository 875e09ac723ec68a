"""The orthogonal similarity of two linear operators, and the distance of their spectra.

Procrustes over vector fields (Ostrow et al. 2023): for operators A, B (n x n, scaled to unit Frobenius
norm), the angular distance is arccos of max over C in O(n) of <A, C B C'>. O(n) has two components
(rotations, det +1, and reflections, det -1); the maximum is searched over both.

The objective f(C) = <A, C B C'> is a quadratic form in C, so it is maximised from several starts by

1. minorise-maximise steps C <- polar(A C B' + A' C B + 2 s C) (30 from every start): with
   s >= ||A||_2 ||B||_2 the function h(C) = f(C) + s ||C||^2 (constant on O(n)) is convex, so each
   step cannot decrease f; s starts small and doubles whenever a step would decrease f, which keeps
   the guarantee and takes far longer steps;
2. from the best 2, a Riemannian trust region (Absil et al. 2007) in the Lie algebra, C <- C cay(S)
   for skew S, with Steihaug-Toint truncated conjugate gradients on the exact Hessian through its
   products (never formed): superlinear convergence to a local maximum, negative curvature followed,
   until the Riemannian gradient is below 1e-10 or the model predicts no gain.

Starts: the eigenbases of the symmetric parts (A + A') / 2 and (B + B') / 2 matched by eigenvalue,
their signs chosen to align the antisymmetric parts (exact where B is an orthogonal similarity of A,
reflections included), in both components; the identity and a reflection; ``n_init`` random orthogonal
matrices from the seed (half of each determinant). Deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MM_STEPS = 30  # minorise-maximise steps from every start before only the best few continue
CONTINUED = 2  # starts taken on to convergence
RTOL = 1e-14
GTOL = 1e-10  # Riemannian gradient norm (unit-norm operators) at which a start has converged


@dataclass
class Similarity:
    """The best orthogonal similarity found: ``cosine`` = <A, C B C'> / (||A|| ||B||), the map C, and
    ``residual`` = ||A / ||A|| - C B C' / ||B||||_F (accurate where the cosine is near 1).
    """

    cosine: float
    transform: np.ndarray
    residual: float
    starts: int
    converged: bool


def polar(m: np.ndarray) -> np.ndarray:
    """The orthogonal factor of m (the nearest orthogonal matrix)."""
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def _value(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    return float(np.vdot(a, c @ b @ c.T))


def _mm(a: np.ndarray, b: np.ndarray, c: np.ndarray, f: float, steps: int, s: float, bound: float
        ) -> tuple[np.ndarray, float]:  # fmt: skip
    """Monotone minorise-maximise steps (at most ``steps``, fewer once the gain is negligible): (C, f)."""
    for _ in range(steps):
        gradient = a @ c @ b.T + a.T @ c @ b
        while True:
            candidate = polar(gradient + 2 * s * c)
            value = _value(a, b, candidate)
            if value >= f or s >= bound:
                break
            s = min(2 * s, bound)
        gain = value - f
        c, f, s = candidate, max(value, f), max(s * 0.7, bound * 1e-6)
        if gain <= RTOL * max(abs(f), 1e-300):
            break
    return c, f


class _LocalModel:
    """The gradient and Hessian of S -> f(C exp(S)) at S = 0, in the coordinates of the skew basis
    E_k = e_i e_j' - e_j e_i' (i < j).

    With At = C'AC, f(C e^S) = <At, e^S B e^-S>; its gradient is (M - M')_ij with M = At B' + At' B, and
    its second derivative along S, T is <S, L(T)> with
    L(T) = At T B' + B' T At - (P T + T P) / 2, P = At B' + B' At, so a Hessian-vector product is
    (L(T) - L(T)')_ij: six n x n products, never the m x m Hessian (m = n (n - 1) / 2).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        n = a.shape[0]
        self.upper = np.triu_indices(n, 1)
        self.at, self.bt = c.T @ a @ c, b.T
        m = self.at @ self.bt + self.at.T @ b
        self.gradient = m[self.upper] - m.T[self.upper]
        self.p = self.at @ self.bt + self.bt @ self.at

    def skew(self, u: np.ndarray) -> np.ndarray:
        n = self.at.shape[0]
        t = np.zeros((n, n))
        t[self.upper] = u
        return t - t.T

    def hessian_times(self, u: np.ndarray) -> np.ndarray:
        t = self.skew(u)
        product = self.at @ t @ self.bt + self.bt @ t @ self.at - (self.p @ t + t @ self.p) / 2
        return product[self.upper] - product.T[self.upper]


def _cayley(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """C cay(T) = C (I - T / 2)^-1 (I + T / 2): a retraction on O(n) that agrees with C exp(T) to second order."""
    eye = np.eye(c.shape[0])
    return c @ np.linalg.solve(eye - t / 2, eye + t / 2)


def _truncated_cg(model: _LocalModel, radius: float) -> np.ndarray:
    """Steihaug-Toint truncated conjugate gradients: an ascent step for the quadratic model within ``radius``."""
    g = model.gradient
    step, residual = np.zeros_like(g), g.copy()  # residual = gradient of the model at the step
    direction = residual.copy()
    start = float(np.sqrt(residual @ residual))
    for _ in range(g.size):
        curvature_direction = model.hessian_times(direction)
        curvature = float(direction @ curvature_direction)
        if curvature >= 0:  # not concave along it: the model rises to the boundary
            return step + _to_boundary(step, direction, radius) * direction
        length = float(residual @ residual) / -curvature
        trial = step + length * direction
        if trial @ trial >= radius**2:
            return step + _to_boundary(step, direction, radius) * direction
        new_residual = residual + length * curvature_direction
        norm = float(np.sqrt(new_residual @ new_residual))
        if norm <= start * min(0.1, start):  # superlinear local convergence
            return trial
        direction = new_residual + (norm**2 / float(residual @ residual)) * direction
        step, residual = trial, new_residual
    return step


def _to_boundary(step: np.ndarray, direction: np.ndarray, radius: float) -> float:
    """The tau >= 0 with ||step + tau direction|| = radius."""
    a, b, c = direction @ direction, 2 * step @ direction, step @ step - radius**2
    return float((-b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)) if a > 0 else 0.0


def _trust_region(a: np.ndarray, b: np.ndarray, c: np.ndarray, f: float) -> tuple[np.ndarray, float, bool]:
    """Riemannian trust-region steps (Absil et al. 2007) to a local maximum: (C, f, converged)."""
    radius, largest = 0.5, float(np.pi)
    for _ in range(200):
        model = _LocalModel(a, b, c)
        if np.sqrt(model.gradient @ model.gradient) <= GTOL:
            return c, f, True
        step = _truncated_cg(model, radius)
        predicted = float(model.gradient @ step + 0.5 * step @ model.hessian_times(step))
        if predicted <= RTOL * max(abs(f), 1e-300):
            return c, f, True
        candidate = _cayley(c, model.skew(step))
        value = _value(a, b, candidate)
        ratio = (value - f) / predicted
        if ratio < 0.25:
            radius *= 0.25
        elif ratio > 0.75 and np.sqrt(step @ step) >= 0.99 * radius:
            radius = min(2 * radius, largest)
        if ratio > 0.1:
            c, f = candidate, value
        if radius < 1e-14:
            return c, f, False
    return c, f, False


def _structural_starts(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Symmetric-part eigenbases matched by eigenvalue; signs from the antisymmetric parts; both components."""
    _, va = np.linalg.eigh((a + a.T) / 2)
    _, vb = np.linalg.eigh((b + b.T) / 2)
    ka, kb = va.T @ (a - a.T) @ va, vb.T @ (b - b.T) @ vb
    weights = ka * kb  # sum_ij w_ij d_i d_j is <K_A, D K_B D> in the matched bases
    signs = np.sign(np.linalg.eigh(weights)[1][:, -1])
    signs[signs == 0] = 1.0
    for _ in range(4 * len(signs)):  # greedy single flips (a local maximum of the sign problem)
        gains = -4 * signs * (weights @ signs - np.diagonal(weights) * signs)
        best = int(np.argmax(gains))
        if gains[best] <= 1e-15:
            break
        signs[best] = -signs[best]
    start = va @ (signs[:, None] * vb.T)
    flipped = start.copy()
    flipped[:, -1] = -flipped[:, -1]  # the same match in the other component
    return [start, flipped]


def _starts(a: np.ndarray, b: np.ndarray, n_init: int, seed: int | None) -> list[np.ndarray]:
    n = a.shape[0]
    reflection = np.eye(n)
    reflection[-1, -1] = -1.0
    starts = [*_structural_starts(a, b), np.eye(n), reflection]
    rng = np.random.default_rng(seed)
    for k in range(n_init):
        q, r = np.linalg.qr(rng.normal(size=(n, n)))
        q = q * np.sign(np.diagonal(r))  # Haar-distributed
        if (np.linalg.det(q) > 0) != (k % 2 == 0):
            q[:, -1] = -q[:, -1]
        starts.append(q)
    return starts


def orthogonal_similarity(a: np.ndarray, b: np.ndarray, *, n_init: int = 8, seed: int | None = 0) -> Similarity:
    """Max over C in O(n) of <A, C B C'> / (||A|| ||B||), from several starts (see the module)."""
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0 or norm_b == 0:
        same = norm_a == norm_b
        return Similarity(1.0 if same else 0.0, np.eye(a.shape[0]), 0.0 if same else 1.0, 0, True)
    a, b = a / norm_a, b / norm_b
    bound = float(np.linalg.norm(a, 2) * np.linalg.norm(b, 2))
    runs = []
    for start in _starts(a, b, n_init, seed):
        f = _value(a, b, start)
        if f >= 1 - 1e-14:  # B is an orthogonal similarity of A, found exactly (the structured starts)
            return _result(a, b, start, f, len(runs) + 1, True)
        c, f = _mm(a, b, start, f, MM_STEPS, bound * 0.05, bound)
        runs.append((f, c))
    runs.sort(key=lambda run: -run[0])
    best = None
    for f, c in runs[:CONTINUED]:
        c, f, converged = _trust_region(a, b, c, f)
        if best is None or f > best.cosine:
            best = _result(a, b, c, f, len(runs), converged)
    return best


def _result(a: np.ndarray, b: np.ndarray, c: np.ndarray, f: float, starts: int, converged: bool) -> Similarity:
    return Similarity(float(np.clip(f, -1.0, 1.0)), c, float(np.linalg.norm(a - c @ b @ c.T)), starts, converged)


def spectral_distance(eigenvalues_a: np.ndarray, eigenvalues_b: np.ndarray) -> float:
    """Mean squared distance of the optimal matching of two eigenvalue sets in the complex plane.

    The 2-Wasserstein distance, squared, between the uniform distributions on the two sets (the smaller
    set padded with zeros), as dsa-metric's ``score_method="wasserstein"``; exact by linear assignment.
    """
    from scipy.optimize import linear_sum_assignment

    size = max(eigenvalues_a.size, eigenvalues_b.size)
    a = np.pad(eigenvalues_a.astype(complex), (0, size - eigenvalues_a.size))
    b = np.pad(eigenvalues_b.astype(complex), (0, size - eigenvalues_b.size))
    cost = np.abs(a[:, None] - b[None, :]) ** 2
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
