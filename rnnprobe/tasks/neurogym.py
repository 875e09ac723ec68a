"""NeurogymTask: any neurogym environment (Molano-Mazón et al. 2022) as an rnnprobe task.

Each trial of the environment (``env.new_trial()``) gives its observations (inputs), its ground-truth
actions per step (targets) and its trial information (ground truth, coherences, context, ...); its
periods (fixation, stimulus, delay, decision, ...) start and end at steps the environment records.
A sample stacks n trials, padded at the end to the longest (or to ``n_steps``): inputs 0, targets 0,
``mask`` False on the padding. neurogym is an optional dependency (``pip install neurogym``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int
from ..errors import ArgumentError, ArgumentTypeError, describe
from .base import Task, TaskData, as_tensor


def _environment(env: Any, env_kwargs: dict[str, Any]) -> Any:
    """The unwrapped neurogym TrialEnv of a registered name or an environment."""
    if isinstance(env, str):
        try:
            import neurogym
        except ImportError as exc:  # pragma: no cover - the extra is installed where it is tested
            raise ImportError("NeurogymTask needs neurogym: pip install neurogym") from exc
        try:
            env = neurogym.make(env, **env_kwargs)
        except Exception as exc:
            raise ArgumentError(f"env: neurogym could not make {env!r} with {env_kwargs}: {exc}") from None
    elif env_kwargs:
        raise ArgumentError(f"env_kwargs: got {sorted(env_kwargs)} for an environment object; pass them to its maker.")
    unwrapped = getattr(env, "unwrapped", env)
    if not all(hasattr(unwrapped, name) for name in ("new_trial", "seed", "dt")):
        raise ArgumentTypeError(f"env: got {describe(env)}. Pass a neurogym environment or its registered name.")
    if not hasattr(unwrapped.action_space, "n"):
        raise ArgumentError(f"env: its action space is {unwrapped.action_space}; NeurogymTask needs discrete actions.")
    return unwrapped


class NeurogymTask(Task):
    """A neurogym environment's trials as inputs, per-step targets, metadata and period boundaries.

    Parameters
    ----------
    env : str or neurogym environment
        A registered name (e.g. ``"ContextDecisionMaking-v0"``) or an environment.
    seed : int
        Samples are a pure function of (environment settings, seed, split, index).
    n_steps : int, optional
        Pad every sample to this many steps (longer trials are refused); default: the longest trial of
        each sample.
    **env_kwargs
        Passed to ``neurogym.make`` (e.g. ``dt=20``, ``timing={...}``).

    Attributes
    ----------
    dt : float
        Milliseconds per step.
    period_names : list of str
        The environment's periods, in order.
    n_inputs, n_outputs : int

    Examples
    --------
    >>> task = NeurogymTask("PerceptualDecisionMaking-v0", dt=20)
    >>> data = task.sample(4)
    >>> data.x.shape[0], data.x.shape[2], sorted(data.metadata)[:3]
    (4, 3, ['coh', 'decision_end', 'decision_start'])
    """

    metric_name = "decision accuracy"

    def __init__(self, env: Any, *, seed: int = 0, n_steps: int | None = None, **env_kwargs: Any) -> None:
        super().__init__(seed)
        self.env = _environment(env, env_kwargs)
        self.n_steps = None if n_steps is None else check_int("n_steps", n_steps)
        self.dt = float(self.env.dt)
        self.period_names = list(getattr(self.env, "timing", {}))
        self.n_inputs = int(np.prod(self.env.observation_space.shape))
        self.n_outputs = int(self.env.action_space.n)
        name = env if isinstance(env, str) else type(self.env).__name__
        self.config.update({"env": name, "n_steps": self.n_steps, **{k: repr(v) for k, v in env_kwargs.items()}})

    def times(self, n_steps: int) -> np.ndarray:
        """The time of each step in ms (0, dt, 2 dt, ...), for ``Recording.with_times``."""
        return np.arange(check_int("n_steps", n_steps)) * self.dt

    def periods(self, data: TaskData, *, in_ms: bool = False) -> dict[str, tuple[float, float]]:
        """Each period's median start and end over the trials of ``data`` (steps, or ms with ``in_ms``), for
        ``Recording.with_periods``; where durations are random, trials differ from the medians.
        """
        scale = self.dt if in_ms else 1.0
        out = {}
        for period in (p for p in self.period_names if f"{p}_start" in data.metadata):
            start = float(np.median(data.metadata[f"{period}_start"])) * scale
            end = float(np.median(data.metadata[f"{period}_end"])) * scale
            if end > start:
                out[period] = (start, end)
        return out

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:
        self.env.seed(int(rng.integers(2**31 - 1)))
        trials = []
        for _ in range(n):
            info = self.env.new_trial()
            periods = {p: (int(self.env.start_ind[p]), int(self.env.end_ind[p])) for p in self.env.start_ind}
            trials.append((np.asarray(self.env.ob, dtype=np.float32).reshape(len(self.env.gt), -1),
                           np.asarray(self.env.gt), dict(info or {}), periods))  # fmt: skip
        lengths = np.array([len(gt) for _, gt, _, _ in trials])
        length = self.n_steps or int(lengths.max())
        if lengths.max() > length:
            raise ArgumentError(f"n_steps: got {length}, but a trial has {lengths.max()} steps; pass a larger n_steps.")
        x = np.zeros((n, length, self.n_inputs), dtype=np.float32)
        y = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=bool)
        for k, (ob, gt, _, _) in enumerate(trials):
            x[k, : len(gt)], y[k, : len(gt)], mask[k, : len(gt)] = ob, gt, True
        return TaskData(as_tensor(x), torch.from_numpy(y), torch.from_numpy(mask), _metadata(trials, lengths))

    def loss(self, output: Tensor, data: TaskData) -> Tensor:
        """Cross-entropy of the per-step action logits (trial, time, action) over the trials' own steps."""
        logits = output[data.mask]
        return torch.nn.functional.cross_entropy(logits, data.y[data.mask])

    def metric(self, output: Tensor, data: TaskData) -> float:
        """Share of trials whose most frequent action in the decision period is the correct one (all of
        each trial's steps where the environment has no decision period).
        """
        predicted = output.argmax(-1).cpu().numpy()
        target = data.y.cpu().numpy()
        valid = data.mask.cpu().numpy()
        correct = []
        for k in range(predicted.shape[0]):
            if "decision_start" in data.metadata:
                steps = np.arange(data.metadata["decision_start"][k], data.metadata["decision_end"][k])
            else:
                steps = np.flatnonzero(valid[k])
            if steps.size:
                votes = np.bincount(predicted[k, steps], minlength=self.n_outputs)
                correct.append(int(np.argmax(votes)) == int(np.bincount(target[k, steps]).argmax()))
        return float(np.mean(correct)) if correct else float("nan")


def _metadata(trials: list, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Scalar trial information as columns, each period's start and end step, and each trial's length."""
    columns: dict[str, np.ndarray] = {"n_steps": lengths}
    keys = dict.fromkeys(key for _, _, info, _ in trials for key in info)
    for key in keys:
        values = [info.get(key) for _, _, info, _ in trials]
        if all(np.ndim(v) == 0 and v is not None for v in values):
            columns[str(key)] = np.asarray([np.asarray(v).item() for v in values])
    for period in dict.fromkeys(p for *_, periods in trials for p in periods):
        columns[f"{period}_start"] = np.array([periods.get(period, (-1, -1))[0] for *_, periods in trials])
        columns[f"{period}_end"] = np.array([periods.get(period, (-1, -1))[1] for *_, periods in trials])
    return columns
