"""Benchmark models: an LSTM sequence model and a BLT-style recurrent convnet."""

from __future__ import annotations

import torch
from torch import nn


class SeqLSTM(nn.Module):
    """2-layer LSTM with a per-step readout, as in sequence tasks."""

    def __init__(self, n_in: int = 32, hidden: int = 256, n_out: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, num_layers=2, batch_first=True)
        self.readout = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.lstm(x)[0])


class ConvRecurrent(nn.Module):
    """BLT-style: two conv layers with bottom-up, lateral and top-down connections, unrolled for `steps`.

    Each conv module is called once per time step, so its outputs are recorded as a time series.
    """

    def __init__(self, maps: int = 32, steps: int = 4, n_out: int = 10) -> None:
        super().__init__()
        self.steps = steps
        self.b1 = nn.Conv2d(1, maps, 3, padding=1)
        self.l1 = nn.Conv2d(maps, maps, 3, padding=1)
        self.t1 = nn.ConvTranspose2d(maps, maps, 2, stride=2)
        self.b2 = nn.Conv2d(maps, maps, 3, padding=1)
        self.l2 = nn.Conv2d(maps, maps, 3, padding=1)
        self.layer1 = nn.ReLU()
        self.layer2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.readout = nn.Linear(maps, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a1 = a2 = None
        outs = []
        for _ in range(self.steps):
            pre1 = self.b1(x)
            if a1 is not None:
                pre1 = pre1 + self.l1(a1) + self.t1(a2)
            new1 = self.layer1(pre1)
            pre2 = self.b2(self.pool(new1))
            if a2 is not None:
                pre2 = pre2 + self.l2(a2)
            a1, a2 = new1, self.layer2(pre2)
            outs.append(self.readout(a2.mean((2, 3))))
        return torch.stack(outs, 1)
