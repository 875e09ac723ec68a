"""Analyses of a `Recording` (model states or neural responses), each returning a result.

Every result follows :class:`~rnnprobe.analysis.protocol.AnalysisResult`: ``summary()`` (a dict of
numbers), ``plot()`` (a new figure) and, where it is one panel, ``draw(ax)``; any result can be
added to a :class:`~rnnprobe.Report`.

>>> from rnnprobe.analysis import compute_rdms, decode, fit_pca

The submodules load when one of their names is first used (``import rnnprobe.analysis`` is light).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    ".pca": ("PCAResult", "fit_pca", "participation_ratio"),
    ".rsa": (
        "RSAResult",
        "RDMs",
        "compare_model_to_data",
        "compare_rdms",
        "compute_rdms",
        "noise_ceiling",
        "pool_rdms",
    ),
    ".inference": (
        "BootstrapResult",
        "PermutationResult",
        "bootstrap_conditions",
        "bootstrap_conditions_and_subjects",
        "bootstrap_subjects",
        "permutation_test",
    ),
    ".decoding": ("DecodingResult", "decode"),
    ".fixed_points": ("FixedPointResult", "SlowPoints", "find_fixed_points", "recorded_states"),
    ".manifolds": ("Linearization", "SlowManifoldResult", "linearize_points", "slow_manifolds"),
    ".timescales": ("MemoryDecayResult", "TimescaleResult", "autocorrelation", "fit_timescales", "memory_decay"),
    ".flyhash": (
        "FlyHash",
        "HashComparisonResult",
        "compare_hashes",
        "fly_hash",
        "hash_recording",
        "mean_average_precision",
        "random_projection",
    ),
    ".compare": ("ComparisonResult", "compare_models"),
    ".conditions": ("condition_average",),
    ".jpca": ("JPCAResult", "fit_jpca"),
    ".tdr": ("TDRResult", "fit_tdr"),
    ".dpca": ("DPCAResult", "dpca_significance", "fit_dpca"),
    ".dsa": ("DMDResult", "DSAResult", "compare_dynamics", "fit_dmd", "pairwise_dynamics"),
    ".encoding": ("CeilingResult", "EncodingResult", "fit_encoding", "split_half_reliability"),
    ".alignment": ("AlignmentResult", "DistanceMatrixResult", "compare_representations", "pairwise_distances"),
    ".intervention_effects": ("InterventionEffect", "intervention_effect"),
    ".compute_cost": (
        "ComputeMatchedResult",
        "SpeedAccuracyResult",
        "compute_matched",
        "readout_over_time",
        "speed_accuracy",
        "speed_accuracy_curve",
        "step_flops",
    ),
    ".protocol": ("AnalysisResult",),
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SOURCE)


def __getattr__(name: str) -> Any:
    if name in _SOURCE:
        return getattr(importlib.import_module(_SOURCE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCE))
