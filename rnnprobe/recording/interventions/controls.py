"""Controls for a targeted change: the same change on random units or random weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ..._validation import check_int, check_seed
from ...errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from .changes import Change, Intervention, Lesion
from .weights import lesioned_parameters


def random_like(
    change: Change,
    model: nn.Module,
    stimulus: Any,
    *,
    n_draws: int = 20,
    seed: int | None = 0,
    among: Sequence[str] | None = None,
    exclude: bool = False,
) -> list[list[Change]]:
    """Controls for a targeted change: the same change on as many randomly chosen units or weights.

    The weights of a lesion's controls are drawn among all weights of the connection types
    ``among`` (the targeted ones included), so that a control removes a random set of as many
    connections.

    Parameters
    ----------
    change : Intervention or Lesion
        An intervention on selected units (drawn again among the layer's other units), or a
        lesion of a connection type or masked weights (that many weights drawn among the
        connections ``among``, scaled the same way from the same step).
    model : torch.nn.Module
    stimulus : Tensor
        One stimulus batch, to learn the layer's unit shape.
    n_draws : int
        Number of controls.
    seed : int, optional
    among : list of str, optional
        Connection types the random weights come from (default: every type but ``readout``).
    exclude : bool
        Draw random units among the units the change does not select (default: among all units,
        so that the controls are random sets of the same size).

    Returns
    -------
    list of list
        One list of changes per control draw (pass each as ``interventions=``).

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import BLT
    >>> model = BLT("BLT", image_size=8, maps=4, steps=3)
    >>> controls = random_like(Lesion.cool("lateral"), model, torch.rand(1, 1, 8, 8), n_draws=3)
    >>> len(controls), sum(int((c.mask == 0).sum()) for c in controls[0])  # 2 layers x 4 x 4 x 3 x 3 weights
    (3, 288)
    """
    n_draws = check_int("n_draws", n_draws)
    rng = np.random.default_rng(check_seed(seed))
    if isinstance(change, Intervention):
        return [[draw] for draw in _random_units(change, model, stimulus, n_draws, rng, bool(exclude))]
    if isinstance(change, Lesion):
        return _random_weights(change, model, n_draws, rng, among)
    raise ArgumentTypeError(f"change: got {describe(change)}. Pass an Intervention or a Lesion.")


def _random_units(
    change: Intervention, model: nn.Module, stimulus: Any, n_draws: int, rng: Any, exclude: bool
) -> list[Intervention]:
    if change._mask is None:
        raise ArgumentError(
            f"change: the intervention on {change.layer!r} changes every unit, so a random set of as many units "
            f"is the same set. Select units (units=...) to compare with random units."
        )
    from ..recorder import record

    shape = record(model, stimulus, layers=[change.layer], progress=False).shapes[change.layer][2:]
    n = int(np.prod(shape))
    mask = change._mask
    if (mask.dtype == bool and mask.size != n) or (mask.dtype != bool and mask.size and mask.max() >= n):
        raise ShapeError(f"units: do not fit {change.layer!r}, which has {n} units {shape}.")
    chosen = mask.reshape(-1).copy() if mask.dtype == bool else np.isin(np.arange(n), mask)
    pool = np.flatnonzero(~chosen) if exclude else np.arange(n)
    k = int(chosen.sum())
    if k == 0 or k > pool.size:
        raise ArgumentError(
            f"change: selects {k} of {n} units of {change.layer!r}, and the controls draw from {pool.size}. "
            f"{'Pass exclude=False to draw among all units.' if exclude else 'Select at least one unit.'}"
        )
    return [
        Intervention(
            change.layer,
            change.kind,
            units=np.sort(rng.choice(pool, k, replace=False)),
            steps=change.steps,
            value=change.value,
            seed=change.seed,
        )
        for _ in range(n_draws)
    ]


def _random_weights(
    change: Lesion, model: nn.Module, n_draws: int, rng: Any, among: Sequence[str] | None
) -> list[list[Change]]:
    params = dict(model.named_parameters())
    targeted = lesioned_parameters(model, change, params)
    k = sum(params[name].numel() for name in targeted)
    table = model.connection_parameters() if callable(getattr(model, "connection_parameters", None)) else {}
    kinds = [kind for kind in table if kind != "readout"] if among is None else list(among)
    for kind in kinds:
        if kind not in table:
            raise UnknownNameError(f"among: {kind!r} is not a connection type of {type(model).__name__} "
                                   f"({format_choices(table)}).")  # fmt: skip
    names = [name for kind in kinds for layer in table[kind] for name in layer]
    sizes = np.array([params[name].numel() for name in names])
    if k == 0 or k > sizes.sum():
        raise ArgumentError(f"among: {sizes.sum()} weights to draw {k} from. Pass more connection types.")
    scale = change.scale if change.parameter is None else 0.0
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    controls = []
    for _ in range(n_draws):
        picked = rng.choice(offsets[-1], k, replace=False)
        draw: list[Change] = []
        for i, name in enumerate(names):
            inside = picked[(picked >= offsets[i]) & (picked < offsets[i + 1])] - offsets[i]
            if inside.size:
                mask = np.ones(sizes[i])
                mask[inside] = scale
                draw.append(Lesion.masked(name, mask.reshape(tuple(params[name].shape)), from_step=change.from_step))
        controls.append(draw)
    return controls
