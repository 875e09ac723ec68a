"""rnnprobe: record, analyse and compare the hidden states of recurrent networks.

``import rnnprobe`` is light: numpy only. torch, zarr, pandas, scikit-learn,
rsatoolbox and matplotlib load when the functions that need them are used.

Examples
--------
>>> import torch, rnnprobe
>>> lstm = torch.nn.LSTM(3, 8, batch_first=True)
>>> rec = rnnprobe.record(lstm, torch.randn(10, 20, 3), layers=["output", "l0.c"], progress=False)
>>> rec.shapes
{'output': (10, 20, 8), 'l0.c': (10, 20, 8)}
"""

from __future__ import annotations

import importlib
from typing import Any

from . import errors
from ._version import __version__
from .recording.container import Recording, concat

__all__ = [
    "Recording",
    "Report",
    "Tap",
    "__version__",
    "analysis",
    "compare_models",
    "concat",
    "errors",
    "models",
    "neural",
    "record",
    "recordable",
    "recording",
    "report",
    "tasks",
    "train",
]

# name -> the module that defines it, imported on first use (torch, pandas, ... load only then)
_LAZY = {
    "record": ".recording.recorder",
    "recordable": ".recording.targets",
    "Tap": ".recording.tap",
    "train": ".models.training",
    "Report": ".report.report",
    "compare_models": ".analysis.compare",
}
_SUBPACKAGES = ("analysis", "cli", "models", "neural", "recording", "report", "tasks")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'rnnprobe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
