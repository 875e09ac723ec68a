"""What the batched Newton solvers of logistic regression share: Armijo backtracking of every problem's
step at once, and the error when some problems do not converge.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ConvergenceError


def backtrack(
    trial_loss: Callable[[torch.Tensor], torch.Tensor], loss: torch.Tensor, slope: torch.Tensor, active: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Armijo backtracking of every problem's Newton step: (step sizes, new losses), 0 and the old loss for
    problems not ``active`` or that found no decrease. ``trial_loss(step sizes)`` gives the objective there;
    ``slope`` is the directional derivative along the step.
    """
    scale = torch.ones_like(loss)
    accepted = ~active
    new_loss = loss
    for _ in range(40):
        trial = trial_loss(scale)
        # near the optimum the decrease a full Newton step makes is below the loss's rounding error: that
        # step is taken when the loss rises no more than rounding (as sklearn's Newton solver does), rather
        # than stalling forever
        flat = (scale == 1) & (trial - loss <= 64 * torch.finfo(loss.dtype).eps * loss.abs())
        ok = ((trial <= loss + 1e-4 * scale * slope) | flat) & ~accepted
        new_loss = torch.where(ok, trial, new_loss)
        accepted = accepted | ok
        if accepted.all():
            break
        scale = torch.where(accepted, scale, scale / 2)
    moved = accepted & active
    return torch.where(moved, scale, 0.0), torch.where(moved, new_loss, loss)


def not_converged(active: torch.Tensor, max_iter: int) -> ConvergenceError:
    """The error of the problems still ``active`` after ``max_iter`` Newton iterations."""
    return ConvergenceError(
        f"logistic regression: {int(active.sum())} of {active.numel()} fits did not converge in {max_iter} Newton "
        f"iterations. Standardise the features (a StandardScaler) or raise the penalty."
    )
