"""Collecting hooked tensors into (batch, time, *units) blocks, and checking them."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch

from ..errors import NonFiniteWarning, ShapeError, describe


class Sink:
    """Receives tensors from hooks during one batch and lays them out as (batch, time, *units)."""

    def __init__(self, storage_dtype: torch.dtype | None) -> None:
        self.storage_dtype = storage_dtype
        self.first_batch = True  # until finish(): collect copies; afterwards copy into the given views
        self.order: list[str] = []
        self.batch_size = 0
        self.batch_index = 0
        self._lists: dict[str, list[torch.Tensor]] = {}
        self._views: dict[str, torch.Tensor] = {}
        self._cursor: dict[str, int] = {}

    def _dtype_for(self, tensor: torch.Tensor) -> torch.dtype:
        if self.storage_dtype is not None and tensor.is_floating_point():
            return self.storage_dtype
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds every value exactly
            return torch.float32
        return tensor.dtype

    def start(self, batch_size: int, batch_index: int, views: dict[str, torch.Tensor] | None) -> None:
        self.batch_size = batch_size
        self.batch_index = batch_index
        self._lists = {}
        self._views = views or {}
        self._cursor = dict.fromkeys(self._views, 0)

    def add(self, layer: str, tensor: torch.Tensor, *, sequence: bool) -> None:
        if tensor.dim() == 0 or tensor.shape[0] != self.batch_size:
            raise ShapeError(
                f"layers: {layer!r} produced {describe(tensor)}, whose first axis is not the batch of "
                f"{self.batch_size} stimuli. Record modules whose outputs are (batch, ...), or pass "
                f"forward=... so the model sees (stimulus, ...) batches."
            )
        if not sequence:
            tensor = tensor.unsqueeze(1)
        if self.first_batch:  # keep copies (later in-place ops must not change them)
            if layer not in self._lists:
                self.order.append(layer)
            self._lists.setdefault(layer, []).append(tensor.to("cpu", self._dtype_for(tensor), copy=True))
            return
        if layer not in self._views:
            raise ShapeError(
                f"layers: {layer!r} appeared in batch {self.batch_index} but not in the first batch. Every "
                f"stimulus must run through the same modules the same number of times."
            )
        n_time = self._views[layer].shape[1]
        start = self._cursor[layer]
        stop = start + tensor.shape[1]
        if stop > n_time or tuple(tensor.shape[2:]) != tuple(self._views[layer].shape[2:]):
            raise ShapeError(
                f"layers: {layer!r} gave {stop} time steps of units {tuple(tensor.shape[2:])} in batch "
                f"{self.batch_index}, but {n_time} steps of units {tuple(self._views[layer].shape[2:])} in the "
                f"first batch. record needs the same number of steps for every stimulus: pad sequences to "
                f"one length."
            )
        self._views[layer][:, start:stop].copy_(tensor)
        self._cursor[layer] = stop

    def finish(self) -> dict[str, np.ndarray]:
        """End a batch; the first batch fixes each layer's (time, units, dtype)."""
        if self.first_batch:
            blocks = {}
            for layer in self.order:
                pieces = self._lists[layer]
                units = {tuple(p.shape[2:]) for p in pieces}
                if len(units) != 1:
                    raise ShapeError(
                        f"layers: {layer!r} changed shape between calls within one forward pass "
                        f"({sorted(units)}); only states of a fixed shape can be stacked over time."
                    )
                blocks[layer] = torch.cat(pieces, dim=1).numpy()
            self._lists = {}
            self.first_batch = False
            return blocks
        short = {k: (c, self._views[k].shape[1]) for k, c in self._cursor.items() if c != self._views[k].shape[1]}
        if short:
            layer, (got, want) = next(iter(short.items()))
            raise ShapeError(
                f"layers: {layer!r} gave {got} time steps in batch {self.batch_index} but {want} in the first "
                f"batch. record needs the same number of steps for every stimulus: pad sequences to one length."
            )
        return {k: v.numpy() for k, v in self._views.items()}


class NonFiniteCounter:
    """Counts NaN/inf per layer and time step over all batches."""

    def __init__(self) -> None:
        self.counts: dict[str, np.ndarray] = {}

    def update(self, blocks: Mapping[str, np.ndarray]) -> None:
        for name, block in blocks.items():
            # a sum is NaN/inf whenever an element is (and, rarely, on overflow): one pass, no temporary
            if block.dtype.kind == "f" and not np.isfinite(block.sum(dtype=block.dtype)):
                bad = (~np.isfinite(block)).reshape(block.shape[0], block.shape[1], -1).sum(axis=(0, 2))
                self.counts[name] = self.counts.get(name, 0) + bad

    def warn(self) -> None:
        for layer, counts in self.counts.items():
            steps = np.flatnonzero(counts)
            detail = ", ".join(f"t={t}: {counts[t]}" for t in steps[:10])
            more = f" (and {steps.size - 10} more steps)" if steps.size > 10 else ""
            warnings.warn(
                f"layer {layer!r} has {int(counts.sum())} NaN/inf values at {steps.size} time step(s): {detail}{more}.",
                NonFiniteWarning,
                stacklevel=3,
            )
