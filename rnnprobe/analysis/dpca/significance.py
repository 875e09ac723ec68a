"""dpca_significance: which demixed components separate their classes on held-out trials (Kobak et al. 2016)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..._validation import check_int, check_recording, check_seed
from ...errors import ArgumentTypeError, ShapeError, describe
from ...recording import Recording
from ..blockwise import run_blocks, sample_blocks
from ..parallel import library_threads, task_pool
from .core import TIME, Design, fit_all, marginalize, trial_design
from .fit import DPCAResult, _centred, _parameters
from .trials import Trials, draw_held, split_means

FIT_BYTES = 2**24  # the designs' splits fitted as one batch hold about this many bytes of training means


def _class_traces(z: np.ndarray, sets: list[tuple[str, ...]], axes: list[str]) -> np.ndarray:
    """(..., component, class, time): components (..., component, *conditions, time) averaged over the
    parameters outside the marginalisation.
    """
    keep = {name for s in sets for name in s} - {TIME}
    drop = tuple(k - len(axes) for k, name in enumerate(axes[:-1]) if name not in keep)
    averaged = z.mean(axis=drop) if drop else z
    return averaged.reshape(*averaged.shape[: averaged.ndim - len(axes) + len(drop)], -1, averaged.shape[-1])


def nearest_mean_accuracy(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """(..., component, time) share of held-out classes whose value is nearest their own class's training mean,
    of (..., component, class, time) arrays.
    """
    distance = np.abs(test[..., :, None, :] - train[..., None, :, :])  # (..., test class, train class, time)
    return (np.argmin(distance, axis=-2) == np.arange(train.shape[-2])[:, None]).mean(axis=-2)


def _project(decoders: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Components (..., component, *conditions, time) of states (..., unit, *conditions, time) by decoders
    (..., unit, component), the leading axes a batch.
    """
    lead = decoders.shape[:-2]
    flat = x.reshape(*lead, x.shape[len(lead)], -1)
    return (decoders.swapaxes(-1, -2) @ flat).reshape(*lead, decoders.shape[-1], *x.shape[len(lead) + 1 :])


def _accuracies(sums: np.ndarray, held: np.ndarray, grid: Design, result: DPCAResult,
                names: list[str]) -> dict[str, np.ndarray]:  # fmt: skip
    """(design, split, component, time) nearest-mean accuracy of each marginalisation, for designs' condition
    sums (design, cell, time, unit) and their splits' held-out trials (design, split, cell, time, unit): every
    split of every design refitted at once by the stacked solvers (one design's 5 splits a fit at a time took
    0.15 s for 21 designs of 256 units, on one thread, and a second thread took turns with it).
    """
    axes = [*grid.parameters, TIME]
    components = {n: result.decoders[n].shape[1] for n in result.decoders}
    train, validation = (_centred(x, batch=2) for x in split_means(sums[:, None], held, grid))
    _, decoders = fit_all(train, marginalize(train, axes, result.marginalizations), result.regularizer, components,
                          batch=2)  # fmt: skip
    return {
        n: nearest_mean_accuracy(*(_class_traces(_project(decoders[n], x), result.marginalizations[n], axes)
                                   for x in (train, validation)))
        for n in names
    }  # fmt: skip


def _mean_over_splits(accuracies: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Each design's accuracies averaged over its splits (added in split order)."""
    out = []
    for design in range(len(next(iter(accuracies.values())))):
        scores = {}
        for n, accuracy in accuracies.items():
            total = accuracy[design, 0]
            for split in accuracy[design, 1:]:
                total = total + split
            scores[n] = total / accuracy.shape[1]
        out.append(scores)
    return out


def _all_scores(trials: Trials, designs: list[Design], helds: list[np.ndarray], result: DPCAResult,
                names: list[str]) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """Each design's accuracies averaged over its splits (the observed, then the shuffles: one grid of
    conditions, the same counts), their condition sums and their held-out trials taken together in as few passes
    over the trials as the memory budget allows (a read of a few trials of a dask-backed layer decompresses
    every chunk they are in: with a read per design, 21 designs of 122,070 trials on disk took 24.9 s on one
    dask worker, 9.3 s with one read, AMD EPYC).
    """
    grid = dataclasses.replace(designs[0], cells=designs[0].cells[:0])  # scoring needs no trial's cell
    scores = []
    for group in trials.groups(len(designs), designs[0].counts.size):  # designs whose sums fit the budget
        sums, group_helds = trials.sums(designs[group]), helds[group]
        for part in trials.groups(len(sums), helds[0].size):  # designs whose held-out trials fit it together
            held_trials, held = trials.gather(group_helds[part])
            jobs = list(zip(sums[part], held, strict=True))
            if held_trials is trials:  # one design's held-out trials exceed it: its splits are read in groups
                for s, h in jobs:
                    parts = [_accuracies(s[None], t[None, None], grid, result, names) for t in trials.held_out(h)]
                    scores += _mean_over_splits({n: np.concatenate([p[n] for p in parts], axis=1) for n in names})
            else:
                scores += _scores_of_designs(jobs, held_trials.states, grid, result, names)
    return scores


def _scores_of_designs(jobs: list[tuple[np.ndarray, np.ndarray]], states: np.ndarray, grid: Design,
                       result: DPCAResult, names: list[str]) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """Each design's accuracies averaged over its splits, from its job (its condition sums, and its splits'
    held-out rows of ``states``, the held-out trials in memory): the designs are independent, so they run as
    tasks on the active dask client (blocks of designs), else on the libraries' threads (a block of designs a
    worker).
    """
    blocks = sample_blocks(len(jobs))
    if blocks is None:
        count = max(library_threads(), -(-len(jobs) // _designs_per_batch(jobs, states)))
        blocks = np.array_split(np.arange(len(jobs)), min(count, len(jobs)))
        with task_pool(len(blocks)) as pmap:
            parts = list(pmap(lambda b: _scores_of_block([jobs[i] for i in b], states, grid, result, names), blocks))
    else:
        parts = run_blocks(_scores_of_block, [jobs[b] for b in blocks], states, grid, result, names)
    return [score for part in parts for score in part]


def _designs_per_batch(jobs: list[tuple[np.ndarray, np.ndarray]], states: np.ndarray) -> int:
    """How many designs' splits one batch of fits takes: about FIT_BYTES of training means (each the size of its
    held-out trials).
    """
    return max(1, FIT_BYTES // (8 * jobs[0][1].size * int(np.prod(states.shape[1:]))))


def _scores_of_block(jobs: list[tuple[np.ndarray, np.ndarray]], states: np.ndarray, grid: Design,
                     result: DPCAResult, names: list[str]) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """:func:`_scores_of_designs` of a block of jobs (a task): their splits fitted in batches of at most
    FIT_BYTES of training means.
    """
    per_batch = _designs_per_batch(jobs, states)
    scores = []
    for start in range(0, len(jobs), per_batch):
        batch = jobs[start : start + per_batch]
        sums, held = np.stack([s for s, _ in batch]), np.stack([states[h] for _, h in batch])
        scores += _mean_over_splits(_accuracies(sums, held, grid, result, names))
    return scores


def dpca_significance(
    recording: Recording, result: DPCAResult, *, n_shuffles: int = 100, n_splits: int = 100, seed: int | None = 0
) -> DPCAResult:
    """Cross-validated significance of every demixed component over time, by label shuffles.

    For each of ``n_splits`` splits, one random trial per condition is held out, dPCA is refitted on the
    means of the others, and each component's held-out class values (the classes: the values of the
    marginalisation's parameters) are classified by the nearest training class mean, at every time. The
    mean accuracy is compared with the same computed after each of ``n_shuffles`` random reassignments of
    trials to conditions (counts kept): significant where it exceeds every shuffle (p < 1 / (n_shuffles
    + 1)), as the dPCA package's ``significance_analysis`` with ``axis=True``. Unbalanced conditions are
    handled trial by trial (no padding).

    Parameters
    ----------
    recording : Recording
        The trials ``result`` was fitted on.
    result : DPCAResult
    n_shuffles, n_splits : int
    seed : int, optional

    Returns
    -------
    DPCAResult
        ``result`` with ``significance`` (marginalisation -> (component, time) bool) filled in; the
        time-only marginalisation has no classes and is left out.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> from rnnprobe.analysis import fit_dpca
    >>> rng = np.random.default_rng(0)
    >>> stimulus = np.repeat([0, 1], 12)
    >>> ramp = np.linspace(0, 1, 6)[None, :, None]
    >>> states = ramp * (stimulus - 0.5)[:, None, None] * rng.normal(size=8) + 0.1 * rng.normal(size=(24, 6, 8))
    >>> rec = Recording({"h": states}, metadata={"stimulus": stimulus})
    >>> result = dpca_significance(rec, fit_dpca(rec, parameters="stimulus", n_components=1), n_shuffles=9,
    ...                            n_splits=5)
    >>> result.significance["stimulus"][0]
    array([False,  True,  True,  True,  True,  True])
    """
    check_recording(recording, "recording")
    if not isinstance(result, DPCAResult):
        raise ArgumentTypeError(f"result: got {describe(result)}. Pass the DPCAResult of fit_dpca on these trials.")
    n_shuffles = check_int("n_shuffles", n_shuffles, maximum=100_000)
    n_splits = check_int("n_splits", n_splits, maximum=100_000)
    design = trial_design(_parameters(recording, result.parameters))
    trials = Trials(recording, result.layer, result.time_positions)  # blockwise for a dask-backed recording
    if design.counts.shape != result.counts.shape or not np.array_equal(design.counts, result.counts):
        raise ShapeError("recording: its trials per condition differ from result's; pass the trials it was fitted on.")
    if design.counts.min() < 2:
        raise ShapeError(f"recording: a condition has {design.counts.min()} trial; held-out splits need 2 or more.")
    rng = np.random.default_rng(check_seed(seed))
    names = [n for n in result.marginalizations if n != TIME]
    designs, helds = [design], [draw_held(design, n_splits, rng)]
    for _ in range(n_shuffles):  # the random draws first: they do not depend on the states
        designs.append(dataclasses.replace(design, cells=rng.permutation(design.cells)))
        helds.append(draw_held(designs[-1], n_splits, rng))
    observed, *shuffles = _all_scores(trials, designs, helds, result, names)
    exceeded = {n: np.ones(observed[n].shape, dtype=bool) for n in names}
    for scores in shuffles:
        for n, score in scores.items():
            exceeded[n] &= observed[n] > score
    return dataclasses.replace(result, significance=exceeded)
