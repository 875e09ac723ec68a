"""``compare_models``: the same analyses on several models' recordings, laid out side by side.

One call runs the chosen analyses on every recording with the same settings (same layers policy,
same cross-validation folds and seeds, same RDM and comparison methods) and returns a
:class:`ComparisonResult`, whose :meth:`~ComparisonResult.to_report` puts the results side by side in
a :class:`~rnnprobe.report.Report` with a summary table.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_device, check_int, check_option, check_progress
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from ..recording import Recording
from ._scores import peak_position

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..report import Report
    from .alignment import DistanceMatrixResult
    from .decoding import DecodingResult
    from .encoding import EncodingResult
    from .fixed_points import FixedPointResult
    from .pca import PCAResult
    from .rsa import RDMs, RSAResult

ANALYSES = ("pca", "rdms", "rsa", "encoding", "decoding", "generalization", "jpca", "tdr", "dpca", "alignment", "dsa",
            "fixed_points", "speed_accuracy", "interventions")  # fmt: skip
OPT_IN = ("dsa", "jpca", "speed_accuracy")  # run only when asked for: their settings depend on the models and stimuli
POPULATION = ("jpca", "tdr", "dpca")  # of each model's focus layer; a model where one cannot run keeps the reason


@dataclass
class ComparisonResult:
    """Results of :func:`compare_models`: per model (and layer), the same analyses.

    Attributes
    ----------
    names : list of str
        The models, in the order given.
    layers : dict of str to list of str
        The layers analysed per model.
    focus : dict of str to str
        Per model, the layer shown in the trajectory, RDM and generalization figures: the best
        decoding layer (with a target), else the best-matching layer for the first neural RDM,
        else the last layer.
    analyses : tuple of str
        The analyses run.
    target : str or None
        The decoded metadata column.
    pca : dict of str to PCAResult
        PCA of each model's focus layer.
    rdms : dict of str to dict of str to RDMs
        RDMs over time, per model and layer.
    rsa : dict of str to dict of str to dict of str to RSAResult
        ``rsa[neural][model][layer]``: similarity of the layer's RDMs (over model time) to the
        neural RDM(s), with the noise ceiling when subject RDMs were given.
    decoding : dict of str to dict of str to DecodingResult
        Decoding of ``target`` over time, per model and layer.
    generalization : dict of str to DecodingResult
        Temporal generalization of ``target`` at each model's focus layer.
    encoding : dict of str to dict of str to EncodingResult
        ``encoding[responses][model]``: ridge encoding models from every layer and model time step to
        every neuron (voxel) and neural time of those responses, with noise ceilings.
    alignment : DistanceMatrixResult or None
        Shape (or ``metric``) distances between every model's layers at the last time step, and their
        map.
    jpca, tdr, dpca : dict of str to result or str
        Per model: jPCA of the focus layer's averages per ``target`` value, TDR on ``variables``, dPCA by
        ``parameters`` (or why it could not run on that model).
    dsa : DistanceMatrixResult or None
        Dynamical similarity (DSA angular distances) between every model's focus layer over time, and
        their map.
    fixed_points : dict of str to FixedPointResult or str
        Per model given in ``models``: its fixed points, or why they were not searched.
    speed_accuracy : dict of str to SpeedAccuracyResult
        Per model given in ``models``: accuracy of its readout against mean FLOPs under
        confidence-threshold stopping, on ``stimuli`` with ``target`` as labels.
    compute_matched : ComputeMatchedResult or None
        The models at each other's compute (two models or more).
    interventions : dict of str to InterventionEffect
        Per named intervention: its effect on the model's accuracy (or mean |output| without a
        target) and on its focus layer's RDMs over time, against ``n_controls`` random controls.
    seconds : dict of str to float
        Wall time per analysis, summed over models.
    settings : dict
        The shared settings.
    """

    names: list[str]
    layers: dict[str, list[str]]
    focus: dict[str, str]
    analyses: tuple[str, ...]
    target: str | None
    pca: dict[str, PCAResult] = field(default_factory=dict)
    rdms: dict[str, dict[str, RDMs]] = field(default_factory=dict)
    rsa: dict[str, dict[str, dict[str, RSAResult]]] = field(default_factory=dict)
    decoding: dict[str, dict[str, DecodingResult]] = field(default_factory=dict)
    generalization: dict[str, DecodingResult] = field(default_factory=dict)
    encoding: dict[str, dict[str, EncodingResult]] = field(default_factory=dict)
    alignment: DistanceMatrixResult | None = None
    dsa: DistanceMatrixResult | None = None
    jpca: dict[str, Any] = field(default_factory=dict)
    tdr: dict[str, Any] = field(default_factory=dict)
    dpca: dict[str, Any] = field(default_factory=dict)
    fixed_points: dict[str, FixedPointResult | str] = field(default_factory=dict)
    speed_accuracy: dict[str, Any] = field(default_factory=dict)
    compute_matched: Any = None
    interventions: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    _recordings: dict[str, Recording] = field(default_factory=dict, repr=False)
    _fp_layers: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (
            f"<ComparisonResult: {len(self.names)} model(s) ({', '.join(self.names)}), "
            f"analyses {', '.join(self.analyses)}>"
        )

    # --- numbers ---------------------------------------------------------------------------

    def best_rsa(self, neural: str, model: str) -> dict[str, Any]:
        """The best-matching layer and model time for a neural RDM (at its best data time); the layer None
        where no layer has a defined similarity.
        """
        found = [{"layer": layer, **comparison.best()} for layer, comparison in self.rsa[neural][model].items()]
        return _highest(found, "similarity")

    def best_decoding(self, model: str) -> dict[str, Any]:
        """The layer and time step with the highest decoding score (and the score, chance); the layer None
        where no layer has a score.
        """
        found = []
        for layer, result in self.decoding[model].items():
            i = peak_position(result.scores)
            found.append({"layer": layer, "time": None if i is None else result.times[i[0]].item(),
                          "score": float("nan") if i is None else float(result.scores[i]),
                          "chance": float(result.chance), "scoring": result.scoring})  # fmt: skip
        return _highest(found, "score")

    def best_encoding(self, responses: str, model: str) -> dict[str, Any]:
        """The layer, model time and neural time with the highest median held-out r for ``responses``; the
        layer None where no layer has a score.
        """
        result = self.encoding[responses][model]
        return _highest([result.peak(layer) for layer in result.scores], "median r")

    def table(self) -> dict[str, list[Any]]:
        """The summary table, one row per model: best-matching layer and time per neural RDM,
        peak decoding (layer, time, score), dimensionality, stable fixed points.
        """
        rows: list[dict[str, Any]] = []
        for name in self.names:
            row: dict[str, Any] = {"model": name, "focus layer": self.focus[name]}
            for neural in self.rsa:
                best = self.best_rsa(neural, name)
                row[f"{neural}: best layer"] = best["layer"]
                row[f"{neural}: best time"] = best["model_time"]
                if len(next(iter(self.rsa[neural][name].values())).data_times) > 1:
                    row[f"{neural}: best data time"] = best["data_time"]
                row[f"{neural}: similarity"] = best["similarity"]
            for responses in self.encoding:
                best = self.best_encoding(responses, name)
                row[f"{responses} encoding: best layer"] = best["layer"]
                row[f"{responses} encoding: best time"] = best["model_time"]
                row[f"{responses} encoding: median r"] = best["median r"]
                if "ceiled median r" in best:
                    row[f"{responses} encoding: ceiled median r"] = best["ceiled median r"]
            if name in self.decoding:
                best = self.best_decoding(name)
                row["decoding: best layer"] = best["layer"]
                row["decoding: peak time"] = best["time"]
                row[f"decoding: peak {best['scoring']}"] = best["score"]
                row["decoding: chance"] = best["chance"]
            if name in self.generalization:
                g = self.generalization[name].scores
                off = g[~np.eye(*g.shape, dtype=bool)] if min(g.shape) > 1 else np.array([np.nan])
                row["generalization: mean off-diagonal"] = float(np.nanmean(off))
            if name in self.pca:
                row["participation ratio (last step)"] = float(self.pca[name].participation_ratio[-1])
            if self.alignment is not None:
                row["alignment: nearest"] = self.alignment.nearest()[f"{name}: {self.focus[name]}"]
            if self.dsa is not None:
                row["dsa: nearest"] = self.dsa.nearest()[name]
            row.update(_population_row(self, name))
            if name in self.speed_accuracy:
                best = self.speed_accuracy[name].best()
                row["speed-accuracy: best accuracy"] = best[0]
                row["speed-accuracy: mean FLOPs at best"] = best[1]
            if "fixed_points" in self.analyses:
                fp = self.fixed_points.get(name)
                searched = fp is not None and not isinstance(fp, str)
                row["fixed points"] = len(fp) if searched else None
                row["stable fixed points"] = int(fp.stable.sum()) if searched else None
            rows.append(row)
        keys = list(dict.fromkeys(k for row in rows for k in row))
        return {k: [row.get(k) for row in rows] for k in keys}

    def summary(self) -> dict[str, Any]:
        """The summary table as a dict of columns (see :meth:`table`)."""
        return self.table()

    def noise_ceilings(self) -> dict[str, tuple[float, float]]:
        """(lower, upper) noise ceiling per neural RDM with subject RDMs."""
        out = {}
        for neural, per_model in self.rsa.items():
            first = next(iter(next(iter(per_model.values())).values()))
            if first.noise_ceiling is not None:
                out[neural] = tuple(map(float, first.noise_ceiling))
        return out

    # --- figures ---------------------------------------------------------------------------

    def _makers(self) -> dict[str, Any]:
        """Figure name -> function drawing it, for every figure the results allow, in report order."""
        from functools import partial

        from ..report import comparison_figures as figs

        makers: dict[str, Any] = {}
        if self.pca:
            makers["pca"] = figs.pca
        if self.rdms:
            makers["rdms"] = figs.rdms
        for neural in self.rsa:
            makers[f"rsa-{neural}"] = partial(figs.rsa, neural=neural)
        for responses in self.encoding:
            makers[f"encoding-{responses}"] = partial(figs.encoding, responses=responses)
        if self.decoding:
            makers["decoding"] = figs.decoding
        if self.generalization:
            makers["generalization"] = figs.generalization
        if self.alignment is not None:
            makers["alignment"] = figs.alignment
        if self.dsa is not None:
            makers["dsa"] = figs.dsa
        for analysis in POPULATION:
            if any(not isinstance(r, str) for r in getattr(self, analysis).values()):
                makers[analysis] = partial(figs.population, analysis=analysis)
        if any(not isinstance(fp, str) for fp in self.fixed_points.values()):
            makers["fixed-points"] = figs.fixed_points
        if self.speed_accuracy:
            makers["speed-accuracy"] = figs.speed_accuracy
        for name in self.interventions:
            makers[f"intervention-{name}"] = partial(figs.intervention, name=name)
        return makers

    def figures(self) -> dict[str, Figure]:
        """Every side-by-side figure, by name (see :mod:`rnnprobe.report.comparison_figures`); the RDM
        figure when "rdms" was asked for (RDMs computed only for RSA are not drawn).
        """
        return {k: make(self) for k, make in self._makers().items() if k != "rdms" or "rdms" in self.analyses}

    def plot(self, analysis: str = "decoding") -> Figure:
        """One side-by-side figure: "pca", "rdms", "rsa-<neural name>", "encoding-<responses name>",
        "decoding", "generalization", "jpca", "tdr", "dpca", "alignment", "dsa", "fixed-points",
        "speed-accuracy" or "intervention-<name>".
        """
        makers = self._makers()
        if analysis not in makers:
            raise UnknownNameError(f"analysis: {analysis!r} was not run. Available: {format_choices(makers)}.")
        return makers[analysis](self)

    # --- report ----------------------------------------------------------------------------

    def to_report(self, report: Report | None = None, *, title: str = "Model comparison",
                  prefix: str | None = None, timings: bool = False) -> Report:  # fmt: skip
        """The comparison as report sections: summary table, then one section per analysis with the
        side-by-side figure and each model's key numbers. Adds to ``report`` when given, with section
        titles starting with ``prefix`` (e.g. "BLT: Decoding over time") to tell comparisons apart.
        ``timings=True`` adds the seconds per analysis to the overview (off: a report of the same
        analyses is the same file).
        """
        from ..report import Report
        from ..report import comparison_figures as figs

        report = Report(title) if report is None else report

        def heading(text: str) -> str:
            return f"{prefix}: {text}" if prefix else text

        figures = self.figures()
        report.section(heading("Summary"))
        report.add_text(figs.overview(self, timings=timings), name="overview")
        report.add_table(self.table(), caption="One row per model (times are time steps).", name="summary")
        for key, (title_, caption) in figs.sections(self).items():
            if key not in figures:
                continue
            report.section(heading(title_))
            report.add_figure(figures[key], caption=caption, name=key)
            numbers = figs.numbers(self, key)
            if numbers:
                report.add_table(numbers, name=f"{key}-numbers")
        skipped = {name: why for name, why in self.fixed_points.items() if isinstance(why, str)}
        if skipped:
            report.section(heading("Fixed points"))
            report.add_text("\n\n".join(f"{name}: {why}" for name, why in skipped.items()), name="fixed-points-skipped")
        return report

    def save(self, path: Any, *, title: str = "Model comparison", **kwargs: Any) -> Any:
        """``self.to_report(title=title).save(path, **kwargs)``; returns the HTML file's path."""
        return self.to_report(title=title).save(path, **kwargs)


# --- the analyses -----------------------------------------------------------------------------


def _check_recordings(recordings: Any) -> dict[str, Recording]:
    if not isinstance(recordings, Mapping) or not recordings:
        raise ArgumentTypeError(
            f"recordings: got {describe(recordings)}. Pass a dict of model name to Recording, e.g. "
            f"{{'BLT': rec_blt, 'B': rec_b}}."
        )
    for name, rec in recordings.items():
        if not isinstance(name, str) or not name:
            raise ArgumentTypeError(f"recordings: the key {name!r} is not a model name. Use non-empty strings.")
        if not isinstance(rec, Recording):
            raise ArgumentTypeError(f"recordings[{name!r}]: got {describe(rec)}. Pass an rnnprobe Recording.")
    return dict(recordings)


def _per_model(value: Any, names: list[str], what: str) -> dict[str, Any]:
    """A setting given once for all models, or as a dict per model."""
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise UnknownNameError(f"{what}: {unknown[0]!r} is not one of the models. Models: {format_choices(names)}.")
        return {name: value.get(name) for name in names}
    return dict.fromkeys(names, value)


def _layers(recordings: dict[str, Recording], layers: Any) -> dict[str, list[str]]:
    out = {}
    for name, chosen in _per_model(layers, list(recordings), "layers").items():
        rec = recordings[name]
        chosen = rec.layers if chosen is None else [chosen] if isinstance(chosen, str) else list(chosen)
        for layer in chosen:
            if layer not in rec.layers:
                raise UnknownNameError(
                    f"layers: {layer!r} is not a layer of {name!r}'s recording. Available: "
                    f"{format_choices(rec.layers)}."
                )
        if not chosen:
            raise ArgumentError(f"layers: no layers chosen for {name!r}. Name at least one.")
        out[name] = chosen
    return out


def _neural(neural: Any, subjects: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from .rsa import RDMs

    if neural is None:
        if subjects is not None:
            raise ArgumentError("subjects: given without neural. Pass the neural RDMs as neural={'name': rdms}.")
        return {}, {}
    neural = {"neural": neural} if not isinstance(neural, Mapping) else dict(neural)
    subjects = {} if subjects is None else {"neural": subjects} if not isinstance(subjects, Mapping) else dict(subjects)
    for key in subjects:
        if key not in neural:
            raise UnknownNameError(f"subjects: {key!r} is not a key of neural. Keys: {format_choices(neural)}.")
    for key, value in list(neural.items()):
        if value is None and key in subjects:
            continue  # pooled from the subjects
        if not isinstance(value, RDMs) and not hasattr(value, "get_vectors"):
            try:
                np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise ArgumentTypeError(
                    f"neural[{key!r}]: got {describe(value)}. Pass rnnprobe RDMs (e.g. from "
                    f"rnnprobe.neural.load_rdms(path)), rsatoolbox RDMs or upper-triangle vectors."
                ) from None
    return neural, subjects


def _responses(responses: Any) -> dict[str, Any]:
    """Neural responses for encoding, by name (one set is named "neural")."""
    if responses is None:
        return {}
    out = dict(responses) if isinstance(responses, Mapping) else {"neural": responses}
    for key in out:
        if not isinstance(key, str) or not key:
            raise ArgumentTypeError(f"responses: the key {key!r} is not a name. Use non-empty strings.")
    return out


def _n_conditions(rdms: Any) -> int:
    from .rsa import as_vectors, n_conditions

    return n_conditions(as_vectors(rdms, "neural").shape[1])


def _fp_layers(model: Any, rec: Recording, chosen: Any, name: str) -> list[str] | str:
    """The recorded layers whose units, joined in order, make the model's packed state."""
    from ._state_map import StateMap

    if chosen is not None:
        return [chosen] if isinstance(chosen, str) else list(chosen)
    size = StateMap(model).state_size
    units = {layer: int(np.prod(rec.unit_shape(layer))) for layer in rec.layers}
    layers = rec.layers
    for length in range(len(layers), 0, -1):  # contiguous runs of recorded layers, longest first
        for start in range(len(layers) - length + 1):
            run = layers[start : start + length]
            if sum(units[layer] for layer in run) == size:
                return run
    return (
        f"no recorded layers make up its state of {size} units (recorded: "
        f"{', '.join(f'{k} ({v})' for k, v in units.items())}); pass fixed_point_layers={{{name!r}: [...]}} "
        f"naming the state's parts in pack order, or record them."
    )


def _highest(found: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The entry of the highest defined ``key`` (the first of equals); where none is defined (NaN), the first
    entry with its layer None: an undefined score is not a best layer (a NaN compared as the largest, or
    numpy's All-NaN error, before).
    """
    defined = [entry for entry in found if not np.isnan(entry[key])]
    return max(defined, key=lambda entry: entry[key]) if defined else {**found[0], "layer": None}


def compare_models(
    recordings: Mapping[str, Recording],
    *,
    layers: Any = None,
    target: str | None = None,
    neural: Any = None,
    subjects: Any = None,
    responses: Any = None,
    descriptor: str | None = None,
    analyses: Sequence[str] | None = None,
    models: Mapping[str, Any] | None = None,
    stimuli: Any = None,
    interventions: Mapping[str, Any] | None = None,
    n_controls: int = 0,
    fixed_point_layers: Mapping[str, Any] | None = None,
    fixed_point_modules: Mapping[str, str] | None = None,
    fixed_point_inputs: Any = None,
    n_initial: int = 256,
    distance: str = "correlation",
    comparison: str = "corr",
    metric: str = "shape",
    dsa_delays: int = 3,
    dsa_rank: int = 10,
    variables: Sequence[str] | None = None,
    parameters: Sequence[str] | None = None,
    estimator: Any = "ridge",
    cv: int = 5,
    n_permutations: int = 0,
    seed: int = 0,
    device: str | None = None,
    progress: bool | None = None,
) -> ComparisonResult:
    """Run the same analyses on several models' recordings and compare them side by side.

    Parameters
    ----------
    recordings : dict of str to Recording
        One recording per model, e.g. ``{"BLT": rec_blt, "B": rec_b}``, of the same stimuli (in
        the same order) when RSA compares them with neural RDMs.
    layers : str, list of str, or dict of model to those, optional
        Layers to analyse (default: all recorded layers). RSA and decoding sweep them all; PCA,
        RDM figures and temporal generalization use each model's focus layer (see
        :class:`ComparisonResult`).
    target : str, optional
        Metadata column to decode over time (and to colour trajectories and sort RDMs by).
    neural : RDMs or dict of str to RDMs, optional
        Neural (or any reference) RDMs over the same conditions as the model RDMs: one RDM, or
        one per data time point (MEG, electrophysiology) for model-time x brain-time RSA. A
        value may be None when ``subjects`` has that key (the subjects' mean is used).
    subjects : RDMs or dict of str to RDMs, optional
        Per-subject (or per-session) RDMs of the neural data: gives the noise ceiling.
    responses : Recording, array or dict of str to those, optional
        Neural responses for encoding models (:func:`~rnnprobe.analysis.encoding.fit_encoding`:
        ridge, ``cv`` folds, noise ceilings from repetitions), e.g. ``{"IT": it_recording}``.
    descriptor : str, optional
        Metadata column whose values are the RDM conditions (stimuli with the same value are
        averaged), e.g. the image id; default: every stimulus is a condition. For encoding, it
        also groups the responses' trials into those conditions.
    analyses : list of str, optional
        Any of "pca", "rdms", "rsa", "encoding", "decoding", "generalization", "jpca", "tdr", "dpca",
        "alignment", "dsa", "fixed_points", "speed_accuracy", "interventions". Default: all that the
        arguments allow (RSA with ``neural``, encoding with ``responses``, decoding and generalization
        with ``target``, alignment with two models or more, TDR with ``variables``, dPCA with
        ``parameters``, fixed points with ``models``, interventions with ``interventions``) but "dsa"
        (two models or more), "jpca" (with ``target``) and "speed_accuracy" (``models``, ``stimuli``,
        ``target``), which run when asked for.
    models : dict of str to model, optional
        The models the recordings came from (step protocol, or torch RNN modules), for the
        fixed-point search, speed-accuracy and interventions. Fixed points are searched at the
        constant input ``fixed_point_inputs`` (default zeros) from ``n_initial`` recorded states of
        ``fixed_point_layers`` (default: the recorded layers whose units make up the model's state),
        in the submodule ``fixed_point_modules[name]`` (an nn.RNN/GRU/LSTM inside) where given.
    stimuli : Tensor or ndarray, optional
        The stimuli the recordings were made from (same order), for "speed_accuracy" (each model in
        ``models`` with ``target`` as class labels: :func:`~rnnprobe.analysis.speed_accuracy`, and
        :func:`~rnnprobe.analysis.compute_matched` between them) and "interventions".
    interventions : dict of str to (model name, changes), optional
        Named changes (an Intervention, a Lesion or a list) of one model each, e.g.
        ``{"BLT, lateral cooled": ("BLT", Lesion.cool("lateral", from_step=1))}``:
        :func:`~rnnprobe.analysis.intervention_effect` on ``stimuli`` (accuracy of ``target``, else
        mean |output|; the model's focus layer's RDMs by ``target``), against ``n_controls`` controls
        from :func:`~rnnprobe.recording.random_like`. To run every analysis on a changed model too,
        add its recording (``record(..., interventions=...)``) to ``recordings``.
    distance, comparison : str
        RDM dissimilarity (:func:`~rnnprobe.analysis.rsa.compute_rdms`) and RDM comparison
        (:func:`~rnnprobe.analysis.rsa.compare_rdms`) methods.
    metric : str
        The alignment metric between models' layers at the last time step
        (:func:`~rnnprobe.analysis.alignment.pairwise_distances`): "shape" (Procrustes), "cca",
        "svcca", "pwcca", "cka" or "debiased_cka".
    dsa_delays, dsa_rank : int
        DSA (:func:`~rnnprobe.analysis.dsa.pairwise_dynamics`) of each model's focus layer over time, its
        stimuli as trials: delays of the embedding and rank of the operators.
    variables : list of str, optional
        TDR (:func:`~rnnprobe.analysis.tdr.fit_tdr`) of each model's focus layer on these metadata columns.
    parameters : list of str, optional
        dPCA (:func:`~rnnprobe.analysis.dpca.fit_dpca`) of each model's focus layer by these columns.
    estimator, cv, n_permutations : optional
        Decoding settings (:func:`~rnnprobe.analysis.decoding.decode`), the same for every model.
    seed : int
        Seeds the folds, permutations and fixed-point initial states.
    device : str, optional
        A torch device (e.g. "cuda") for every analysis that has a ``device=`` path: RDMs, decoding and
        generalization, encoding models, PCA, alignment and fixed points (each as its own function with
        ``device=``; an estimator without a fast path is refused). TDR, dPCA, jPCA, DSA, the RSA
        comparisons, speed-accuracy and interventions run on the CPU (the last two where the model is).
    progress : bool or None
        Show a progress bar over models and analyses (on stderr).
        None (default): a bar only when stderr is a terminal.

    Returns
    -------
    ComparisonResult

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rng = np.random.default_rng(0)
    >>> label = rng.integers(0, 2, 40)
    >>> slow = Recording({"h": rng.normal(size=(40, 6, 5)) + label[:, None, None] * np.arange(6)[:, None] / 3},
    ...                  metadata={"label": label})
    >>> fast = Recording({"h": rng.normal(size=(40, 6, 5)) + 2.0 * label[:, None, None]}, metadata={"label": label})
    >>> result = compare_models({"slow": slow, "fast": fast}, target="label", progress=False)
    >>> result
    <ComparisonResult: 2 model(s) (slow, fast), analyses pca, rdms, decoding, generalization, alignment>
    >>> table = result.table()
    >>> table["model"], table["decoding: peak time"]
    (['slow', 'fast'], [4, 1])
    """
    from .alignment.inputs import METRICS
    from .rsa import COMPARISONS, DISTANCES

    recordings = _check_recordings(recordings)
    names = list(recordings)
    chosen_layers = _layers(recordings, layers)
    neural, subjects = _neural(neural, subjects)
    check_option("distance", distance, DISTANCES), check_option("comparison", comparison, COMPARISONS)
    n_initial = check_int("n_initial", n_initial, minimum=1)
    device = check_device(device)
    models = _check_models(models, names)
    _check_columns(recordings, target=target, descriptor=descriptor)
    responses = _responses(responses)
    check_option("metric", metric, METRICS)
    changes = _check_interventions(interventions, models, stimuli)
    run = analyses_to_run(analyses, neural=neural, target=target, models=models, responses=responses,
                           n_models=len(names), variables=variables, parameters=parameters,
                           costs=bool(models) and stimuli is not None and target, interventions=changes)  # fmt: skip
    fp_models = _fixed_point_models(models, fixed_point_modules) if "fixed_points" in run else {}
    fp_layers = _fixed_point_layers(fixed_point_layers, recordings, fp_models)

    result = ComparisonResult(names, chosen_layers, {}, run, target, _recordings=recordings)
    result.settings = _settings(distance=distance, comparison=comparison, descriptor=descriptor, metric=metric,
                                dsa_delays=dsa_delays, dsa_rank=dsa_rank, variables=variables, parameters=parameters,
                                estimator=estimator, cv=cv, n_permutations=n_permutations, seed=seed,
                                n_initial=n_initial, device=None if device is None else str(device))  # fmt: skip
    from tqdm.auto import tqdm

    bar = tqdm(total=len(_steps(run, names, models, changes)), desc="compare models", unit="analysis",
               disable=not check_progress(progress))  # fmt: skip
    runner = _Runner(result, bar, neural=neural, subjects=subjects, models=models, fp_layers=fp_layers,
                     fixed_point_inputs=fixed_point_inputs, responses=responses,
                     decoding=dict(estimator=estimator, cv=cv, seed=seed, device=device, progress=False),
                     extra=dict(stimuli=stimuli, interventions=changes, fp_models=fp_models,
                                n_controls=check_int("n_controls", n_controls, minimum=0)), device=device)  # fmt: skip
    try:
        for name in names:
            runner.run(name, recordings[name], chosen_layers[name])
        if "alignment" in run:
            runner.align()
        if "dsa" in run:
            runner.compare_dynamics()
        runner.costs_and_interventions()
    finally:
        bar.close()
    return result


def _steps(run: tuple[str, ...], names: list[str], models: Mapping[str, Any], changes: Mapping[str, Any]) -> list:
    """(model, analysis) pairs the progress bar counts."""
    together = ("alignment", "dsa")  # analyses of all models at once
    per_model = ("fixed_points", "speed_accuracy")  # of the models given only
    steps = [(name, a) for name in names for a in run if a not in (*together, "interventions")
             and (a not in per_model or name in models)]  # fmt: skip
    return steps + [("all models", a) for a in together if a in run] + [(name, "interventions") for name in changes]


def _settings(**settings: Any) -> dict[str, Any]:
    """The settings shared by every model's analyses, as the result (and its report) keeps them."""
    settings["dsa_delays"] = check_int("dsa_delays", settings["dsa_delays"])
    settings["dsa_rank"] = check_int("dsa_rank", settings["dsa_rank"])
    estimator = settings["estimator"]
    settings["estimator"] = estimator if isinstance(estimator, str) else type(estimator).__name__
    return settings


def _check_models(models: Mapping[str, Any] | None, names: list[str]) -> dict[str, Any]:
    models = {} if models is None else dict(models)
    for name in models:
        if name not in names:
            raise UnknownNameError(f"models: {name!r} has no recording. Models: {format_choices(names)}.")
    return models


def _check_columns(recordings: Mapping[str, Recording], **columns: str | None) -> None:
    for argument, column in columns.items():
        for name, rec in recordings.items():
            if column is not None and column not in rec.columns:
                raise UnknownNameError(
                    f"{argument}: {column!r} is not a metadata column of {name!r}'s recording. Available: "
                    f"{format_choices(rec.columns)}."
                )


def _fixed_point_models(models: Mapping[str, Any], modules: Mapping[str, str] | None) -> dict[str, Any]:
    """The model whose fixed points are searched: the model, or the recurrent submodule named in ``modules``."""
    from ..models import from_module

    out = dict(models)
    for name, path in (modules or {}).items():
        if name not in models:
            raise UnknownNameError(f"fixed_point_modules: {name!r} is not in models ({format_choices(models)}).")
        try:
            out[name] = from_module(models[name].get_submodule(path))
        except AttributeError:
            raise UnknownNameError(f"fixed_point_modules: {name!r} has no submodule {path!r}.") from None
    return out


def _check_interventions(interventions: Any, models: Mapping[str, Any], stimuli: Any) -> dict[str, tuple[str, Any]]:
    """Named changes as {name: (model name, [changes])}, each of a model in ``models``."""
    from ..recording.interventions import as_changes

    if interventions is None:
        return {}
    if not isinstance(interventions, Mapping):
        raise ArgumentTypeError(f"interventions: got {describe(interventions)}. Pass {{name: (model name, changes)}}.")
    out = {}
    for name, value in interventions.items():
        if not isinstance(value, tuple) or len(value) != 2:
            raise ArgumentTypeError(f"interventions[{name!r}]: got {describe(value)}. Pass (model name, changes).")
        if value[0] not in models:
            raise UnknownNameError(
                f"interventions[{name!r}]: {value[0]!r} is not in models ({format_choices(models)})."
            )
        out[str(name)] = (value[0], as_changes(value[1]))
    if out and stimuli is None:
        raise ArgumentError("stimuli: interventions run the models again; pass the stimuli the recordings came from.")
    return out


def analyses_to_run(
    analyses: Any,
    *,
    neural: Any,
    target: Any,
    models: Any,
    responses: Any,
    n_models: int,
    variables: Any = None,
    parameters: Any = None,
    costs: Any = None,
    interventions: Any = None,
) -> tuple[str, ...]:
    """The analyses in canonical order: those given (checked against what they need), else all that what is
    given allows (the opt-in ones excepted), as :func:`compare_models` runs them.
    """
    needs = {"speed_accuracy": ("models=..., stimuli=... and target=...", costs),
             "interventions": ("interventions=...", interventions),
             "rsa": ("neural=...", neural), "encoding": ("responses=...", responses),
             "decoding": ("target=...", target), "generalization": ("target=...", target),
             "alignment": ("recordings of at least two models", n_models > 1),
             "dsa": ("recordings of at least two models", n_models > 1), "jpca": ("target=...", target),
             "tdr": ("variables=[...]", variables), "dpca": ("parameters=[...]", parameters),
             "fixed_points": ("models=...", models)}  # fmt: skip
    if analyses is None:
        return tuple(a for a in ANALYSES if a not in OPT_IN and (a not in needs or needs[a][1]))
    run = tuple([analyses] if isinstance(analyses, str) else analyses)
    for analysis in run:
        check_option("analyses", analysis, ANALYSES)
    for analysis in run:
        if analysis in needs and not needs[analysis][1]:
            raise ArgumentError(
                f"analyses: {analysis!r} needs {needs[analysis][0]}, which was not given. Pass it, or drop "
                f"{analysis!r} from analyses."
            )
    return tuple(a for a in ANALYSES if a in run)


def _fixed_point_layers(
    fixed_point_layers: Any, recordings: Mapping[str, Recording], models: Mapping[str, Any]
) -> dict[str, list[str] | str]:
    """Per model, the recorded layers that make up its state (or the reason why none do)."""
    found: dict[str, list[str] | str] = {}
    for name, chosen in _per_model(fixed_point_layers, list(recordings), "fixed_point_layers").items():
        if name not in models:
            continue
        found[name] = _fp_layers(models[name], recordings[name], chosen, name)
        for layer in found[name] if isinstance(found[name], list) else []:
            if layer not in recordings[name].layers:
                raise UnknownNameError(
                    f"fixed_point_layers: {layer!r} is not a layer of {name!r}'s recording. Available: "
                    f"{format_choices(recordings[name].layers)}."
                )
    return found


@dataclass
class _Runner:
    """Runs one model's analyses into the comparison, timing each and advancing the bar."""

    result: ComparisonResult
    bar: Any
    neural: dict[str, Any]
    subjects: dict[str, Any]
    models: dict[str, Any]
    fp_layers: dict[str, list[str] | str]
    fixed_point_inputs: Any
    decoding: dict[str, Any]
    responses: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # stimuli, interventions, n_controls, fixed_point_modules
    device: Any = None  # a checked torch device, or None (numpy on the CPU)

    @contextmanager
    def timed(self, analysis: str, name: str) -> Iterator[None]:
        self.bar.set_postfix_str(f"{name}: {analysis}")
        started = _time.perf_counter()
        yield
        self.result.seconds[analysis] = self.result.seconds.get(analysis, 0.0) + _time.perf_counter() - started
        self.bar.update()

    def run(self, name: str, rec: Recording, layers: list[str]) -> None:
        from .decoding import decode
        from .pca import fit_pca

        result, run, settings = self.result, self.result.analyses, self.result.settings
        if "decoding" in run:
            with self.timed("decoding", name):
                result.decoding[name] = {layer: decode(rec, layer, result.target,
                                                       n_permutations=settings["n_permutations"], **self.decoding)
                                         for layer in layers}  # fmt: skip
        self.representations(name, rec, layers)
        if "encoding" in run:
            self.encode(name, rec, layers)
        focus = None  # the best layer, else (also where no layer has a score) the last
        if "decoding" in run:
            focus = result.best_decoding(name)["layer"]
        elif "rsa" in run:
            focus = result.best_rsa(next(iter(self.neural)), name)["layer"]
        result.focus[name] = layers[-1] if focus is None else focus
        focus = result.focus[name]
        if "pca" in run:
            with self.timed("pca", name):
                result.pca[name] = fit_pca(rec, focus, n_components=min(10, _rank(rec, focus)), device=self.device)
        if "generalization" in run:
            with self.timed("generalization", name):
                result.generalization[name] = decode(rec, focus, result.target, generalize=True, **self.decoding)
        for analysis in POPULATION:
            if analysis in run:
                with self.timed(analysis, name):
                    getattr(result, analysis)[name] = _population(analysis, rec, focus, result)
        if "fixed_points" in run and name in self.models:
            self.dynamics(name, rec)

    def representations(self, name: str, rec: Recording, layers: list[str]) -> None:
        """RDMs of every layer over time, and their similarity to each neural RDM."""
        from .rsa import compare_model_to_data, compute_rdms

        result, run, settings = self.result, self.result.analyses, self.result.settings
        if "rdms" in run or "rsa" in run:
            with self.timed("rdms", name):
                result.rdms[name] = {layer: compute_rdms(rec, layer, distance=settings["distance"],
                                                         descriptor=settings["descriptor"], device=self.device)
                                     for layer in layers}  # fmt: skip
        if "rsa" not in run:
            return
        with self.timed("rsa", name):
            for key, data in self.neural.items():
                reference = data if data is not None else self.subjects[key]
                _check_conditions(key, reference, result.rdms[name], name, settings["descriptor"])
                result.rsa.setdefault(key, {})[name] = {
                    layer: compare_model_to_data(rdms, data, comparison=settings["comparison"],
                                                 subjects=self.subjects.get(key), model_label="model", data_label=key)
                    for layer, rdms in result.rdms[name].items()
                }  # fmt: skip

    def encode(self, name: str, rec: Recording, layers: list[str]) -> None:
        """Ridge encoding models from every layer to each set of responses, with the decoding's folds."""
        from .encoding import fit_encoding

        settings = self.result.settings
        with self.timed("encoding", name):
            for key, data in self.responses.items():
                self.result.encoding.setdefault(key, {})[name] = fit_encoding(
                    rec, data, layers=layers, descriptor=settings["descriptor"], cv=settings["cv"],
                    seed=settings["seed"], device=self.device, progress=False,
                )  # fmt: skip

    def align(self) -> None:
        """Distances between every model's layers at the last time step, and their map."""
        from .alignment import pairwise_distances

        result = self.result
        entries = {f"{name}: {layer}": (name, layer) for name in result.names for layer in result.layers[name]}
        with self.timed("alignment", "all models"):
            result.alignment = pairwise_distances(
                {key: result._recordings[name] for key, (name, _) in entries.items()},
                layer={key: layer for key, (_, layer) in entries.items()}, metric=result.settings["metric"],
                device=self.device,
            )  # fmt: skip

    def compare_dynamics(self) -> None:
        """DSA distances between every model's focus layer over time, and their map."""
        from .dsa import pairwise_dynamics

        result = self.result
        with self.timed("dsa", "all models"):
            result.dsa = pairwise_dynamics(
                {name: result._recordings[name] for name in result.names}, layer=dict(result.focus),
                n_delays=result.settings["dsa_delays"], rank=result.settings["dsa_rank"],
            )  # fmt: skip

    def dynamics(self, name: str, rec: Recording) -> None:
        """Fixed points of the model, started from its recorded states (or the reason they cannot be)."""
        from .fixed_points import find_fixed_points

        chosen = self.fp_layers[name]
        if isinstance(chosen, str):  # the reason it cannot be searched
            self.result.fixed_points[name] = chosen
            self.bar.update()
            return
        self.result._fp_layers[name] = chosen
        with self.timed("fixed_points", name):
            self.result.fixed_points[name] = find_fixed_points(
                self.extra["fp_models"][name], inputs=self.fixed_point_inputs, initial_states=rec,
                layer=chosen if len(chosen) > 1 else chosen[0], n_initial=self.result.settings["n_initial"],
                seed=self.result.settings["seed"], device=self.device, progress=False,
            )  # fmt: skip

    def costs_and_interventions(self) -> None:
        """Speed-accuracy of every model given (and the compute-matched table), then each intervention's effect."""
        from .compute_cost import compute_matched, speed_accuracy
        from .intervention_effects import intervention_effect

        result, stimuli = self.result, self.extra.get("stimuli")
        if "speed_accuracy" in result.analyses:
            for name in (n for n in result.names if n in self.models):
                with self.timed("speed_accuracy", name):
                    labels = _class_labels(result._recordings[name], result.target)
                    result.speed_accuracy[name] = speed_accuracy(self.models[name], stimuli, labels, name=name)
            if len(result.speed_accuracy) > 1:
                result.compute_matched = compute_matched(result.speed_accuracy, seed=result.settings["seed"])
        if "interventions" not in result.analyses:
            return
        for key, (name, changes) in self.extra["interventions"].items():
            with self.timed("interventions", key):
                model, rec = self.models[name], result._recordings[name]
                labels = _class_labels(rec, result.target) if result.target else None
                controls = _controls(changes, model, stimuli, self.extra["n_controls"], result.settings["seed"])
                result.interventions[key] = intervention_effect(
                    model, stimuli, changes, labels=labels, controls=controls or None,
                    score="accuracy" if labels is not None else "mean_abs_output",
                    layers=[result.focus[name]] if labels is not None else None, seed=result.settings["seed"],
                )  # fmt: skip


def _controls(changes: list[Any], model: Any, stimuli: Any, n: int, seed: int) -> list[list[Any]]:
    """``n`` control draws, each the random counterpart of every change (none when n is 0)."""
    from ..recording import random_like

    if n == 0:
        return []
    per_change = [random_like(change, model, stimuli[:1], n_draws=n, seed=seed + k) for k, change in enumerate(changes)]
    return [[c for draw in draws for c in draw] for draws in zip(*per_change, strict=True)]


def _class_labels(rec: Recording, target: str) -> np.ndarray:
    labels = np.asarray(rec.column(target))
    if labels.dtype.kind not in "iu" or labels.min() < 0:
        raise ArgumentError(
            f"target: {target!r} holds {describe(labels)}; speed-accuracy and interventions score the readout "
            f"against class indices 0, 1, ... Pass a column of class indices."
        )
    return labels


def _population(analysis: str, rec: Recording, layer: str, result: ComparisonResult) -> Any:
    """jPCA, TDR or dPCA of one model's focus layer, or the reason it cannot run there (one clear line)."""
    from ..errors import RnnprobeError
    from .conditions import condition_average
    from .dpca import fit_dpca
    from .jpca import fit_jpca
    from .tdr import fit_tdr

    settings = result.settings
    try:
        if analysis == "jpca":
            means = condition_average(rec, result.target, layers=layer)
            units = int(np.prod(rec.unit_shape(layer)))
            k = max(2, min(6, units, (len(means) * (means.shapes[layer][1] - 1))) // 2 * 2)
            return fit_jpca(means, layer, n_components=k, soft_normalize=None)
        if analysis == "tdr":
            return fit_tdr(rec, layer, variables=list(settings["variables"]))
        return fit_dpca(rec, layer, parameters=list(settings["parameters"]))
    except RnnprobeError as error:
        return f"{analysis} could not run on {layer!r}: {error}"


def _population_row(c: ComparisonResult, name: str) -> dict[str, Any]:
    """The table's numbers of jPCA, TDR and dPCA for one model (None where it could not run)."""
    row: dict[str, Any] = {}
    if name in c.jpca:
        j = c.jpca[name]
        row["jpca: rotation explains"] = None if isinstance(j, str) else j.rotation_explains
        row["jpca: plane 1 frequency"] = None if isinstance(j, str) else float(j.frequencies[0])
    if name in c.tdr:
        row["tdr: max R2"] = None if isinstance(c.tdr[name], str) else float(c.tdr[name].r2.max())
    if name in c.dpca and not isinstance(c.dpca[name], str):
        for marginalization, share in c.dpca[name].marginal_variance.items():
            row[f"dpca: {marginalization} variance"] = share
    return row


def _check_conditions(key: str, reference: Any, rdms: dict[str, Any], name: str, descriptor: str | None) -> None:
    n_cond = next(iter(rdms.values())).n_conditions
    if _n_conditions(reference) != n_cond:
        raise ShapeError(
            f"neural[{key!r}]: RDMs of {_n_conditions(reference)} conditions, but {name!r}'s RDMs have {n_cond} "
            f"({'stimuli' if descriptor is None else f'values of {descriptor!r}'}). Record the same stimuli, or set "
            f"descriptor= to the column naming the conditions."
        )


def _rank(rec: Recording, layer: str) -> int:
    n, t = rec.shapes[layer][:2]
    return max(1, min(n * t, int(np.prod(rec.unit_shape(layer)))))
