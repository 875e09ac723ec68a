"""The TOML configuration of ``rnnprobe record / analyze / report``, read and checked in full
before anything runs or is written.

A configuration (paths relative to the file)::

    output = "results"                      # folder for recordings, numbers and the report

    [stimuli]                               # one of: file, or task (the first model's checkpoint task)
    file = "stimuli.npz"                    # .npy (stimulus, time, features...) or .npz with "x" + 1-D metadata
    # task = true
    # n = 500
    # split = "test"

    [[models]]
    name = "BLT"
    checkpoint = "occluded-blt"             # a shipped name or an rnnprobe checkpoint file (.pt)
    layers = ["layer0", "layer1"]           # default: what rnnprobe.record records by default
    # fixed_point_module = "rnn"            # fixed points of this submodule (an nn.RNN/GRU/LSTM inside)
    # sequence = ["readout"]                # modules applied once to a whole sequence (time on axis 1)

    [[models]]
    name = "mine"
    factory = "mymodels:build"              # importable callable returning an nn.Module (the config's
    kwargs = { hidden = 64 }                # folder is importable), and optionally its weights:
    weights = "mine.pt"                     # a state_dict, read with torch.load(weights_only=True)

    [analyses]
    run = ["pca", "rdms", "rsa", "decoding", "generalization", "fixed_points"]
    target = "label"
    cv = 5
    distance = "correlation"                # RDM dissimilarity (as compute_rdms' distance=)
    # fixed_point_inputs = [[0.0, 0.0, 0.0]]  # constant inputs of the fixed-point search (default: zero)
    comparison = "corr"                     # RDM comparison (as compare_rdms' comparison=)
    # metric = "shape"                      # alignment between models (as pairwise_distances' metric=)
    # dsa_delays = 3; dsa_rank = 10         # DSA between models (run = [..., "dsa"]; pairwise_dynamics)
    # variables = ["choice", "coherence"]   # TDR of each model (fit_tdr); run = [..., "jpca"]: jPCA by target
    # parameters = ["stimulus", "decision"] # dPCA of each model (fit_dpca)

    # n_controls = 20                       # random controls per intervention (p-values)

    [interventions."BLT, lateral cooled"]   # recorded and analysed as one more model, and its effect
    model = "BLT"                           # against the intact model (accuracy of target, RDMs over time)
    connection = "lateral"                  # a Lesion: a connection type (model.connection_parameters())
    from_step = 1                           # scale = 0.0; layers = [0]
    # layer = "layer1"; kind = "zero"       # or an Intervention: zero, mean, clamp, noise, scale, project_out
    # units = [0, 1, 2]; steps = [1, 2]; value = 0.5; seed = 0

    [neural."human IT"]                     # RDMs over the same stimuli (or descriptor values)
    subjects = "92_brainRDMs.mat"           # per-subject RDMs: noise ceiling (pooled when file is absent)
    # file = "hIT.npy"; variable = "RDMs"; subjects_variable = "RDMs"
    # layout = "vectors"                    # a (k, k) .npy read as k RDMs of k pairs (default "auto")
    # responses = "it.npy"                  # (stimulus[, repetition], time, neuron): encoding models
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, StoreNotFoundError, UnknownNameError, describe, format_choices

SECTIONS = ("output", "stimuli", "models", "analyses", "neural", "interventions")
MODEL_KEYS = ("name", "checkpoint", "factory", "kwargs", "weights", "layers", "sequence", "fixed_point_layers",
              "fixed_point_module")  # fmt: skip
# [analyses] and [stimuli] values of a fixed type (the others are checked where they are used)
TYPES: dict[str, tuple[type, ...]] = {"cv": (int,), "n_permutations": (int,), "seed": (int,), "n_initial": (int,),
                                      "target": (str,), "descriptor": (str,), "n": (int,), "split": (str,),
                                      "task": (bool,), "fixed_point_inputs": (list,), "dsa_delays": (int,),
                                      "dsa_rank": (int,), "variables": (list,), "parameters": (list,),
                                      "n_controls": (int,)}  # fmt: skip
STIMULI_KEYS = ("file", "task", "n", "split", "seed")
NEURAL_KEYS = ("file", "variable", "subjects", "subjects_variable", "layout", "responses")
ANALYSIS_KEYS = ("run", "target", "descriptor", "cv", "n_permutations", "distance", "comparison", "metric",
                 "n_initial", "seed", "fixed_point_inputs", "dsa_delays", "dsa_rank", "variables",
                 "parameters", "n_controls")  # fmt: skip
LESION_KEYS = ("connection", "scale", "from_step", "layers")
UNIT_KEYS = ("layer", "kind", "units", "steps", "value", "seed")


class ConfigError(ArgumentError):
    """The configuration file is missing, unreadable or inconsistent."""


@dataclass
class ModelSpec:
    name: str
    checkpoint: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    layers: list[str] | None = None
    fixed_point_layers: list[str] | None = None
    sequence: list[str] = field(default_factory=list)
    fixed_point_module: str | None = None


@dataclass
class InterventionSpec:
    name: str
    model: str
    change: Any  # an Intervention or a Lesion
    table: dict[str, Any]  # as written (part of the recording's fingerprint)


@dataclass
class Config:
    path: Path
    output: Path
    models: list[ModelSpec]
    stimuli: dict[str, Any]
    analyses: dict[str, Any]
    neural: dict[str, dict[str, Any]]
    interventions: list[InterventionSpec] = field(default_factory=list)

    def recording_path(self, name: str) -> Path:
        return self.output / "recordings" / f"{_safe(name)}.zarr"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    if not path.is_file():
        raise StoreNotFoundError(f"config: {str(path)!r} does not exist. Pass the path of a TOML configuration file.")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {str(path)!r} is not valid TOML ({exc}).") from None


def _unknown(where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}. Allowed: {format_choices(allowed)}.")


def _file(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: got {describe(value)}. Pass a file path (relative to the config file).")
    path = (base / value).expanduser()
    if not path.exists():
        raise ConfigError(f"{where}: {str(path)!r} does not exist.")
    return path


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: got {describe(value)}. Use a TOML table ({where.split('.')[-1]} = {{ ... }}).")
    return value


def _typed(where: str, table: dict[str, Any]) -> None:
    for key, value in table.items():
        wanted = TYPES.get(key)
        if wanted and (not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted)):
            raise ConfigError(f"{where}.{key}: got {describe(value)}. Pass a {wanted[0].__name__}.")


def _names(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise ConfigError(f'{where}: got {describe(value)}. Pass a list of names, e.g. ["l0.h", "l0.c"].')
    return value


def _model_spec(where: str, table: Any, base: Path, taken: set[str]) -> ModelSpec:
    """One [[models]] table, checked."""
    from ..models.shipped import available

    _unknown(where, _table(table, where), MODEL_KEYS)
    name = table.get("name")
    if not isinstance(name, str) or not name or name in taken:
        raise ConfigError(f"{where}.name: got {describe(name)}. Give every model a distinct name.")
    spec = ModelSpec(name, layers=_names(table.get("layers"), f"{where}.layers"))
    spec.fixed_point_layers = _names(table.get("fixed_point_layers"), f"{where}.fixed_point_layers")
    spec.sequence = _names(table.get("sequence"), f"{where}.sequence") or []
    module = table.get("fixed_point_module")
    if module is not None and (not isinstance(module, str) or not module):
        raise ConfigError(f'{where}.fixed_point_module: got {describe(module)}. Pass a submodule path, e.g. "rnn".')
    spec.fixed_point_module = module
    if ("checkpoint" in table) == ("factory" in table):
        raise ConfigError(f"{where}: give either checkpoint (a shipped name or .pt file) or factory (module:function).")
    if "checkpoint" in table:
        value = table["checkpoint"]
        if not isinstance(value, str):
            raise ConfigError(f"{where}.checkpoint: got {describe(value)}. Pass a shipped name or a .pt path.")
        spec.checkpoint = value if value in available() else str(_file(base, value, f"{where}.checkpoint"))
        return spec
    factory = table["factory"]
    if not isinstance(factory, str) or factory.count(":") != 1:
        raise ConfigError(f"{where}.factory: got {describe(factory)}. Pass 'module:function'.")
    spec.factory = factory
    spec.kwargs = dict(_table(table.get("kwargs", {}), f"{where}.kwargs"))
    if "weights" in table:
        spec.weights = _file(base, table["weights"], f"{where}.weights")
    return spec


def _intervention_spec(name: str, table: Any, models: list[str]) -> InterventionSpec:
    """One [interventions."name"] table: a Lesion (connection = ...) or an Intervention (layer = ...)."""
    from ..errors import RnnprobeError
    from ..recording import Intervention, Lesion

    where = f"interventions.{name}"
    _unknown(where, _table(table, where), ("model", *LESION_KEYS, *UNIT_KEYS))
    if table.get("model") not in models or name in models:
        raise ConfigError(f"{where}.model: got {describe(table.get('model'))}. Name one of the [[models]] "
                          f"({format_choices(models)}), and give the intervention a name no model has.")  # fmt: skip
    if ("connection" in table) == ("layer" in table):
        raise ConfigError(f"{where}: give either connection (a Lesion) or layer and kind (an Intervention).")
    keys = LESION_KEYS if "connection" in table else UNIT_KEYS
    stray = [k for k in table if k != "model" and k not in keys]
    if stray:
        raise ConfigError(
            f"{where}.{stray[0]}: not a key of a {'Lesion' if 'connection' in table else 'Intervention'}."
        )
    args = {k: v for k, v in table.items() if k != "model"}
    try:
        change = Lesion.cool(args.pop("connection"), **args) if "connection" in table else Intervention(**args)
    except (RnnprobeError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return InterventionSpec(name, table["model"], change, dict(table))


def load_config(path: str | Path) -> Config:
    """Read and check a configuration (see the module docstring); paths resolve against its folder."""
    from ..analysis.alignment.inputs import METRICS
    from ..analysis.compare import ANALYSES
    from ..analysis.rsa import COMPARISONS, DISTANCES

    path = Path(path)
    raw = _toml(path)
    base = path.parent
    _unknown("config", raw, SECTIONS)
    output = raw.get("output", "rnnprobe-results")
    if not isinstance(output, str):
        raise ConfigError(f"output: got {describe(output)}. Pass a folder path.")
    models_raw = raw.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise ConfigError("models: no [[models]] tables. Add at least one with a name and a checkpoint or factory.")
    models: list[ModelSpec] = []
    for i, table in enumerate(models_raw):
        models.append(_model_spec(f"models[{i}]", table, base, {m.name for m in models}))
    stimuli = dict(_table(raw.get("stimuli", {}), "stimuli"))
    _unknown("stimuli", stimuli, STIMULI_KEYS)
    _typed("stimuli", stimuli)
    if ("file" in stimuli) == bool(stimuli.get("task")):
        raise ConfigError("stimuli: give either file (.npy/.npz) or task = true (sample the first model's task).")
    if "file" in stimuli:
        stimuli["file"] = _file(base, stimuli["file"], "stimuli.file")
        if stimuli["file"].suffix not in (".npy", ".npz"):
            raise ConfigError(f"stimuli.file: {str(stimuli['file'])!r} is not .npy or .npz.")
    analyses = dict(_table(raw.get("analyses", {}), "analyses"))
    _unknown("analyses", analyses, ANALYSIS_KEYS)
    _typed("analyses", analyses)
    for name in _names(analyses.get("run"), "analyses.run") or []:
        if name not in ANALYSES:
            raise UnknownNameError(f"analyses.run: {name!r} is not an analysis. Available: {format_choices(ANALYSES)}.")
    for key, allowed in (("distance", DISTANCES), ("comparison", COMPARISONS), ("metric", METRICS)):
        if key in analyses and analyses[key] not in allowed:
            raise UnknownNameError(f"analyses.{key}: got {analyses[key]!r}. Available: {format_choices(allowed)}.")
    neural = {}
    for name, table in _table(raw.get("neural", {}), "neural").items():
        where = f"neural.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: got {describe(table)}. Use a table with file and/or subjects.")
        _unknown(where, table, NEURAL_KEYS)
        if not {"file", "subjects", "responses"} & set(table):
            raise ConfigError(f"{where}: give file (RDMs), subjects (per-subject RDMs) and/or responses (an array).")
        from ..neural.rdm_files import LAYOUTS

        if table.get("layout", "auto") not in LAYOUTS:
            raise UnknownNameError(f"{where}.layout: got {table['layout']!r}. Available: {format_choices(LAYOUTS)}.")
        entry = dict(table)
        for key in ("file", "subjects", "responses"):
            if key in entry:
                entry[key] = _file(base, entry[key], f"{where}.{key}")
        if "responses" in entry and entry["responses"].suffix != ".npy":
            raise ConfigError(f"{where}.responses: {str(entry['responses'])!r} is not a .npy array.")
        neural[name] = entry
    names = [m.name for m in models]
    interventions = [_intervention_spec(str(name), table, names)
                     for name, table in _table(raw.get("interventions", {}), "interventions").items()]  # fmt: skip
    return Config(path, (base / output), models, stimuli, analyses, neural, interventions)


# --- using a configuration ---------------------------------------------------------------------


def build_model(spec: ModelSpec, base: Path) -> Any:
    """The model of a spec: a shipped or saved checkpoint, or an importable factory (+ weights)."""
    import torch

    from ..models import load, load_checkpoint
    from ..models.shipped import available

    if spec.checkpoint is not None:
        return load(spec.checkpoint) if spec.checkpoint in available() else load_checkpoint(spec.checkpoint)
    module_name, function = spec.factory.split(":")
    sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"models.{spec.name}.factory: cannot import {module_name!r} ({exc}).") from None
    finally:
        sys.path.remove(str(base))
    build = getattr(module, function, None)
    if not callable(build):
        raise ConfigError(f"models.{spec.name}.factory: {module_name!r} has no function {function!r}.")
    try:
        model = build(**spec.kwargs)
    except Exception as exc:  # the user's code: one line, not a traceback
        raise ConfigError(
            f"models.{spec.name}.factory: {spec.factory}(**{spec.kwargs}) raised {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise ArgumentTypeError(
            f"models.{spec.name}.factory: {spec.factory} returned {describe(model)}, not an nn.Module."
        )
    if spec.weights is not None:
        try:
            state = torch.load(spec.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise ConfigError(f"models.{spec.name}.weights: could not load {str(spec.weights)!r} ({exc}).") from None
    return model.eval()


def fingerprint(config: Config, spec: ModelSpec | InterventionSpec) -> dict[str, Any]:
    """What made a model's recording: the model (checkpoint or factory, kwargs, weights), the layers and
    the stimuli (file contents or task settings), and for a changed model the change. A recording whose
    fingerprint differs is stale.
    """
    import hashlib

    if isinstance(spec, InterventionSpec):  # the changed model: its model's fingerprint and the change
        made = fingerprint(config, next(m for m in config.models if m.name == spec.model))
        return {**made, "intervention": json.loads(json.dumps(spec.table, sort_keys=True, default=str))}

    def digest(path: Any) -> str | None:
        return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()

    model = {"checkpoint": spec.checkpoint, "factory": spec.factory, "kwargs": spec.kwargs,
             "layers": spec.layers, "sequence": spec.sequence, "weights": digest(spec.weights)}  # fmt: skip
    if spec.checkpoint is not None and Path(spec.checkpoint).is_file():
        model["checkpoint_sha256"] = digest(spec.checkpoint)
    stimuli = {k: str(v) if isinstance(v, Path) else v for k, v in config.stimuli.items()}
    if "file" in config.stimuli:
        stimuli["file"] = digest(config.stimuli["file"])
    return json.loads(json.dumps({"model": model, "stimuli": stimuli}, sort_keys=True, default=str))


def load_stimuli(config: Config, first_model: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """(inputs, metadata) from the stimuli file or the first model's task."""
    stimuli = config.stimuli
    if stimuli.get("task"):
        from ..models import task_from_checkpoint

        task = task_from_checkpoint(first_model)
        data = task.sample(int(stimuli.get("n", 500)), split=stimuli.get("split", "test"))
        return data.x, dict(data.metadata)
    path = stimuli["file"]
    from ..neural.rdm_files import load_numpy_file

    if path.suffix == ".npy":
        return load_numpy_file(path), {}
    with load_numpy_file(path) as archive:
        if "x" not in archive:
            raise ConfigError(f"stimuli.file: {str(path)!r} has no array 'x'. Arrays: {format_choices(archive.files)}.")
        x = archive["x"]
        metadata = {k: archive[k] for k in archive.files if k != "x"}
    return x, metadata


def load_responses(config: Config) -> dict[str, np.ndarray]:
    """Neural responses per name for encoding models: (stimulus[, repetition], time, target) arrays."""
    from ..neural.rdm_files import load_numpy_file

    return {name: load_numpy_file(entry["responses"]) for name, entry in config.neural.items() if "responses" in entry}


def load_neural(config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """(neural RDMs, subject RDMs) per name (the neural value None where only subjects are given)."""
    from ..neural import load_rdms

    neural, subjects = {}, {}
    for name, entry in config.neural.items():
        if "file" not in entry and "subjects" not in entry:
            continue  # responses only (encoding models)
        layout = entry.get("layout", "auto")
        if "file" in entry:
            neural[name] = load_rdms(entry["file"], variable=entry.get("variable"), layout=layout)
        else:
            neural[name] = None
        if "subjects" in entry:
            subjects[name] = load_rdms(entry["subjects"], variable=entry.get("subjects_variable"), layout=layout)
    return neural, subjects


def check_layers(config: Config, models: dict[str, Any]) -> None:
    """Every configured layer exists in its model (before anything is recorded)."""
    from ..recording import recordable

    for spec in config.models:
        if spec.layers is None:
            continue
        names = recordable(models[spec.name])
        for layer in spec.layers:
            if layer not in names:
                raise UnknownNameError(
                    f"models.{spec.name}.layers: {layer!r} is not recordable in {type(models[spec.name]).__name__}. "
                    f"Available: {format_choices(names)}."
                )


def check_interventions(config: Config, models: dict[str, Any]) -> None:
    """Every configured intervention names a module or connection type its model has (before anything runs)."""
    from ..recording import Lesion, recordable

    for spec in config.interventions:
        model, change = models[spec.model], spec.change
        if isinstance(change, Lesion):
            table = model.connection_parameters() if callable(getattr(model, "connection_parameters", None)) else {}
            if change.connection not in table:
                raise UnknownNameError(
                    f"interventions.{spec.name}.connection: {type(model).__name__} has no connection type "
                    f"{change.connection!r} ({format_choices(table) if table else 'it names none'})."
                )
        elif change.layer not in recordable(model):
            raise UnknownNameError(
                f"interventions.{spec.name}.layer: {change.layer!r} is not a module of {type(model).__name__}. "
                f"Available: {format_choices(recordable(model))}."
            )
