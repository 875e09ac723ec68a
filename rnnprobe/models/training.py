"""`train`: fit a model to a task with Adam, deterministically given a seed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .._validation import check_int, check_number, check_progress, seeded
from ..errors import ArgumentTypeError, describe
from ..tasks.base import Task
from .placement import batch_for, model_placement
from .recurrent import TorchRNNStep


@dataclass
class History:
    """What happened during training.

    Attributes
    ----------
    steps, loss : list
        Training step and batch loss, every ``log_every`` steps.
    eval_steps, eval_metric : list
        Held-out metric (the task's ``metric_name``) at evaluation points.
    metric_name : str
    seconds : float
        Wall time of the whole run.
    """

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_metric: list[float] = field(default_factory=list)
    metric_name: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The history as a plain dict (JSON-ready)."""
        return asdict(self)


def evaluate(model: nn.Module, task: Task, *, n: int = 512, split: str = "test", index: int = 0) -> float:
    """The task's metric on ``n`` held-out trials (eval mode, no gradients; the mode is restored), the trials
    on the model's device and in its floating-point dtype (as in :func:`train`).
    """
    with evaluating(model):
        data = batch_for(task.sample(n, split=split, index=index), *model_placement(model))
        return task.metric(model(data.x), data)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients; the model's mode restored afterwards (:func:`evaluate`,
    :func:`~rnnprobe.models.recipes.evaluate_recipe`).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def train(
    model: nn.Module,
    task: Task,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    clip_grad: float | None = 1.0,
    eval_every: int | None = None,
    eval_size: int = 512,
    log_every: int = 10,
    progress: bool | None = None,
) -> History:
    """Train ``model`` on ``task`` for a fixed number of steps (Adam, gradient clipping).

    Batch ``k`` is ``task.sample(batch_size, split="train", index=k)``, so two runs
    with the same model initialisation and arguments give identical weights (on the
    same machine and torch version). The loss is ``model.training_loss(output, data)``
    where the model defines one, else ``task.loss(output, data)``. Torch's global RNG
    is left untouched. The zoo's ``LSTM``, ``GRU`` and ``VanillaRNN`` (and
    :func:`~rnnprobe.models.from_module` models) run torch's fused recurrent module
    while training, where nothing watches their steps
    (:meth:`~rnnprobe.models.recurrent.TorchRNNStep.fused_forward`: the same
    arithmetic to float rounding, 2.0-2.6x faster); every other model, and these with
    a hook on a part, run ``model(x)`` step by step. Each batch goes to the device of
    the model's parameters, its floating-point inputs and targets in their dtype (as
    :func:`rnnprobe.record` does with stimuli): a model moved to a GPU with
    ``model.to("cuda")``, or to float64 with ``model.double()``, trains as it is.

    Parameters
    ----------
    model : RecurrentModel or any nn.Module mapping ``data.x`` to outputs
    task : Task
    steps : int
        Number of optimisation steps (a fixed budget, not wall time).
    lr, batch_size, seed, clip_grad
        Adam learning rate, trials per step, seed for stochastic layers, gradient norm clip.
    eval_every : int, optional
        Evaluate the task metric on ``eval_size`` test trials every this many steps
        (and always at the end).
    progress : bool or None
        Show a progress bar with the current loss.
        None (default): a bar only when stderr is a terminal.

    Returns
    -------
    History

    Examples
    --------
    >>> from rnnprobe.models import GRU
    >>> from rnnprobe.tasks import FlipFlop
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> task = FlipFlop(n_bits=2, n_steps=20)
    >>> history = train(GRU(2, 8, 2), task, steps=5, progress=False)
    >>> len(history.eval_metric), history.metric_name
    (1, 'sign accuracy')
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model: got {describe(model)}. Pass a torch.nn.Module.")
    if not isinstance(task, Task):
        raise ArgumentTypeError(f"task: got {describe(task)}. Pass an rnnprobe.tasks Task.")
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    lr = check_number("lr", lr, minimum=0, inclusive=False)
    if clip_grad is not None:
        clip_grad = check_number("clip_grad", clip_grad, minimum=0, inclusive=False)
    device, dtype = model_placement(model)
    history = History(metric_name=task.metric_name)
    loss_fn = getattr(model, "training_loss", None) or task.loss
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    bar = None
    if check_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"train {type(model).__name__}", unit="step")
    start = time.perf_counter()
    model.train()
    forward = _training_forward(model)  # (in training mode: dropout decides)
    try:
        with seeded(seed, device):  # (a CUDA model's dropout draws from the device's generator)
            for step in range(steps):
                data = batch_for(task.sample(batch_size, split="train", index=step), device, dtype)
                loss = loss_fn(forward(data.x), data)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
                optimizer.step()
                if step % log_every == 0 or step == steps - 1:
                    history.steps.append(step)
                    history.loss.append(float(loss.detach()))
                    if bar is not None:
                        bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                if eval_every and (step + 1) % eval_every == 0 and step != steps - 1:
                    history.eval_steps.append(step + 1)
                    history.eval_metric.append(evaluate(model, task, n=eval_size))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    history.eval_steps.append(steps)
    history.eval_metric.append(evaluate(model, task, n=eval_size))
    history.seconds = time.perf_counter() - start
    return history


def _training_forward(model: nn.Module) -> Any:
    """What :func:`train` calls on a batch's inputs: a torch-backed recurrent model's fused forward where it
    computes what the model's own does (:meth:`~rnnprobe.models.recurrent.TorchRNNStep.fusable`), else the model.
    """
    return model.fused_forward if isinstance(model, TorchRNNStep) and model.fusable() else model
