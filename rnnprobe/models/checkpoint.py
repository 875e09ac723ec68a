"""Checkpoints: weights plus everything needed to rebuild the model (and its task).

A checkpoint is a dict of tensors and plain Python values saved with
``torch.save``; it loads with ``torch.load(..., weights_only=True)``, so opening
one never runs pickled code. The model is rebuilt from its class name (looked up
in :data:`MODEL_CLASSES`, never imported by name from the file) and its config.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import ArgumentError, ArgumentTypeError, RnnprobeError, StoreFormatError, StoreNotFoundError, describe
from ..tasks import AssociativeRetrieval, DigitSequences, FlipFlop, OccludedDigits, Task
from .blt import BLT
from .ctrnn import CTRNN
from .energy import EnergyEfficientRNN
from .fast_weights import FastWeightsRNN
from .recurrent import GRU, LSTM, VanillaRNN

FORMAT = "rnnprobe.checkpoint"
FORMAT_VERSION = 1
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (LSTM, GRU, VanillaRNN, CTRNN, FastWeightsRNN, BLT, EnergyEfficientRNN)
}
TASK_CLASSES: dict[str, type[Task]] = {
    cls.__name__: cls for cls in (FlipFlop, AssociativeRetrieval, OccludedDigits, DigitSequences)
}


class CheckpointError(RnnprobeError, ValueError):
    """A checkpoint does not hold what was asked for."""


def _construct(classes: dict[str, type], name: str, config: dict[str, Any]) -> Any:
    config = dict(config)
    if name == "BLT":
        return classes[name](config.pop("connections"), **config)
    args = [config.pop(k) for k in ("input_size", "hidden_size", "output_size") if k in config]
    if name == "EnergyEfficientRNN":
        args = [config.pop("size")]
    return classes[name](*args, **config)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    task: Task | None = None,
    metrics: dict[str, Any] | None = None,
    history: dict[str, Any] | None = None,
) -> Path:
    """Save weights, model config, task config, metrics and the rnnprobe version to ``path``."""
    name = type(model).__name__
    if name not in MODEL_CLASSES or MODEL_CLASSES[name] is not type(model):
        raise ArgumentTypeError(
            f"model: got {describe(model)}. Checkpoints hold rnnprobe zoo models ({', '.join(MODEL_CLASSES)}); "
            f"save other modules with torch.save(model.state_dict(), path)."
        )
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rnnprobe_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_class": name,
        "model_config": json.loads(json.dumps(model.config)),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "task_class": type(task).__name__ if task is not None else None,
        "task_config": json.loads(json.dumps(task.config)) if task is not None else None,
        "metrics": json.loads(json.dumps(metrics or {})),
        "history": json.loads(json.dumps(history or {})),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def load_checkpoint(path: str | Path, *, model_class: type[nn.Module] | str | None = None) -> nn.Module:
    """Rebuild a model from a checkpoint (in eval mode); ``model.checkpoint`` holds the rest.

    Parameters
    ----------
    path : path
        A file written by :func:`save_checkpoint`.
    model_class : class or str, optional
        Refuse checkpoints of any other model class.

    Returns
    -------
    nn.Module
        With ``model.checkpoint`` = dict(model_class, model_config, task_class, task_config,
        metrics, history, rnnprobe_version, date, path).
    """
    if not isinstance(path, (str, Path)):
        raise ArgumentTypeError(f"path: got {describe(path)}. Pass the path of a checkpoint file (.pt).")
    path = Path(path)
    if not path.is_file():
        raise StoreNotFoundError(f"path: {str(path)!r} does not exist. Pass a checkpoint file (.pt).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise StoreFormatError(
            f"path: {str(path)!r} could not be read as a weights-only checkpoint ({type(exc).__name__}: {exc}). "
            f"rnnprobe never unpickles arbitrary objects."
        ) from exc
    name = _check_payload(payload, path)
    if model_class is not None:
        wanted = model_class if isinstance(model_class, str) else model_class.__name__
        if wanted != name:
            raise CheckpointError(
                f"model_class: the checkpoint {str(path)!r} holds a {name}, not a {wanted}. Load it with "
                f"model_class={name} (or without model_class)."
            )
    model = _build(name, payload, path)
    model.eval()
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "format", "format_version")}
    info["path"] = str(path)
    model.checkpoint = info
    return model


def _check_payload(payload: Any, path: Path) -> str:
    """The model class of a well-formed checkpoint of a format this rnnprobe reads."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise StoreFormatError(f"path: {str(path)!r} is not an rnnprobe checkpoint.")
    if payload.get("format_version") != FORMAT_VERSION:
        raise StoreFormatError(
            f"path: {str(path)!r} says checkpoint format {payload.get('format_version')!r}; this rnnprobe reads "
            f"format {FORMAT_VERSION}."
        )
    missing = [k for k in ("model_class", "model_config", "state_dict") if k not in payload]
    if missing or not isinstance(payload.get("model_config"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"path: {str(path)!r} is damaged: {', '.join(missing) or 'model_config/state_dict'}.")
    name = payload["model_class"]
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"path: {str(path)!r} holds an unknown model class {name!r}. Upgrade rnnprobe.")
    return name


def _build(name: str, payload: dict[str, Any], path: Path) -> nn.Module:
    """The model, built first without memory (meta device) so that a config disagreeing with the weights'
    shapes is refused before anything is allocated.
    """
    try:
        with torch.device("meta"):
            skeleton = _construct(MODEL_CLASSES, name, payload["model_config"])
    except (TypeError, ValueError, KeyError, RnnprobeError) as exc:
        raise CheckpointError(
            f"path: {str(path)!r}: its model_config does not build a {name} ({type(exc).__name__}: {exc})."
        ) from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in payload["state_dict"].items() if isinstance(v, torch.Tensor)}
    if expected != given:
        wrong = sorted(set(expected) ^ set(given)) + sorted(
            k for k in expected if k in given and expected[k] != given[k]
        )
        shown = ", ".join(f"{k} (config {expected.get(k)}, weights {given.get(k)})" for k in wrong[:3])
        raise CheckpointError(
            f"path: {str(path)!r}: its model_config and weights disagree: {shown}. The file is damaged or "
            f"was edited; retrain or re-save the model."
        )
    model = _construct(MODEL_CLASSES, name, payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    return model


def task_from_checkpoint(model: nn.Module) -> Task:
    """Rebuild the task a loaded model was trained on."""
    info = getattr(model, "checkpoint", None)
    if not info or not info.get("task_class"):
        raise ArgumentError("model: it was not loaded from a checkpoint that names its task.")
    config = dict(info["task_config"])
    if "levels" in config:
        config["levels"] = tuple(config["levels"])
    return TASK_CLASSES[info["task_class"]](**config)
