"""Task generators: deterministic given a seed, with train/test splits and per-trial metadata."""

from .base import Task, TaskData
from .context import ContextDependentDecision
from .digits import DigitSequences, OccludedDigits
from .flipflop import FlipFlop
from .neurogym import NeurogymTask
from .retrieval import AssociativeRetrieval

__all__ = [
    "AssociativeRetrieval",
    "ContextDependentDecision",
    "DigitSequences",
    "FlipFlop",
    "NeurogymTask",
    "OccludedDigits",
    "Task",
    "TaskData",
]
