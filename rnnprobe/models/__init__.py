"""Reference recurrent models on one step protocol, checkpoints, and the shipped trained models.

Every model implements ``init_state(batch_size)`` and ``step(x_t, state)`` and
inherits ``forward`` (a loop over ``step``) from :class:`RecurrentModel`; its
:class:`~rnnprobe.Tap` modules name the recordable states.
"""

from .base import RecurrentModel
from .blt import BLT
from .checkpoint import load_checkpoint, save_checkpoint, task_from_checkpoint
from .ctrnn import CTRNN
from .energy import EnergyEfficientRNN, error_units, input_prediction, prediction_units
from .fast_weights import FastWeightsRNN
from .recurrent import GRU, LSTM, TorchRNNStep, VanillaRNN, from_module
from .shipped import available, load

__all__ = [
    "BLT",
    "CTRNN",
    "GRU",
    "LSTM",
    "EnergyEfficientRNN",
    "FastWeightsRNN",
    "RecurrentModel",
    "TorchRNNStep",
    "VanillaRNN",
    "available",
    "error_units",
    "from_module",
    "input_prediction",
    "load",
    "load_checkpoint",
    "prediction_units",
    "save_checkpoint",
    "task_from_checkpoint",
]
