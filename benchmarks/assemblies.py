"""Assembly calculus at scale: rnnprobe's sparse simulator vs the same dynamics on dense matrices, in one run.

Run:  OMP_NUM_THREADS=1 python benchmarks/assemblies.py [--max-n 100000]

For each size: a stimulus of k = sqrt(n) neurons projected into an area of n neurons for 20 rounds
(beta = 0.1), synapses with probability p. The anchor is the same algorithm on dense numpy matrices
(inputs = W[fired].sum(0); Hebbian update on W[fired x winners]), started from the very same weights and
random tie-breaks, so both must pick the same winners (checked). Prints seconds for drawing the synapses
and for the 20 rounds, memory of the weights, the ratio, and the final overlap (convergence).
"""

from __future__ import annotations

import argparse
import copy
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _machine import print_machine


def dense_project(brain, stimulus: str, area: str, rounds: int) -> np.ndarray:
    """The sparse simulator's project() on dense copies of its weights, with its random stream."""
    ws = brain.weights(stimulus, area).toarray()
    wa = brain.weights(area, area).toarray()
    rng = copy.deepcopy(brain.rng)
    n, k = brain.areas[area].n, brain.areas[area].k
    winners = np.zeros(0, dtype=np.int64)
    history = []
    for _ in range(rounds):
        total = ws.sum(axis=0, dtype=np.float64)
        if winners.size:
            total = total + wa[winners].sum(axis=0, dtype=np.float64)
        order = np.lexsort((rng.random(n), -total))
        new = np.sort(order[:k])
        ws[:, new] *= np.float32(1 + brain.beta)  # every stimulus neuron fired (zeros stay zero)
        if winners.size:
            block = wa[np.ix_(winners, new)]
            wa[np.ix_(winners, new)] = block * np.float32(1 + brain.beta)
        winners = new
        history.append(new)
    return np.stack(history)


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-n", type=int, default=100_000)
    args = parser.parse_args()
    from rnnprobe.models.assemblies import Brain

    sizes = [(1_000, 0.05), (10_000, 0.01), (100_000, 0.001)]
    for n, p in sizes:
        if n > args.max_n:
            continue
        k = round(float(np.sqrt(n)))
        brain = Brain(p=p, beta=0.1, seed=0)
        brain.add_stimulus("s", k)
        brain.add_area("A", n, k)
        t0 = time.perf_counter()
        ws, wa = brain.weights("s", "A"), brain.weights("A", "A")
        t_draw = time.perf_counter() - t0
        mib = sum(w.data.nbytes + w.indices.nbytes + w.indptr.nbytes for w in (ws, wa)) / 2**20
        dense_mib = (ws.shape[0] + wa.shape[0]) * n * 4 / 2**20
        reference = None
        if dense_mib < 2048:
            t0 = time.perf_counter()
            reference = dense_project(brain, "s", "A", 20)
            t_dense = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = brain.project("s", "A", rounds=20)
        t_sparse = time.perf_counter() - t0
        line = (f"n={n:>7} k={k:>3} p={p:<6} synapses {wa.nnz + ws.nnz:>11,} ({mib:7.1f} MiB; dense {dense_mib:8.0f} "
                f"MiB), drawn in {t_draw:6.2f} s; 20 rounds: sparse {t_sparse:6.2f} s")  # fmt: skip
        if reference is not None:
            assert (reference == run.winners).all(), "the dense and sparse simulations differ"
            line += f", dense {t_dense:6.2f} s, {t_dense / t_sparse:5.1f}x, same winners"
        else:
            line += ", dense: does not fit in 2 GiB"
        print(line + f"; final overlap {run.overlaps[-1]:.2f}")


if __name__ == "__main__":
    main()
