"""Assembly calculus (Papadimitriou, Vempala, Mitropolsky, Collins & Maass 2020, PNAS): a simulator.

Brain areas of n excitatory neurons each; random directed synapses with probability p between every
pair of connected neurons (within an area and from area to area, and from stimuli: sets of k neurons
that fire together); at each step every neuron sums the weights of its inputs that fired at the previous
step and only the k with the largest input fire (the k-cap, inhibition); Hebbian plasticity multiplies
the weight of every synapse from a neuron that fired to one that fires next by (1 + beta).

Operations (each a number of rounds of the dynamics):

- **project** a stimulus (or an assembly) into an area: the winners converge to a stable *assembly*,
  a set of k neurons that keeps firing when the stimulus does;
- **associate** two stimuli's assemblies in one area by firing both stimuli together: the assemblies
  come to overlap;
- **merge** assemblies of two areas into a third: one assembly responding to both.

Connections are scipy sparse matrices (pre x post) created when first used, so areas of 10^5 neurons
fit in memory (n^2 p synapses). Runs are returned as firing histories and become a
:class:`~rnnprobe.Recording` (trial, round, neuron) with :func:`to_recording`, for the same PCA, RSA and
decoding as any network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import ArgumentError, UnknownNameError, describe, format_choices
from ..recording.container import Recording


@dataclass
class Run:
    """Firing history of one operation: ``winners`` (rounds, k) indices per round in ``area``.

    ``overlaps[r]`` is the fraction of round r's winners that also fired in round r - 1 (1.0: a stable
    assembly).
    """

    area: str
    n: int
    winners: np.ndarray
    label: str = ""

    @property
    def assembly(self) -> np.ndarray:
        """The last round's winners (sorted)."""
        return np.sort(self.winners[-1])

    @property
    def overlaps(self) -> np.ndarray:
        """Fraction of winners shared by consecutive rounds (1: the assembly has converged)."""
        k = self.winners.shape[1]
        return np.array([np.intersect1d(a, b).size / k for a, b in zip(self.winners[:-1], self.winners[1:],
                                                                        strict=True)])  # fmt: skip

    def firing(self) -> np.ndarray:
        """Binary firing, (rounds, n)."""
        out = np.zeros((len(self.winners), self.n), dtype=np.float32)
        np.put_along_axis(out, self.winners, 1.0, axis=1)
        return out


def overlap(a: Any, b: Any) -> float:
    """|a ∩ b| / |a| of two sets of neuron indices (assemblies of the same size k)."""
    a, b = np.unique(np.asarray(a)), np.unique(np.asarray(b))
    if a.size == 0:
        raise ArgumentError("a: an empty assembly. Pass the indices of the neurons that fired.")
    return float(np.intersect1d(a, b).size / a.size)


@dataclass
class _Area:
    n: int
    k: int
    winners: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class Brain:
    """A simulator of the assembly calculus.

    Parameters
    ----------
    p : float
        Connection probability between any two neurons of connected populations.
    beta : float
        Hebbian plasticity: a synapse from a neuron that fired to one that fires next grows by (1 + beta).
    seed : int, optional

    Examples
    --------
    >>> brain = Brain(p=0.05, beta=0.1, seed=0)
    >>> brain.add_stimulus("s", k=30)
    >>> brain.add_area("A", n=1000, k=30)
    >>> run = brain.project("s", "A", rounds=15)
    >>> run.winners.shape, bool(run.overlaps[-1] > 0.9)   # converged to a (nearly) stable assembly
    ((15, 30), True)
    """

    def __init__(self, *, p: float = 0.01, beta: float = 0.05, seed: int | None = 0) -> None:
        if not (np.isscalar(p) and 0 < p <= 1):
            raise ArgumentError(f"p: got {describe(p)}. Pass a connection probability in (0, 1].")
        if not (np.isscalar(beta) and beta >= 0):
            raise ArgumentError(f"beta: got {describe(beta)}. Pass a plasticity rate >= 0 (0: no learning).")
        self.p, self.beta = float(p), float(beta)
        self.rng = np.random.default_rng(seed)
        self.areas: dict[str, _Area] = {}
        self.stimuli: dict[str, int] = {}
        self._weights: dict[tuple[str, str], Any] = {}

    # --- populations ------------------------------------------------------------------------

    def add_stimulus(self, name: str, k: int) -> None:
        """A stimulus: k neurons that fire together whenever it is presented."""
        self._new_name(name)
        self.stimuli[name] = check_int("k", k)

    def add_area(self, name: str, n: int, k: int) -> None:
        """An area of n neurons of which the k with the largest input fire at each step."""
        self._new_name(name)
        n = check_int("n", n, minimum=2)
        if isinstance(k, int | np.integer) and not isinstance(k, bool) and k > n:
            raise ArgumentError(
                f"k: got {k} for an area of n={n} neurons. The cap k must be at most n (typically ~sqrt(n))."
            )
        self.areas[name] = _Area(n, check_int("k", k, maximum=n))

    def _new_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"name: got {describe(name)}. Pass a non-empty string.")
        if name in self.areas or name in self.stimuli:
            raise ArgumentError(f"name: {name!r} exists already. Use another name.")

    def _size(self, name: str) -> int:
        if name in self.stimuli:
            return self.stimuli[name]
        if name in self.areas:
            return self.areas[name].n
        raise UnknownNameError(
            f"{name!r} is neither an area nor a stimulus. Areas: {format_choices(self.areas)}; stimuli: "
            f"{format_choices(self.stimuli)}."
        )

    def _area(self, name: str) -> _Area:
        if name not in self.areas:
            raise UnknownNameError(f"{name!r} is not an area. Areas: {format_choices(self.areas)}.")
        return self.areas[name]

    def weights(self, source: str, target: str) -> Any:
        """The (pre x post) sparse weight matrix from ``source`` to area ``target``, drawn on first use
        (each synapse present with probability p, weight 1).
        """
        import scipy.sparse

        key = (source, target)
        if key not in self._weights:
            n_pre, n_post = self._size(source), self.areas[target].n
            # every possible synapse present independently with probability p: the gaps between
            # present ones (in row-major order) are geometric, so their positions come sorted in O(count)
            total, chunks, last = n_pre * n_post, [], -1
            while last < total:
                size = int(1.05 * (total - last) * self.p) + 64
                positions = last + np.cumsum(self.rng.geometric(self.p, size=size))
                chunks.append(positions)
                last = int(positions[-1])
            flat = np.concatenate(chunks)
            flat = flat[flat < total]
            count = flat.size
            rows, cols = np.divmod(flat, n_post)
            self._weights[key] = scipy.sparse.csr_matrix(
                (np.ones(count, dtype=np.float32), (rows, cols)), shape=(n_pre, n_post)
            )
        return self._weights[key]

    # --- dynamics ---------------------------------------------------------------------------

    def step(self, sources: dict[str, Any], target: str, *, plasticity: bool = True) -> np.ndarray:
        """One round: ``target``'s k neurons with the largest summed input from the firing neurons of
        ``sources`` (name -> indices, or None for a stimulus's all or an area's current winners) fire;
        returns them and makes them the area's winners.
        """
        area = self._area(target)
        total = np.zeros(area.n, dtype=np.float64)
        fired = {}
        for source, active in sources.items():
            if active is None:
                active = np.arange(self.stimuli[source]) if source in self.stimuli else self.areas[source].winners
            active = np.asarray(active, dtype=np.int64)
            if active.size == 0:
                continue
            w = self.weights(source, target)
            total += np.asarray(w[active].sum(axis=0)).ravel()
            fired[source] = active
        if not fired:
            raise ArgumentError(f"sources: nothing fires into {target!r}. Present a stimulus or a firing area.")
        # the k largest inputs; ties broken at random (new areas start with many zeros)
        order = np.lexsort((self.rng.random(area.n), -total))
        winners = np.sort(order[: area.k])
        if plasticity and self.beta > 0:
            is_winner = np.zeros(area.n, dtype=bool)
            is_winner[winners] = True
            for source, active in fired.items():
                self._hebbian(self.weights(source, target), active, is_winner)
        area.winners = winners
        return winners

    def _hebbian(self, w: Any, pre: np.ndarray, is_post: np.ndarray) -> None:
        """w[i, j] *= 1 + beta for every stored synapse from a fired i to a winner j."""
        starts, ends = w.indptr[pre], w.indptr[pre + 1]
        lengths = ends - starts
        if lengths.sum() == 0:
            return
        positions = np.repeat(starts - np.cumsum(np.concatenate([[0], lengths[:-1]])), lengths) + np.arange(
            lengths.sum()
        )
        hit = positions[is_post[w.indices[positions]]]
        w.data[hit] *= 1 + self.beta

    def reset(self, area: str | None = None) -> None:
        """Silence an area (all areas by default): the next round starts from no recurrent input."""
        for name in [area] if area is not None else list(self.areas):
            self.areas[name].winners = np.zeros(0, dtype=np.int64)

    # --- operations -------------------------------------------------------------------------

    def _rounds(self, sources: dict[str, Any], target: str, rounds: int, label: str, plasticity: bool = True) -> Run:
        """``rounds`` steps of ``sources`` firing into ``target``, with ``target``'s own recurrent input
        from its previous winners (none while it is silent).
        """
        rounds = check_int("rounds", rounds)
        history = [self.step({**sources, target: None}, target, plasticity=plasticity) for _ in range(rounds)]
        return Run(target, self.areas[target].n, np.stack(history), label)

    def project(self, source: str, target: str, *, rounds: int = 10, plasticity: bool = True,
                label: str = "") -> Run:  # fmt: skip
        """Fire ``source`` (a stimulus, or an area's current assembly) into ``target`` for ``rounds``,
        with ``target``'s own recurrent input from its previous winners.
        """
        self._size(source), self._area(target)
        active = None if source in self.stimuli else self.areas[source].winners.copy()
        return self._rounds({source: active}, target, rounds, label or f"{source}->{target}", plasticity)

    def associate(self, first: str, second: str, target: str, *, rounds: int = 10) -> Run:
        """Fire two stimuli (each with an assembly in ``target``) together into ``target``."""
        self._size(first), self._size(second), self._area(target)
        return self._rounds({first: None, second: None}, target, rounds, f"{first}+{second}->{target}")

    def merge(self, first: str, second: str, target: str, *, rounds: int = 10) -> Run:
        """Fire the current assemblies of areas ``first`` and ``second`` together into ``target``:
        one assembly of ``target`` comes to respond to both.
        """
        a, b = self._area(first).winners.copy(), self._area(second).winners.copy()
        self._area(target)
        if not (a.size and b.size):
            raise ArgumentError(f"merge: {first!r} and {second!r} need assemblies first (project into them).")
        return self._rounds({first: a, second: b}, target, rounds, f"{first}+{second}->{target}")

    def respond(self, source: str, target: str, *, rounds: int = 1) -> np.ndarray:
        """Which neurons of ``target`` fire for ``source`` alone, without learning (from silence)."""
        self.reset(target)
        return self.project(source, target, rounds=rounds, plasticity=False).assembly

    def __repr__(self) -> str:
        areas = ", ".join(f"{k} (n={a.n}, k={a.k})" for k, a in self.areas.items())
        return f"<Brain: p={self.p}, beta={self.beta}; areas {areas}; stimuli {', '.join(self.stimuli)}>"


def to_recording(runs: list[Run] | dict[str, Run], *, metadata: Any = None) -> Recording:
    """Runs of the same area and length as a Recording: (run, round, neuron) binary firing in layer
    ``<area>``, with the runs' labels as metadata column ``run``.

    Examples
    --------
    >>> brain = Brain(p=0.05, seed=0)
    >>> for s in ("x", "y"):
    ...     brain.add_stimulus(s, 20)
    >>> brain.add_area("A", 500, 20)
    >>> runs = []
    >>> for s in ("x", "y"):
    ...     brain.reset()
    ...     runs.append(brain.project(s, "A", rounds=5))
    >>> to_recording(runs).shapes
    {'A': (2, 5, 500)}
    """
    items = list(runs.values()) if isinstance(runs, dict) else list(runs)
    if not items:
        raise ArgumentError("runs: got none. Pass the Run objects returned by project/associate/merge.")
    first = items[0]
    for run in items:
        if run.area != first.area or run.winners.shape != first.winners.shape:
            raise ArgumentError(
                f"runs: {run.label!r} is {run.winners.shape} in {run.area!r}, {first.label!r} {first.winners.shape} in "
                f"{first.area!r}. Record runs of one area with the same number of rounds."
            )
    labels = list(runs) if isinstance(runs, dict) else [r.label for r in items]
    meta = {"run": np.array(labels)}
    if metadata is not None:
        meta.update(dict(metadata))
    return Recording({first.area: np.stack([r.firing() for r in items])}, metadata=meta)
