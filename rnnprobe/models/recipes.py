"""How each shipped checkpoint is made: model, task and training budget, in one place.

``scripts/train_checkpoints.py`` trains every recipe from scratch into the
package's checkpoint folder, ``benchmarks/models_reproduce.py`` reruns them with
several seeds, and tests run scaled-down versions. Budgets are fixed numbers of
optimisation steps (not wall time), all single-threaded on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._validation import seeded
from ..tasks import AssociativeRetrieval, DigitSequences, FlipFlop, OccludedDigits, Task
from .blt import BLT
from .energy import EnergyEfficientRNN
from .fast_weights import FastWeightsRNN
from .placement import batch_for, model_placement
from .recurrent import GRU, LSTM, VanillaRNN
from .training import evaluating


@dataclass(frozen=True)
class Recipe:
    """A model factory, a task, and the training settings for :func:`rnnprobe.train`."""

    make_model: Callable[[], nn.Module]
    make_task: Callable[[], Task]
    steps: int
    lr: float
    batch_size: int
    metric: str
    train_kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, seed: int) -> tuple[nn.Module, Task]:
        """The model initialised with ``seed`` (torch's global RNG untouched) and the task."""
        with seeded(seed):
            model = self.make_model()
        return model, self.make_task()


def _flipflop() -> FlipFlop:
    return FlipFlop(3, n_steps=100, p_pulse=0.05)


def _retrieval() -> AssociativeRetrieval:
    return AssociativeRetrieval(4)


def _occluded() -> OccludedDigits:
    return OccludedDigits(image_size=16, levels=(0, 4, 8, 12), fragment_size=4)


def _blt(connections: str) -> Callable[[], nn.Module]:
    return lambda: BLT(connections, image_size=16, maps=16, steps=4, norm="lrn")


RECIPES: dict[str, Recipe] = {
    "flipflop-gru": Recipe(lambda: GRU(3, 16, 3), _flipflop, 600, 1e-2, 64, "sign accuracy"),
    "flipflop-gru64": Recipe(lambda: GRU(3, 64, 3), _flipflop, 600, 5e-3, 64, "sign accuracy"),
    "flipflop-lstm": Recipe(lambda: LSTM(3, 16, 3), _flipflop, 600, 1e-2, 64, "sign accuracy"),
    "flipflop-rnn": Recipe(lambda: VanillaRNN(3, 32, 3), _flipflop, 1500, 5e-3, 64, "sign accuracy"),
    # Ba et al. 2016: characters through a 100-d embedding, R = 20 units, same budget for both models
    "retrieval-lstm": Recipe(lambda: LSTM(37, 20, 10, embedding_size=100), _retrieval, 8000, 1e-3, 128, "accuracy"),
    "retrieval-fastweights": Recipe(
        lambda: FastWeightsRNN(37, 20, 10, embedding_size=100), _retrieval, 8000, 1e-3, 128, "accuracy"
    ),
    "occluded-b": Recipe(_blt("B"), _occluded, 1500, 2e-3, 64, "accuracy"),
    "occluded-bk": Recipe(_blt("B-K"), _occluded, 1500, 2e-3, 64, "accuracy"),
    "occluded-bf": Recipe(_blt("B-F"), _occluded, 1500, 2e-3, 64, "accuracy"),
    "occluded-bl": Recipe(_blt("BL"), _occluded, 1500, 2e-3, 64, "accuracy"),
    "occluded-blt": Recipe(_blt("BLT"), _occluded, 1500, 2e-3, 64, "accuracy"),
    "energy-efficient": Recipe(
        lambda: EnergyEfficientRNN(64), lambda: DigitSequences(length=10), 2000, 1e-3, 64, "mean |preactivation|"
    ),
}


def evaluate_recipe(name: str, model: nn.Module, task: Task, *, n: int = 2000) -> dict[str, Any]:
    """Held-out metrics of a trained recipe model (test split, ``n`` trials, index 0; eval mode, restored after),
    the trials on the model's device and in its floating-point dtype (as :func:`~rnnprobe.models.training.evaluate`).
    """
    with evaluating(model):
        data = batch_for(task.sample(n, split="test", index=0), *model_placement(model))
        return _recipe_metrics(name, task, model(data.x), data)


def _recipe_metrics(name: str, task: Task, out: torch.Tensor, data: Any) -> dict[str, Any]:
    """:func:`evaluate_recipe`'s metrics of the outputs ``out`` of the trials ``data`` (on the model's device)."""
    from .energy import prediction_units

    if isinstance(task, FlipFlop):
        return {"test_sign_accuracy": task.metric(out, data)}
    if isinstance(task, AssociativeRetrieval):
        accuracy = task.metric(out, data)
        return {"test_accuracy": accuracy, "test_error": 1 - accuracy}
    if isinstance(task, OccludedDigits):
        correct = (out[:, -1].argmax(-1) == data.y).cpu().numpy()
        level = data.metadata["occlusion"]
        metrics = {"test_accuracy": float(correct.mean())}
        metrics.update({f"test_accuracy_occlusion_{k}": float(correct[level == k].mean()) for k in task.levels})
        return metrics
    if isinstance(task, DigitSequences):
        units = prediction_units(out[:, -1].cpu().numpy(), data.metadata["last"])
        return {
            "mean_abs_preactivation_after_first_step": float(out[:, 1:].abs().mean()),
            "input_only_baseline": float(data.x[:, 1:].abs().mean()),  # what |a_t| would be with W = 0
            "n_prediction_units": len(set().union(*(set(u.tolist()) for u in units.values()))),
        }
    raise ValueError(f"no evaluation for recipe {name!r}")  # pragma: no cover
