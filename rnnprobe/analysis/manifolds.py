"""Slow manifolds of a fixed-point search: linearised slow points, line attractors, selection vectors.

A line attractor (Seung 1996; Mante et al. 2013) is a 1-D curve of fixed or slow points along which
the dynamics barely move: at every point the Jacobian has one eigenvalue near 1 (a map) or near 0 (a
flow), its right eigenvector r along the curve. Inputs move the state along the curve only through
their projection on the left eigenvector l of that mode (l'r = 1): the *selection vector*. In Mante
et al.'s network the selection vector turns with the context, so that only the relevant input is
integrated.

:func:`slow_manifolds` groups the points of a :class:`~rnnprobe.analysis.fixed_points.FixedPointResult`
(fixed and slow points) by their constant input, linearises each (Jacobian, eigenvalues, right and left
eigenvectors), and summarises each group: the principal direction of the points, their extent, how
much of their spread lies along one line, the slow mode's eigenvalue and its alignment with the line,
and the selection vector's alignment with each input channel's weights (the columns of dF/du).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import check_option
from ..errors import ArgumentError, ArgumentTypeError, describe

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .fixed_points import FixedPointResult

WHICH = ("all", "fixed", "slow")
MODES = ("line", "slowest")
LINE_MODES = 5  # mode="line": the slowest modes among which the one along the line is chosen


@dataclass
class Linearization:
    """Points with their linearisation, the slowest mode first.

    Attributes
    ----------
    states, inputs, q : ndarray
        (K, d), (K, m), (K,).
    slow : ndarray of bool (K,)
        Slow points (not roots of F(x) - x).
    jacobians, input_jacobians : ndarray
        dF/dx (K, d, d) and dF/du (K, d, m).
    eigenvalues : ndarray of complex (K, d)
        Of dF/dx (maps) or (dF/dx - I) / dt (flows), the slowest first: closest to 1 in modulus (maps),
        to 0 in real part (flows).
    right, left : ndarray of complex (K, d, d)
        Right and left eigenvectors, column j belonging to eigenvalue j, scaled so left[:, j]' right[:, j] = 1
        and |right[:, j]| = 1.
    """

    states: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    slow: np.ndarray
    jacobians: np.ndarray
    input_jacobians: np.ndarray
    eigenvalues: np.ndarray
    right: np.ndarray
    left: np.ndarray


@dataclass
class SlowManifoldResult:
    """The points of each constant input summarised as a line (a line attractor where it is one).

    Attributes
    ----------
    inputs : ndarray (n_inputs, m)
        The distinct constant inputs (e.g. one per context), in the order they were searched.
    n_points : ndarray (n_inputs,)
    centre, direction : ndarray (n_inputs, d)
        The points' mean and principal direction.
    extent : ndarray (n_inputs,)
        Range of the points along the direction.
    straightness : ndarray (n_inputs,)
        Share of the points' spread along the direction (1: on a line).
    slow_eigenvalue : ndarray of complex (n_inputs,)
        Median over the points of the reported mode's eigenvalue (see ``mode``; modulus and angle medians).
    mode_alignment : ndarray (n_inputs,)
        Median |cos| between the reported mode's right eigenvector and the direction.
    selection : ndarray (n_inputs, d)
        Median left eigenvector of the reported mode (real part; sign: positive on the direction), unit norm.
    input_alignment : ndarray (n_inputs, m)
        cos(selection, column j of dF/du), median over the points: how much input channel j drives the
        state along the slow mode, per input.
    input_drive : ndarray (n_inputs, m)
        (direction . r) (l' b_j) with l'r = 1: the displacement along the line per unit of input channel j
        (through the slow mode), median over the points.
    linearization : Linearization
    group : ndarray (K,)
        Each linearised point's input group.
    continuous_time : bool
    """

    inputs: np.ndarray
    n_points: np.ndarray
    centre: np.ndarray
    direction: np.ndarray
    extent: np.ndarray
    straightness: np.ndarray
    slow_eigenvalue: np.ndarray
    mode_alignment: np.ndarray
    selection: np.ndarray
    input_alignment: np.ndarray
    input_drive: np.ndarray
    linearization: Linearization
    group: np.ndarray
    continuous_time: bool

    def is_line_attractor(self, *, tolerance: float = 0.05, straightness: float = 0.9) -> np.ndarray:
        """Per input: several points on a line whose slowest eigenvalue is within ``tolerance`` of 1 (maps)
        or of 0 (flows, per unit time).
        """
        gap = np.abs(self.slow_eigenvalue.real) if self.continuous_time else np.abs(np.abs(self.slow_eigenvalue) - 1)
        return (self.n_points >= 3) & (self.straightness >= straightness) & (gap <= tolerance)

    def summary(self) -> dict[str, Any]:
        """Key numbers per input: points, extent, straightness, slowest eigenvalue, input alignments."""
        out: dict[str, Any] = {"inputs": len(self.inputs), "points": int(self.n_points.sum())}
        lines = self.is_line_attractor()
        for k in range(len(self.inputs)):
            tag = f"input {k}"
            out[f"{tag}: points"] = int(self.n_points[k])
            out[f"{tag}: line attractor"] = bool(lines[k])
            out[f"{tag}: extent"] = float(self.extent[k])
            out[f"{tag}: straightness"] = float(self.straightness[k])
            out[f"{tag}: |slowest eigenvalue|"] = float(np.abs(self.slow_eigenvalue[k]))
            out[f"{tag}: selection-input cos"] = np.round(self.input_alignment[k], 3).tolist()
        return out

    def draw(self, ax: Any, trajectories: np.ndarray | None = None) -> Any:
        """Points of every input in the plane of the trajectories' (or the points') two principal
        components, coloured by input, with each input's line and selection vector.
        """
        from .pca import principal_axes
        from .plotting import OKABE_ITO

        states = self.linearization.states
        flat = states if trajectories is None else np.asarray(trajectories, dtype=float).reshape(-1, states.shape[1])
        mean = flat.mean(axis=0)
        basis = principal_axes(flat, 2).T
        if trajectories is not None:
            paths = np.asarray(trajectories, dtype=float).reshape(-1, np.shape(trajectories)[-2], states.shape[1])
            for path in paths[:50]:
                pc = (path - mean) @ basis
                ax.plot(pc[:, 0], pc[:, 1], color="0.8", lw=0.5, zorder=1)
        handles = []
        for k in range(len(self.inputs)):
            color = OKABE_ITO[k % len(OKABE_ITO)]
            pc = (states[self.group == k] - mean) @ basis
            handles.append(ax.scatter(pc[:, 0], pc[:, 1], s=10, color=color, zorder=3, label=f"input {k}"))
            centre = (self.centre[k] - mean) @ basis
            for vector, style in ((self.direction[k] * self.extent[k] / 2, "-"), (self.selection[k], ":")):
                arm = vector @ basis
                if style == ":":
                    arm = arm / (np.linalg.norm(arm) + 1e-300) * max(self.extent[k] / 3, 1e-12)
                ax.plot([centre[0] - arm[0], centre[0] + arm[0]], [centre[1] - arm[1], centre[1] + arm[1]],
                        color=color, ls=style, lw=1.5, zorder=2)  # fmt: skip
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.legend(frameon=False, fontsize=8)
        return handles

    def plot(self, trajectories: np.ndarray | None = None) -> Figure:
        """The points and lines (solid: direction, dotted: selection vector), and the selection vectors'
        alignment with each input channel, per input.
        """
        from .plotting import pyplot

        fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 4), layout="constrained")
        self.draw(left, trajectories)
        left.set_title("slow points and line attractors")
        image = right.imshow(self.input_alignment, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        right.set_xticks(np.arange(self.input_alignment.shape[1]))
        right.set_yticks(np.arange(len(self.inputs)), [f"input {k}" for k in range(len(self.inputs))])
        right.set_xlabel("input channel")
        right.set_ylabel("constant input (e.g. context)")
        right.set_title("cos(selection vector, input weights)")
        fig.colorbar(image, ax=right)
        return fig


def linearize_points(result: FixedPointResult, *, which: str = "all") -> Linearization:
    """Linearise the fixed and/or slow points of a search: Jacobians, eigenvalues, right and left eigenvectors.

    Parameters
    ----------
    result : FixedPointResult
    which : {"all", "fixed", "slow"}

    Returns
    -------
    Linearization
    """
    from .fixed_points import FixedPointResult

    if not isinstance(result, FixedPointResult):
        raise ArgumentTypeError(f"result: got {describe(result)}. Pass the FixedPointResult of find_fixed_points.")
    which = check_option("which", which, WHICH)
    parts = []
    if which in ("all", "fixed"):
        parts.append((result.states, result.inputs, result.q, np.zeros(len(result.q), dtype=bool)))
    if which in ("all", "slow"):
        parts.append((result.slow.states, result.slow.inputs, result.slow.q, np.ones(len(result.slow.q), dtype=bool)))
    states, inputs, q, slow = (np.concatenate(p) for p in zip(*parts, strict=True))
    sm = result._state_map
    if sm is None:
        raise ArgumentError("result: it holds no model to linearise (made outside find_fixed_points).")
    d = states.shape[1]
    jac, jac_u = _point_jacobians(result, which, states, inputs)
    matrix = (jac - np.eye(d)) / sm.dt if sm.continuous_time else jac
    values, right = np.linalg.eig(matrix) if len(states) else (np.zeros((0, d), complex), np.zeros((0, d, d), complex))
    key = np.abs(values.real) if sm.continuous_time else np.abs(np.abs(values) - 1)
    order = np.argsort(key, axis=1, kind="stable")
    values = np.take_along_axis(values, order, axis=1)
    right = np.take_along_axis(right, order[:, None, :], axis=2)
    right = right / np.linalg.norm(right, axis=1, keepdims=True)
    left = np.conj(np.linalg.inv(right)).transpose(0, 2, 1) if len(states) else right  # rows of R^-1: l_j' r_k = delta
    return Linearization(states, inputs, q, slow, jac, jac_u, values, right, left)


def _input_groups(inputs: np.ndarray, searched: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct inputs that have points, in the order they were searched; each point's group)."""
    order = searched if searched is not None else np.unique(inputs, axis=0)
    match = np.argmin(np.abs(inputs[:, None, :] - order[None, :, :]).max(axis=2), axis=1)
    present = np.unique(match)  # sorted: the searched order
    return order[present], np.searchsorted(present, match)


def _modes(lin: Linearization, members: np.ndarray, direction: np.ndarray, mode: str) -> np.ndarray:
    """Each point's reported mode: the slowest, or the one of the LINE_MODES slowest most along the line."""
    if mode == "slowest":
        return np.zeros(len(members), dtype=int)
    right = np.real(lin.right[members, :, :LINE_MODES])
    cos = np.abs(np.einsum("pdj,d->pj", right, direction)) / np.maximum(np.linalg.norm(right, axis=1), 1e-300)
    return np.argmax(cos, axis=1)


def _point_jacobians(result: FixedPointResult, which: str, states: np.ndarray, inputs: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """dF/dx and dF/du at the points: the search's own for its fixed points (dense solver), computed for the rest."""
    from .fixed_points import _jacobians

    sm = result._state_map
    known = result.jacobians is not None and which != "slow"
    start = len(result.q) if known else 0
    x, u = (torch.as_tensor(v[start:], device=sm.device) for v in (states, inputs))
    jac, jac_u = _jacobians(sm, x, u, 64)
    if known:
        jac, jac_u = np.concatenate([result.jacobians, jac]), np.concatenate([result.input_jacobians, jac_u])
    return jac, jac_u


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b) / np.maximum(np.linalg.norm(a, axis=-1)[..., None] * np.linalg.norm(b, axis=0), 1e-300)


def slow_manifolds(result: FixedPointResult, *, which: str = "all", mode: str = "line") -> SlowManifoldResult:
    """Summarise the points of each constant input as a line: a line attractor where it is one.

    Parameters
    ----------
    result : FixedPointResult
        A search at one or several constant inputs (e.g. one per context).
    which : {"all", "fixed", "slow"}
        The points used.
    mode : {"line", "slowest"}
        The mode whose eigenvalue, eigenvectors and selection vector are reported at each point: "line"
        (default), among the 5 slowest, the one whose right eigenvector lies most along the line (a
        network can have slower modes that the trajectories do not use, e.g. saturated units); "slowest":
        the slowest one.

    Returns
    -------
    SlowManifoldResult

    Examples
    --------
    A linear map with one eigenvalue 1 has a line of fixed points along its eigenvector:

    >>> import numpy as np, torch
    >>> from rnnprobe.analysis import find_fixed_points
    >>> v = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 1.0]])
    >>> a = torch.tensor(v @ np.diag([1.0, 0.5, 0.2]) @ np.linalg.inv(v))
    >>> starts = np.random.default_rng(0).normal(size=(40, 3))
    >>> fp = find_fixed_points(lambda x, u: x @ a.T, inputs=[0.0], initial_states=starts)
    >>> line = slow_manifolds(fp)
    >>> bool(line.is_line_attractor()[0]), round(float(abs(line.direction[0] @ v[:, 0]) / np.linalg.norm(v[:, 0])), 6)
    (True, 1.0)
    """
    mode = check_option("mode", mode, MODES)
    lin = linearize_points(result, which=which)
    if not len(lin.states):
        raise ArgumentError("result: it holds no points to summarise; search from more or other initial states.")
    distinct, group = _input_groups(lin.inputs, result.searched_inputs)
    n, d, m = len(distinct), lin.states.shape[1], lin.inputs.shape[1]
    out = {name: np.zeros(shape) for name, shape in (("centre", (n, d)), ("direction", (n, d)), ("extent", n),
           ("straightness", n), ("mode_alignment", n), ("selection", (n, d)), ("input_alignment", (n, m)),
           ("input_drive", (n, m)))}  # fmt: skip
    slow_values = np.zeros(n, dtype=complex)
    for k in range(n):
        members = np.flatnonzero(group == k)
        points = lin.states[members]
        centre = points.mean(axis=0)
        _, spread, vt = np.linalg.svd(points - centre, full_matrices=False)
        direction = vt[0] if len(members) > 1 else np.real(lin.right[members[0], :, 0])
        projection = (points - centre) @ direction
        chosen = _modes(lin, members, direction, mode)
        r1, l1 = np.real(lin.right[members, :, chosen]), np.real(lin.left[members, :, chosen])
        # the displacement along the direction per unit of input j: (direction . r) (l' b_j), whatever r's sign
        drive = [(direction @ r1[i]) * (l1[i] @ lin.input_jacobians[j]) for i, j in enumerate(members)]
        l1 = l1 * np.where(l1 @ direction < 0, -1.0, 1.0)[:, None]
        value = lin.eigenvalues[members, chosen]
        out["centre"][k], out["direction"][k], out["extent"][k] = centre, direction, np.ptp(projection)
        out["straightness"][k] = spread[0] ** 2 / (spread**2).sum() if spread.size and spread.sum() > 0 else 1.0
        out["mode_alignment"][k] = float(np.median(np.abs(r1 @ direction) / np.linalg.norm(r1, axis=1)))
        selection = np.median(l1, axis=0)
        out["selection"][k] = selection / max(np.linalg.norm(selection), 1e-300)
        out["input_alignment"][k] = np.median([_cos(l1[i], lin.input_jacobians[j]) for i, j in enumerate(members)],
                                              axis=0)  # fmt: skip
        out["input_drive"][k] = np.median(drive, axis=0)
        if result.continuous_time:
            slow_values[k] = np.median(value.real) + 1j * np.median(np.abs(value.imag))
        else:
            slow_values[k] = np.median(np.abs(value)) * np.exp(1j * np.median(np.abs(np.angle(value))))
    return SlowManifoldResult(
        distinct,
        np.bincount(group, minlength=n),
        **out,
        slow_eigenvalue=slow_values,
        linearization=lin,
        group=group,
        continuous_time=result.continuous_time,
    )
