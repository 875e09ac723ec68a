"""The orthogonal similarity of two linear operators, and the distance of their spectra.

Procrustes over vector fields (Ostrow et al. 2023): for operators A, B (n x n, scaled to unit Frobenius
norm), the angular distance is arccos of max over C in O(n) of <A, C B C'>. O(n) has two components
(rotations, det +1, and reflections, det -1); the maximum is searched over both.

The objective f(C) = <A, C B C'> is a quadratic form in C, so it is maximised from several starts by

1. minorise-maximise steps C <- polar(A C B' + A' C B + 2 s C): with s >= ||A||_2 ||B||_2 the
   function h(C) = f(C) + s ||C||^2 (constant on O(n)) is convex, so each step cannot decrease f;
   s starts small and doubles whenever a step would decrease f, which keeps the guarantee and takes
   far longer steps;
2. Riemannian Newton steps C <- C cay(S) once the Hessian in the Lie algebra (skew S) is negative
   definite: quadratic convergence to the local maximum, each step kept only if f increases.

Starts: the eigenbases of the symmetric parts (A + A') / 2 and (B + B') / 2 matched by eigenvalue,
their signs chosen to align the antisymmetric parts (exact where B is an orthogonal similarity of A,
reflections included), in both components; the identity and a reflection; ``n_init`` random orthogonal
matrices from the seed (half of each determinant). Deterministic given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MM_STEPS = 60  # minorise-maximise steps from every start before only the best few continue
CONTINUED = 2  # starts taken on to convergence
MAX_STEPS = 5000
STALL = 1e-8  # relative gain per step below which Newton steps are tried
RTOL = 1e-13
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


def _mm(a: np.ndarray, b: np.ndarray, c: np.ndarray, f: float, steps: int, s: float, bound: float,
        stall: float = RTOL) -> tuple[np.ndarray, float, float, bool]:  # fmt: skip
    """Monotone minorise-maximise steps until the relative gain falls below ``stall``: (C, f, s, stalled)."""
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
        if gain <= stall * max(abs(f), 1e-300):
            return c, f, s, True
    return c, f, s, False


def _newton_system(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of S -> f(C exp(S)) at S = 0, in the coordinates of the skew basis
    E_k = e_i e_j' - e_j e_i' (i < j).

    With At = C'AC, f(C e^S) = <At, e^S B e^-S>; its second derivative along S, T is <S, L(T)> with
    L(T) = (2 At T B' + 2 B' T At - At B' T - T At B' - B' At T - T B' At) / 2, so the Hessian's entry
    (k, l) = L(E_l)_ij - L(E_l)_ji, gathered from the matrix of L acting on vec(T).
    """
    n = a.shape[0]
    at = c.T @ a @ c
    first, second = np.triu_indices(n, 1)
    m = at @ b.T + at.T @ b  # C'G, G the Euclidean gradient
    gradient = m[first, second] - m[second, first]
    eye = np.eye(n)
    ab, ba = at @ b.T, b.T @ at
    # column-major vec(X T Y) = kron(Y', X) vec(T); (i, j) sits at i + j n
    k = (2 * np.kron(b, at) + 2 * np.kron(at.T, b.T) - np.kron(eye, ab) - np.kron(ab.T, eye) - np.kron(eye, ba)
         - np.kron(ba.T, eye)) / 2  # fmt: skip
    upper, lower = first + second * n, second + first * n
    hessian = k[np.ix_(upper, upper)] - k[np.ix_(upper, lower)] - k[np.ix_(lower, upper)] + k[np.ix_(lower, lower)]
    return gradient, (hessian + hessian.T) / 2


def _cayley(c: np.ndarray, step: np.ndarray) -> np.ndarray:
    n = c.shape[0]
    s = np.zeros((n, n))
    s[np.triu_indices(n, 1)] = step
    s -= s.T
    eye = np.eye(n)
    return c @ np.linalg.solve(eye - s / 2, eye + s / 2)


def _ascent_step(gradient: np.ndarray, hessian: np.ndarray) -> np.ndarray | None:
    """(mu I - H)^-1 g with the smallest mu >= 0 (0, then growing) for which mu I - H is positive definite:
    the Newton step where the Hessian is negative definite, a damped one on flat or saddle directions.
    """
    eye = np.eye(hessian.shape[0])
    scale = max(float(np.abs(hessian).max()), 1e-300)
    for shift in (0.0, *(scale * 10.0**k for k in (-9, -6, -4, -3, -2, -1, 0, 1, 2))):
        try:
            factor = np.linalg.cholesky(shift * eye - hessian)
        except np.linalg.LinAlgError:
            continue
        return np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
    return None


def _newton(a: np.ndarray, b: np.ndarray, c: np.ndarray, f: float) -> tuple[np.ndarray, float, bool]:
    """(Damped) Newton steps in the Lie algebra, each kept only if f increases: (C, f, converged)."""
    for _ in range(40):
        gradient, hessian = _newton_system(a, b, c)
        if np.linalg.norm(gradient) <= GTOL:
            return c, f, True
        step = _ascent_step(gradient, hessian)
        if step is None:
            return c, f, False
        for _ in range(30):
            candidate = _cayley(c, step)
            value = _value(a, b, candidate)
            if value >= f:
                break
            step = step / 2
        else:
            return c, f, False
        c, f = candidate, value
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
        c, f, s, stalled = _mm(a, b, start, f, MM_STEPS, bound * 0.05, bound)
        runs.append((f, c, s, stalled))
    runs.sort(key=lambda run: -run[0])
    best = None
    for f, c, s, stalled in runs[:CONTINUED]:
        converged, taken = False, 0
        while taken < MAX_STEPS:
            c, f, s, stalled = _mm(a, b, c, f, 200, s, bound, stall=STALL)
            taken += 200
            c, f, converged = _newton(a, b, c, f)
            if converged:
                break
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
