"""Where the time of a small RDM movie goes on this CPU, and which way of taking its products is fastest here
(issue 20, goal 1: calc_rdm_movie correlation >= 10x rsatoolbox on every kind of machine).

Run:  OMP_NUM_THREADS=1 python benchmarks/movie_paths.py [--repeats 200]

The issue's movie (92 conditions x 50 time points x 512 channels, correlation distance): rsatoolbox's
calc_rdm_movie, rnnprobe's compute_rdms and its blocked core, then the 50 Gram matrices taken five ways
(numpy's batched product, one product per step, scipy's symmetric rank-k product, torch's batched product
with torch's own BLAS, and three half-size products), each checked equal to the first (1e-12 relative)
before its time and GFLOP/s (of the full products) are printed; then the blocked core's share by block
size. Medians of --repeats calls after a warm-up, 1 thread. On an AMD EPYC (OpenBLAS Haswell) the batched
product takes 5.2 ms of compute_rdms's 6.7-8.2 ms and nothing is faster; on the Intel Xeon of a GPU machine
(OpenBLAS SkylakeX) compute_rdms took 12.4 ms with 4 ms of products at that CPU's large-GEMM speed: this
script says where the rest goes there.
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import rsatoolbox
import torch
from _machine import median_time, print_machine
from scipy.linalg.blas import dsyrk

import rnnprobe.analysis.rsa.compute as core
from rnnprobe import Recording
from rnnprobe.analysis import compute_rdms
from rnnprobe.analysis.rsa.work import Work

CONDITIONS, STEPS, UNITS = 92, 50, 512


def products(x: np.ndarray) -> dict:
    """The 50 Gram matrices of (step, condition, unit) ``x``, five ways: {name: function}."""
    tx = torch.from_numpy(x)
    half = CONDITIONS // 2
    a, b = x[:, :half], x[:, half:]

    def per_step() -> np.ndarray:
        return np.stack([step @ step.T for step in x])

    def syrk() -> np.ndarray:
        upper = np.stack([dsyrk(1.0, step.T, trans=1) for step in x])  # the upper triangle of each
        return np.triu(upper) + np.triu(upper, 1).transpose(0, 2, 1)

    def halves() -> np.ndarray:
        out = np.empty((STEPS, CONDITIONS, CONDITIONS))
        out[:, :half, :half] = a @ a.transpose(0, 2, 1)
        out[:, :half, half:] = a @ b.transpose(0, 2, 1)
        out[:, half:, :half] = out[:, :half, half:].transpose(0, 2, 1)
        out[:, half:, half:] = b @ b.transpose(0, 2, 1)
        return out

    return {
        "numpy batched product": lambda: x @ x.transpose(0, 2, 1),
        "numpy, one product per step": per_step,
        "scipy dsyrk per step (half the flops), mirrored": syrk,
        "torch batched product (its BLAS)": lambda: torch.bmm(tx, tx.transpose(1, 2)).numpy(),
        "three half-size products (3/4 of the flops)": halves,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print_machine()
    rng = np.random.default_rng(0)
    movie = rng.normal(size=(CONDITIONS, UNITS, STEPS))  # rsatoolbox's layout: (condition, channel, time)
    states = np.ascontiguousarray(np.moveaxis(movie, 2, 1))  # a Recording's: (stimulus, time, unit)
    rec = Recording({"x": states})
    dataset = rsatoolbox.data.TemporalDataset(movie, time_descriptors={"time": np.arange(STEPS)})
    theirs, ref = median_time(lambda: rsatoolbox.rdm.calc_rdm_movie(dataset, method="correlation"), 20, warmup=True)
    ours, res = median_time(lambda: compute_rdms(rec, distance="correlation"), args.repeats, warmup=True)
    np.testing.assert_allclose(res.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-9)
    backend = core._Backend(None, "float64")
    blocked, _ = median_time(lambda: core._blocked_dissimilarities(states, "correlation", None, backend),
                             args.repeats, warmup=True)  # fmt: skip
    print(f"\n[RDM movie, {CONDITIONS} conditions x {STEPS} steps x {UNITS} units, correlation]")
    print(f"  rsatoolbox calc_rdm_movie {theirs * 1e3:7.2f} ms; rnnprobe compute_rdms {ours * 1e3:7.2f} ms "
          f"({theirs / ours:.1f}x); its blocked core {blocked * 1e3:.2f} ms")  # fmt: skip
    flops = 2.0 * STEPS * CONDITIONS * CONDITIONS * UNITS
    x = np.ascontiguousarray(states.transpose(1, 0, 2))
    ways = products(x)
    expected = next(iter(ways.values()))()
    print(f"\n[the {STEPS} Gram matrices, {flops / 1e6:.0f} MFLOP as full products]")
    for name, fn in ways.items():
        np.testing.assert_allclose(fn(), expected, rtol=1e-12, atol=1e-9)
        seconds, _ = median_time(fn, args.repeats, warmup=True)
        print(f"  {name:45s} {seconds * 1e3:7.2f} ms  {flops / seconds / 1e9:6.1f} GFLOP/s  "
              f"rsatoolbox / (this alone) {theirs / seconds:5.1f}x")  # fmt: skip
    print("\n[the blocked core by block size (steps per block), its work arrays reused as compute_rdms does]")
    for steps in (5, 13, 25, 50):
        block, work = x[:steps], Work(numpy=True)
        whole, _ = median_time(lambda b=block, w=work: core._normalised_distances(b, "correlation", backend, 1,
                                                                                  None, w),
                               args.repeats, warmup=True)  # fmt: skip
        gram, _ = median_time(lambda b=block: backend.gram(b), args.repeats, warmup=True)
        print(f"  {steps:2d} steps: {whole * 1e3:6.3f} ms, its products {gram * 1e3:6.3f} ms "
              f"({whole * STEPS / steps * 1e3:6.2f} ms per {STEPS} steps)")  # fmt: skip


if __name__ == "__main__":
    main()
