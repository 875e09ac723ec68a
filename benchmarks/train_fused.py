"""Training the zoo's recurrent networks: torch's fused module (what `rnnprobe.train` runs now) against the step loop.

Run:  OMP_NUM_THREADS=1 python benchmarks/train_fused.py [--repeats 3] [--steps 100]

The context-dependent decision task of tutorial 13 (40 steps, 4 inputs, a batch of 64), 64 units, Adam:
`rnnprobe.train` through `TorchRNNStep.fused_forward` against the same call with the fused path turned off
(the step protocol's loop, every step through `step` and its taps: what `train` ran before), and against
plain torch (the same `nn.GRU`/`nn.LSTM`/`nn.RNN` and readout, a hand-written loop of the same Adam steps:
the floor). Checked first: one training step's loss and gradients agree to 1e-5 of their largest (float32
rounding), and 20 steps of each end within 1e-3 of the largest weight. One thread (torch and BLAS pinned).
"""

from __future__ import annotations

import argparse
import time

import torch
from _machine import Results, print_machine
from threadpoolctl import threadpool_limits

from rnnprobe import train
from rnnprobe.models import GRU, LSTM, VanillaRNN
from rnnprobe.models.recurrent import TorchRNNStep
from rnnprobe.tasks import ContextDependentDecision


def fit(cls, task, steps: int, *, fused: bool) -> tuple[float, torch.Tensor]:
    """(seconds, the trained weights) of rnnprobe.train, the fused path allowed or turned off."""
    torch.manual_seed(0)
    model = cls(task.input_size, 64, task.output_size)
    saved = TorchRNNStep.fusable
    if not fused:
        TorchRNNStep.fusable = lambda self: False
    try:
        t0 = time.perf_counter()
        train(model, task, steps=steps, lr=3e-3, batch_size=64, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        TorchRNNStep.fusable = saved
    return seconds, torch.cat([p.detach().flatten() for p in model.parameters()])


def plain_torch(cls, task, steps: int) -> tuple[float, torch.Tensor]:
    """The floor: the zoo model's own nn module and readout in a hand-written loop (same batches, Adam, clipping)."""
    torch.manual_seed(0)
    model = cls(task.input_size, 64, task.output_size)
    rnn, readout = model.rnn, model.readout
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for step in range(steps):
        data = task.sample(64, split="train", index=step)
        loss = task.loss(readout(rnn(data.x)[0]), data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return time.perf_counter() - t0, torch.cat([p.detach().flatten() for p in model.parameters()])


def check(cls, task) -> None:
    """One step's loss and gradients, then 20 steps' weights, fused against the loop."""
    torch.manual_seed(0)
    model = cls(task.input_size, 64, task.output_size)
    data = task.sample(64, split="train", index=0)
    grads = []
    for forward in (model.forward, model.fused_forward):
        model.zero_grad()
        loss = task.loss(forward(data.x), data)
        loss.backward()
        grads.append(torch.cat([loss.detach().view(1), *(p.grad.flatten() for p in model.parameters())]))
    gap = float((grads[0] - grads[1]).abs().max() / grads[0].abs().max())
    assert gap < 1e-5, f"{cls.__name__}: one step's gradients differ by {gap:.1e}"
    weights = [fit(cls, task, 20, fused=fused)[1] for fused in (False, True)]
    drift = float((weights[0] - weights[1]).abs().max() / weights[0].abs().max())
    assert drift < 1e-3, f"{cls.__name__}: 20 steps' weights differ by {drift:.1e}"
    print(f"  {cls.__name__}: one step's loss and gradients within {gap:.1e}, 20 steps' weights within {drift:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        print_machine()
        task = ContextDependentDecision(coherences=(0.05, 0.15, 0.5), n_steps=40, noise=1.0)
        results = Results(__file__)
        print(f"\n[train {args.steps} steps, 64 units, {task.n_steps} steps a trial, a batch of 64; "
              f"medians of {args.repeats}, alternating]")  # fmt: skip
        for cls in (VanillaRNN, GRU, LSTM):
            check(cls, task)
            times = {"loop": [], "fused": [], "torch": []}
            for _ in range(args.repeats):
                times["loop"].append(fit(cls, task, args.steps, fused=False)[0])
                times["fused"].append(fit(cls, task, args.steps, fused=True)[0])
                times["torch"].append(plain_torch(cls, task, args.steps)[0])
            loop, fused, floor = (sorted(t)[len(t) // 2] for t in times.values())
            print(f"  {cls.__name__:10s} step loop {loop:6.2f} s   fused {fused:6.2f} s   {loop / fused:4.2f}x   "
                  f"plain torch {floor:6.2f} s ({floor / fused:4.2f} of the fused time)")  # fmt: skip
            results.add(f"train {cls.__name__} 64 units, {args.steps} steps", "step loop", loop, fused)
        results.save()


if __name__ == "__main__":
    main()
