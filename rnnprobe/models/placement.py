"""Where a model computes: its device and floating dtype, and a task's batches put there."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ArgumentError

if TYPE_CHECKING:
    from ..tasks.base import TaskData


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of the model's first floating-point parameter or buffer (CPU and torch's
    default dtype for a model without any).
    """
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def check_computes(model: nn.Module, device: torch.device) -> None:
    """Refuse the meta device, where a model has shapes without data and computes nothing."""
    if device.type == "meta":
        raise ArgumentError(
            f"model: {type(model).__name__}'s parameters are on the meta device (shapes without data), so it "
            f"computes nothing. Materialise it first (model.to_empty(device='cpu'), then load_state_dict)."
        )


def to_model(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A tensor on the model's device; a floating-point one also in the model's dtype."""
    return tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)


def model_placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model computes (:func:`model_device_dtype`), the meta device refused (:func:`check_computes`)."""
    device, dtype = model_device_dtype(model)
    check_computes(model, device)
    return device, dtype


def batch_for(data: TaskData, device: torch.device, dtype: torch.dtype) -> TaskData:
    """A task's batch on the model's ``device``, its floating-point inputs and targets in the model's ``dtype``
    (integer labels and boolean masks keep theirs); the per-trial metadata stay numpy.
    """
    moved = {name: None if value is None else to_model(value, device, dtype) for name, value in
             (("x", data.x), ("y", data.y), ("mask", data.mask))}  # fmt: skip
    return dataclasses.replace(data, **moved)
