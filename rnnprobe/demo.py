"""``rnnprobe demo``: train a small LSTM for a few seconds, record everything inside it, summarise.

The task is delayed recall: one of four input channels pulses at the first step,
noise follows, and the network must report the pulsed channel at the last
step. The demo records the output sequence and, through the exact unrolled
recurrence, the cell states and gates of both layers, streams them into a zarr
store, reopens it lazily and prints what it holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def delayed_recall(n: int, *, steps: int = 12, n_classes: int = 4, noise: float = 0.3, seed: int = 0):
    """Stimuli (n, steps, n_classes), labels (n,): the class channel pulses at t=0, then noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    x = noise * rng.standard_normal((n, steps, n_classes)).astype(np.float32)
    x[np.arange(n), 0, labels] += 1.0
    return x, labels


def class_variance_share(states: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Between-class sum of squares over total sum of squares, per time step (scale-free, 0..1).

    ``states`` is (stimulus, time, units); the share is pooled over units.
    """
    total = ((states - states.mean(0)) ** 2).sum(axis=(0, 2))
    between = np.zeros_like(total)
    for k in np.unique(labels):
        members = states[labels == k]
        between += members.shape[0] * ((members.mean(0) - states.mean(0)) ** 2).sum(axis=-1)
    return between / np.where(total > 0, total, 1)


def _model(n_classes: int, hidden: int):
    import torch
    from torch import nn

    class DelayedRecallLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(n_classes, hidden, num_layers=2, batch_first=True)
            self.readout = nn.Linear(hidden, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.readout(self.lstm(x)[0])

    return DelayedRecallLSTM()


def run_demo(*, out: str | Path | None = None, quick: bool = False, progress: bool = True) -> Path:
    """Run the demo; returns the path of the recording store it wrote."""
    import torch

    import rnnprobe

    torch.set_num_threads(1)
    out_dir = Path(out) if out is not None else Path("rnnprobe-demo")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = _model(4, 32)
    train_steps = 300 if quick else 600
    t0 = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(train_steps):
        x, y = delayed_recall(64, seed=step + 1)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x))[:, -1], torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    n_test = 256 if quick else 2048
    x_test, y_test = delayed_recall(n_test, seed=10_000)
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test))[:, -1].argmax(-1).numpy() == y_test).mean())
    print(
        f"trained a 2-layer LSTM (32 units) on delayed recall for {train_steps} steps "
        f"in {time.perf_counter() - t0:.1f} s: held-out accuracy {accuracy:.3f} (chance 0.25)"
    )

    layers = ["lstm:output", "lstm:c_n"] + [f"lstm:l{k}.{s}" for k in range(2) for s in "hcifgo"] + ["readout"]
    store = out_dir / "delayed_recall.zarr"
    t0 = time.perf_counter()
    rnnprobe.record(
        model,
        x_test,
        layers=layers,
        metadata={"label": y_test, "split": np.array(["test"] * n_test)},
        batch_size=256,
        sequence=["readout"],
        store=store,
        overwrite=True,
        progress=progress,
    )
    elapsed = time.perf_counter() - t0
    rec = rnnprobe.Recording.load(store)
    print(
        f"recorded {rec.n_stimuli} stimuli x {len(rec.layers)} states in {elapsed:.2f} s "
        f"({rec.nbytes / 2**20:.1f} MiB) into {store}"
    )
    print(rec)
    labels = rec.column("label")
    for name in ("lstm:l0.h", "lstm:l0.c", "lstm:l1.h", "lstm:l1.c"):
        print(
            f"  share of {name} variance explained by the remembered class, by step: "
            + " ".join(f"{v:.2f}" for v in class_variance_share(rec.get(name), labels))
        )
    return store
