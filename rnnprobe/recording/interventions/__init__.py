"""Interventions on a running model: unit-level changes through hooks, connection-level lesions.

Two kinds of change, applied by :func:`intervene` (a context manager) or by
``record(..., interventions=[...])``, on any model rnnprobe can record:

:class:`Intervention`
    Replaces the output of one recordable module (a :class:`~rnnprobe.Tap` or any
    submodule, named as for :func:`~rnnprobe.record`) at chosen calls ("time steps",
    counted from the start of each forward call) and on chosen units: by zero, by
    its mean over stimuli in a reference recording, by a clamp value, plus seeded
    Gaussian noise, times a factor, or with its projection on a subspace removed.
:class:`Lesion`
    Scales a named connection type of a step-protocol model (``bottom-up``,
    ``lateral``, ``top-down`` of the BLT family; ``recurrent`` of an RNN; see
    ``model.connection_parameters()``), or multiplies one parameter by a mask,
    from a chosen time step on ("virtual cooling"). The parameters are swapped for
    scaled copies while the model runs and the originals put back afterwards: the
    model's weights are never edited in place.

The model is the same object with the same parameters afterwards, also when the
forward call fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from torch import nn

from ...errors import ArgumentTypeError, describe
from .changes import KINDS, Change, Intervention, Lesion, as_changes, describe_changes
from .controls import random_like
from .units import hooked, plan_units
from .weights import plan_lesions, swapped

__all__ = ["KINDS", "Change", "Intervention", "Lesion", "as_changes", "describe_changes", "intervene", "random_like"]


@contextlib.contextmanager
def intervene(model: nn.Module, changes: Change | Sequence[Change]) -> Iterator[nn.Module]:
    """Run ``model`` with interventions and lesions applied; everything is undone on exit, also on error.

    Parameters
    ----------
    model : torch.nn.Module
    changes : Intervention, Lesion, or a list of them
        Applied in order (several on one module compose).

    Yields
    ------
    torch.nn.Module
        The same model, changed while the context lasts.

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import VanillaRNN
    >>> model = VanillaRNN(2, 8, 1)
    >>> x = torch.randn(3, 5, 2)
    >>> with intervene(model, Lesion.cool("recurrent")):
    ...     cooled = model(x)
    >>> bool(torch.equal(model(x)[:, 0], cooled[:, 0]))  # the first step has no recurrent input yet
    True
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model: got {describe(model)}. Pass a torch.nn.Module.")
    items = as_changes(changes)
    units = [c for c in items if isinstance(c, Intervention)]
    lesions = [c for c in items if isinstance(c, Lesion)]
    unit_plan = plan_units(model, units)
    weight_plan = plan_lesions(model, lesions)
    with contextlib.ExitStack() as stack:
        if unit_plan:
            stack.enter_context(hooked(model, unit_plan))
        if weight_plan:
            stack.enter_context(swapped(model, weight_plan))
        yield model
