"""Delay embedding and HAVOK-style DMD: the linear operator of a system's dynamics in delay coordinates.

States X (trial, time, unit) are delay-embedded: H(t) = [x(t), x(t - tau), ..., x(t - (d - 1) tau)]
for every trial and every t where all lags exist (Takens; Brunton et al. 2017). The SVD of the stacked
embedding H = V S U' (rows: samples) gives eigen-time-delay coordinates V; the operator A (r x r)
maps one step of the leading r coordinates to the next, v(t + 1) = A v(t), by ridge regression over
all trials: A' = (V_r-' V_r- + lambda I)^-1 V_r-' V_r+ (``-``: every sample but each trial's last,
``+``: but its first), as dsa-metric's ``DMD`` (Ostrow et al. 2023). Each coordinate's sign is fixed
(its largest entry positive), so the operator does not depend on the SVD's arbitrary signs: rotating
or reflecting the units leaves V, hence A, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validation import check_int, check_number
from ...errors import ArgumentError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@dataclass
class DMDResult:
    """The linear dynamics of one system in delay coordinates.

    Attributes
    ----------
    operator : ndarray, (rank, rank)
        A with v(t + 1) = A v(t) in the leading eigen-time-delay coordinates.
    eigenvalues : ndarray of complex, (rank,)
        A's eigenvalues, largest modulus first (|lambda| near 1: slow or persistent modes; complex pairs:
        rotations).
    singular_values : ndarray
        Of the delay embedding (all of them, largest first; from its Gram matrix where the kept ones are
        within 1e4 of the largest, which leaves the smallest accurate to about 1e-8 of the largest).
    explained : float
        Share of the embedding's squared norm in the ``rank`` coordinates kept.
    rank, n_delays, delay_interval : int
    ridge : float
    label : str
    """

    operator: np.ndarray
    eigenvalues: np.ndarray
    singular_values: np.ndarray
    explained: float
    rank: int
    n_delays: int
    delay_interval: int
    ridge: float
    label: str

    def summary(self) -> dict[str, Any]:
        """Key numbers: the embedding, the rank kept and the leading eigenvalues' moduli."""
        moduli = np.abs(self.eigenvalues)
        return {
            "system": self.label, "delays": self.n_delays, "delay interval": self.delay_interval, "rank": self.rank,
            "explained": self.explained, "ridge": self.ridge, "largest |eigenvalue|": float(moduli[0]),
            "eigenvalues with |lambda| > 0.99": int(np.sum(moduli > 0.99)),
        }  # fmt: skip

    def draw(self, ax: Any) -> Any:
        """The eigenvalues in the complex plane, with the unit circle."""
        angle = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(angle), np.sin(angle), color="0.7", lw=0.8)
        points = ax.scatter(self.eigenvalues.real, self.eigenvalues.imag, s=18, color="#0072B2", label=self.label)
        ax.set_xlabel("Re")
        ax.set_ylabel("Im")
        ax.set_aspect("equal", adjustable="datalim")
        return points

    def plot(self) -> Figure:
        """The eigenvalues and the embedding's singular values."""
        from ..plotting import pyplot

        fig, (left, right) = pyplot().subplots(1, 2, figsize=(9, 4), layout="constrained")
        self.draw(left)
        left.set_title(f"DMD eigenvalues ({self.label})")
        right.semilogy(np.arange(1, self.singular_values.size + 1), self.singular_values, marker=".", color="0.3")
        right.axvline(self.rank + 0.5, color="#D55E00", lw=1, label=f"rank {self.rank}")
        right.set_xlabel("delay coordinate")
        right.set_ylabel("singular value")
        right.legend(frameon=False)
        return fig


def check_embedding(n_delays: Any, delay_interval: Any, rank: Any, ridge: Any) -> tuple[int, int, int | None, float]:
    """The embedding settings, checked (rank None: every coordinate)."""
    n_delays = check_int("n_delays", n_delays, minimum=1, maximum=100_000)
    delay_interval = check_int("delay_interval", delay_interval, minimum=1, maximum=100_000)
    rank = None if rank is None else check_int("rank", rank, minimum=1, maximum=1_000_000)
    return n_delays, delay_interval, rank, check_number("ridge", ridge, minimum=0)


def delay_embedding(states: np.ndarray, n_delays: int, delay_interval: int) -> np.ndarray:
    """(trial, time - (d - 1) tau, d * unit): block k holds the states k tau steps back (block 0: now)."""
    span = (n_delays - 1) * delay_interval
    steps = states.shape[1] - span
    blocks = [states[:, span - k * delay_interval : span - k * delay_interval + steps] for k in range(n_delays)]
    return np.concatenate(blocks, axis=2)


GRAM_CONDITION = 1e-8  # leading coordinates from H'H where the kept eigenvalues exceed this share of the largest


def fit_operator(states: np.ndarray, *, n_delays: int, delay_interval: int, rank: int | None, ridge: float,
                 label: str) -> DMDResult:  # fmt: skip
    """The DMD of checked float64 states (trial, time, unit)."""
    n_trials, n_times = states.shape[:2]
    steps = embedding_steps(n_times, n_delays, delay_interval, label)
    embedding = delay_embedding(states, n_delays, delay_interval).reshape(n_trials * steps, -1)
    v, s, rank = _leading_coordinates(embedding, rank, label, n_trials, steps)
    v = v * np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(rank)])  # fixed signs
    v = v.reshape(n_trials, steps, rank)
    before, after = v[:, :-1].reshape(-1, rank), v[:, 1:].reshape(-1, rank)
    operator = one_step_operator(before.T @ before, before.T @ after, ridge)
    return dmd_result(operator, s, rank, n_delays, delay_interval, ridge, label)


def embedding_steps(n_times: int, n_delays: int, delay_interval: int, label: str) -> int:
    """The embedded steps per trial, at least 3."""
    steps = n_times - (n_delays - 1) * delay_interval
    if steps < 3:
        raise ShapeError(
            f"n_delays: {n_delays} delays {delay_interval} step(s) apart need more than {n_times} time steps "
            f"({label}); pass fewer delays (at most {max((n_times - 3) // delay_interval + 1, 1)}) or longer trials."
        )
    return steps


def one_step_operator(before_before: np.ndarray, before_after: np.ndarray, ridge: float) -> np.ndarray:
    """A with v(t + 1) = A v(t) by ridge regression, from V-'V- and V-'V+."""
    return np.linalg.solve(before_before + ridge * np.eye(before_before.shape[0]), before_after).T


def dmd_result(operator: np.ndarray, s: np.ndarray, rank: int, n_delays: int, delay_interval: int, ridge: float,
               label: str) -> DMDResult:  # fmt: skip
    """The DMDResult of an operator: its eigenvalues (largest modulus first) and the rank's share of energy."""
    eigenvalues = np.linalg.eigvals(operator)
    eigenvalues = eigenvalues[np.lexsort((-eigenvalues.imag, -np.abs(eigenvalues)))]
    energy = s**2
    return DMDResult(operator, eigenvalues, s, float(energy[:rank].sum() / energy.sum()), rank, n_delays,
                     delay_interval, ridge, label)  # fmt: skip


def gram_directions(gram: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(U_r / s_r, all singular values) of an embedding H from its Gram matrix H'H, so that H U_r / s_r are
    its leading ``rank`` coordinates; None where the kept eigenvalues are not all above GRAM_CONDITION of
    the largest (the SVD is needed).
    """
    values, vectors = np.linalg.eigh(gram)
    values, vectors = values[::-1], vectors[:, ::-1]
    if not (rank <= values.size and values[rank - 1] > GRAM_CONDITION * values[0] > 0):
        return None
    s = np.sqrt(np.maximum(values, 0))
    return vectors[:, :rank] / s[:rank], s


def _leading_coordinates(embedding: np.ndarray, rank: int | None, label: str, n_trials: int, steps: int
                         ) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """(the leading ``rank`` left singular vectors, all singular values, rank) of the embedding.

    From the eigendecomposition of the small Gram matrix H'H where the kept singular values are within
    a factor 1e4 of the largest (their vectors are then accurate to about 1e-8 of the largest; about 5x
    faster than an SVD of a tall embedding); with rank=None, where every singular value is (the numerical
    rank is then the embedding's width). Otherwise by an SVD, whose numerical rank rank=None keeps.
    """
    if embedding.shape[0] > 2 * embedding.shape[1]:
        kept = embedding.shape[1] if rank is None else rank
        leading = gram_directions(embedding.T @ embedding, kept)
        if leading is not None:
            return embedding @ leading[0], leading[1], kept
    v, s, _ = np.linalg.svd(embedding, full_matrices=False)
    rank = svd_rank(s, embedding.shape, rank, label, n_trials, steps)
    return v[:, :rank], s, rank


def svd_rank(s: np.ndarray, shape: tuple[int, int], rank: int | None, label: str, n_trials: int, steps: int) -> int:
    """The rank to keep of an embedding of ``shape`` with singular values ``s``: ``rank``, or with None its
    numerical rank (as numpy's matrix_rank); an error where the embedding does not have it.
    """
    tolerance = s[0] * max(shape) * np.finfo(np.float64).eps if s.size else 0.0
    available = int(np.sum(s > tolerance))
    rank = available if rank is None else rank
    if available == 0 or rank > available or rank > n_trials * (steps - 1):
        raise ArgumentError(
            f"rank: got {rank}, but the delay embedding of {label} ({n_trials} trial(s) x {steps} steps x "
            f"{shape[1]} delay coordinates) has rank {available}; pass rank <= "
            f"{min(available, n_trials * (steps - 1))}."
        )
    return rank
