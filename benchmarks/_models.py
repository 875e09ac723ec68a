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


class CORblockRT(nn.Module):
    """One area of CORnet-RT (Kubilius et al. 2018, "CORnet: modeling the neural mechanisms of core object
    recognition"): the input from the area below through a conv (with stride), group norm and ReLU, added to
    the area's own previous output, then a 3x3 conv, group norm and ReLU. Written from the paper's
    description (no code copied); ``output`` (an identity) marks the area's state at each step.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, out_size: int) -> None:
        super().__init__()
        self.out_channels, self.out_size = out_channels, out_size
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.output = nn.Identity()

    def forward(self, inp: torch.Tensor | None, state: torch.Tensor | None, batch: int) -> torch.Tensor:
        if inp is None:  # the area below has no output yet: no bottom-up input
            like = next(self.parameters())
            inp = like.new_zeros(batch, self.out_channels, self.out_size, self.out_size)
        else:
            inp = torch.relu(self.norm_input(self.conv_input(inp)))
        skip = inp if state is None else inp + state
        return self.output(torch.relu(self.norm1(self.conv1(skip))))


class CORnetRT(nn.Module):
    """CORnet-RT-like: V1-V2-V4-IT blocks, each with recurrence on its own previous state, unrolled for
    ``steps`` steps as a pipeline (area k reads area k-1's output of the previous step), 224 x 224 inputs,
    an average-pooled linear decoder on IT at the last step.
    """

    def __init__(self, steps: int = 5, n_out: int = 1000) -> None:
        super().__init__()
        self.steps = steps
        self.V1 = CORblockRT(3, 64, 7, 4, 56)
        self.V2 = CORblockRT(64, 128, 3, 2, 28)
        self.V4 = CORblockRT(128, 256, 3, 2, 14)
        self.IT = CORblockRT(256, 512, 3, 2, 7)
        self.decoder = nn.Linear(512, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        areas = [self.V1, self.V2, self.V4, self.IT]
        outputs: list[torch.Tensor | None] = [None] * 4
        for t in range(self.steps):
            inputs = [x if t == 0 else None, *outputs[:-1]]  # V1 sees the image at the first step only
            outputs = [area(inp, state, x.shape[0]) for area, inp, state in zip(areas, inputs, outputs, strict=True)]
        return self.decoder(outputs[-1].mean(dim=(2, 3)))
