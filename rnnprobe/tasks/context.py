"""Context-dependent perceptual decisions (Mante, Sussillo, Shenoy & Newsome 2013, Nature 503:78).

Every trial shows two noisy evidence streams at once, a motion and a colour coherence (signed: the sign
is the direction, or the colour, the evidence favours), and a context cue that says which of the two to
report. The network must integrate the relevant stream and ignore the irrelevant one, and report the
sign of the relevant coherence at the end of the trial.

Inputs (4 channels): motion evidence, colour evidence (the trial's coherence plus Gaussian noise of s.d.
``noise`` at every step after a fixation period), and the two context cues (one-hot, on throughout).
Targets: the correct choice (class 0: negative, 1: positive) on the last ``response_steps`` steps (mask).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int, check_number
from ..errors import ArgumentError, describe
from .base import Task, TaskData, as_tensor

CONTEXTS = ("motion", "colour")


class ContextDependentDecision(Task):
    """The context-dependent decision task of Mante et al. (2013).

    Parameters
    ----------
    coherences : sequence of float
        Unsigned coherences; each trial draws a sign and a level for motion and for colour independently
        (the paper: 6 signed levels per modality).
    n_steps : int
        Steps per trial (fixation included).
    fixation_steps : int
        Steps with the context cue only, before the evidence starts.
    response_steps : int
        Final steps on which the choice is scored.
    noise : float
        Standard deviation of the evidence noise per step.
    seed : int

    Examples
    --------
    >>> data = ContextDependentDecision().sample(6)
    >>> tuple(data.x.shape), sorted(data.metadata)
    ((6, 40, 4), ['choice', 'colour', 'context', 'motion', 'relevant'])
    """

    metric_name = "accuracy"
    input_names = ("motion", "colour", "motion context", "colour context")

    def __init__(
        self,
        coherences: tuple[float, ...] = (0.05, 0.15, 0.5),
        *,
        n_steps: int = 40,
        fixation_steps: int = 5,
        response_steps: int = 5,
        noise: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        levels = np.asarray(coherences, dtype=float).ravel()
        if levels.size == 0 or not np.all(np.isfinite(levels)) or np.any(levels <= 0):
            raise ArgumentError(f"coherences: got {describe(coherences)}. Pass positive unsigned coherences.")
        self.n_steps = check_int("n_steps", n_steps, minimum=3)
        self.fixation_steps = check_int("fixation_steps", fixation_steps, minimum=0, maximum=self.n_steps - 2)
        self.response_steps = check_int("response_steps", response_steps, maximum=self.n_steps - self.fixation_steps)
        self.noise = check_number("noise", noise, minimum=0)
        self.coherences = tuple(float(c) for c in levels)
        self.input_size, self.output_size = 4, 2
        self.config.update(coherences=self.coherences, n_steps=self.n_steps, fixation_steps=self.fixation_steps,
                           response_steps=self.response_steps, noise=self.noise)  # fmt: skip

    def _generate(self, n: int, rng: np.random.Generator, split: str) -> TaskData:
        levels = np.asarray(self.coherences)
        motion = levels[rng.integers(levels.size, size=n)] * rng.choice([-1.0, 1.0], size=n)
        colour = levels[rng.integers(levels.size, size=n)] * rng.choice([-1.0, 1.0], size=n)
        context = rng.integers(2, size=n)
        x = np.zeros((n, self.n_steps, 4))
        evidence = slice(self.fixation_steps, None)
        steps = self.n_steps - self.fixation_steps
        x[:, evidence, 0] = motion[:, None] + self.noise * rng.normal(size=(n, steps))
        x[:, evidence, 1] = colour[:, None] + self.noise * rng.normal(size=(n, steps))
        x[np.arange(n), :, 2 + context] = 1.0
        relevant = np.where(context == 0, motion, colour)
        choice = (relevant > 0).astype(np.int64)
        y = np.repeat(choice[:, None], self.n_steps, axis=1)
        mask = np.zeros((n, self.n_steps), dtype=bool)
        mask[:, self.n_steps - self.response_steps :] = True
        metadata = {"context": np.array(CONTEXTS)[context], "motion": motion, "colour": colour,
                    "relevant": relevant, "choice": np.where(choice == 1, 1, -1)}  # fmt: skip
        return TaskData(as_tensor(x), torch.from_numpy(y), torch.from_numpy(mask), metadata)

    def periods(self) -> dict[str, tuple[int, int]]:
        """The trial's periods in steps (for ``Recording.with_periods``): fixation, evidence, and the response
        (the last steps, when the evidence continues and the choice is scored).
        """
        n, f, r = self.n_steps, self.fixation_steps, self.response_steps
        out = {"fixation": (0, f), "evidence": (f, n - r), "response": (n - r, n)}
        return {name: span for name, span in out.items() if span[1] > span[0]}

    def loss(self, output: Tensor, data: TaskData) -> Tensor:
        """Cross-entropy of the choice logits (trial, time, 2) on the response steps."""
        return torch.nn.functional.cross_entropy(output[data.mask], data.y[data.mask])

    def metric(self, output: Tensor, data: TaskData) -> float:
        """Share of trials whose last-step choice is correct."""
        return float((output[:, -1].argmax(-1) == data.y[:, -1]).float().mean())
