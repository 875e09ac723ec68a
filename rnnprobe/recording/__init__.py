"""Recording: hidden states of any PyTorch model over time, and the `Recording` that holds them.

- :mod:`.recorder`: :func:`record` (forward hooks over a model's modules);
- :mod:`.targets`, :mod:`.tap`, :mod:`.sink`, :mod:`.destinations`: what is recorded (names, hooks,
  :class:`Tap`) and where the states go (memory or a zarr store, batch by batch);
- :mod:`.container`: the :class:`Recording` data model (also for neural responses);
- :mod:`.store`, :mod:`.lazy`, :mod:`.indexing`: the zarr store, lazily read arrays, selections;
- :mod:`.interop`: xarray and rsatoolbox;
- :mod:`.interventions`: :class:`Intervention` (unit-level changes through the same hooks),
  :class:`Lesion` (virtual cooling of connection types) and :func:`intervene`.

``Recording`` and ``concat`` need numpy only; ``record``, ``recordable`` and ``Tap`` load torch
when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .container import Recording, concat

__all__ = ["Intervention", "Lesion", "Recording", "Tap", "concat", "intervene", "random_like", "record", "recordable"]

_LAZY = {
    "record": ".recorder",
    "recordable": ".targets",
    "Tap": ".tap",
    "Intervention": ".interventions",
    "Lesion": ".interventions",
    "intervene": ".interventions",
    "random_like": ".interventions",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
