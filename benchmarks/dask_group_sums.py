"""Blockwise condition sums of many groups, stimuli in group order: chunks of whole groups (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_group_sums.py [--repeats 3] [--workers 2]

``blockwise.group_sums`` gives the blockwise condition means of RDMs, averages, TDR, dPCA and encoding. Each
chunk of stimuli used to sum its own stimuli into every group: with more groups than a chunk has stimuli
(images presented a few times each) those parts outgrow the chunks. Where the stimuli are in group order,
chunks of whole groups now each sum their own. Cases (float64 states in memory as dask arrays, dask's
threaded scheduler, 1 thread per library): the parts per chunk of stimuli (``_sums_by_stimulus_chunks``, the
way before) against ``group_sums``; then the same trials out of order: the parts per chunk, taking the trials
into order by dask's shuffle first, and ``group_sums``, which shuffles first where ``shuffle_values()`` says the
shuffle's pieces cost less (rows saved for the cases it shuffles). All checked equal to the sums in memory
(1e-10) first; medians of ``--repeats``, alternating. ``--workers N``: the same on a LocalCluster of N worker
processes (1 thread each; the states persisted on the workers first), where every task and every piece of the
shuffle goes through dask.distributed's scheduler: does ``SHUFFLE_VALUES["distributed"]`` choose the faster way there?
(Printed, not saved.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _machine import Results, print_machine

CASES = [(400, 10, 2000, 100), (2000, 4, 4096, 400), (1000, 20, 1024, 100)]  # groups, members, values, chunk rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="a LocalCluster of this many worker processes")
    args = parser.parse_args()
    print_machine()
    if args.workers:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster):  # fmt: skip
            print(f"dask.distributed: LocalCluster of {args.workers} worker processes, 1 thread each")
            run(args)
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    """Every case, timed with the active client (else dask's threaded scheduler); saved without a client."""
    import dask.array as da

    from rnnprobe.analysis.blockwise import _sums_by_stimulus_chunks, group_sums, shuffle_values
    from rnnprobe.analysis.conditions import sum_groups

    rng = np.random.default_rng(0)
    out = Results(__file__)
    for n_groups, members, values, rows in CASES:
        states = rng.normal(size=(n_groups * members, values))
        groups = np.repeat(np.arange(n_groups), members)  # in group order
        x = da.from_array(states, chunks=(rows, values))
        order = rng.permutation(groups.size)  # the same trials out of order: shuffled into order first
        shuffled, shuffled_groups = da.from_array(states[order], chunks=(rows, values)), groups[order]
        if args.workers:  # held by the workers, as a recording's chunks are read there
            x, shuffled = x.persist(), shuffled.persist()
        back = np.argsort(shuffled_groups, kind="stable")
        ways = {
            "per chunk of stimuli": partial(_sums_by_stimulus_chunks, x, groups[None], n_groups),
            "group_sums": partial(group_sums, x, groups, n_groups),
            "shuffled: per chunk of stimuli": partial(_sums_by_stimulus_chunks, shuffled, shuffled_groups[None],
                                                      n_groups),
            "shuffled: dask's shuffle, then chunks of whole groups": partial(
                group_sums, shuffled[back], shuffled_groups[back], n_groups),
            "shuffled: group_sums": partial(group_sums, shuffled, shuffled_groups, n_groups),
        }  # fmt: skip
        expected = sum_groups(states, groups, n_groups)
        times = _times(ways, expected, args.repeats)
        before, now, kept, shuffle, chosen = times.values()
        shuffles = len(x.chunks[0]) * shuffle_values() < n_groups * values
        case = f"condition sums, {n_groups} groups x {members}, {values} values, {len(x.chunks[0])} chunks"
        choice = "shuffles" if shuffles else "per chunk"
        print(f"  {case}\n    in order: per chunk of stimuli {before:.3f} s, group_sums {now:.3f} s, "
              f"{before / now:.1f}x\n    out of order: per chunk of stimuli {kept:.3f} s, shuffled first "
              f"{shuffle:.3f} s, group_sums {chosen:.3f} s ({choice}), {kept / chosen:.1f}x")  # fmt: skip
        out.add(case + ", in order", "per chunk of stimuli", before, now)
        if shuffles:
            out.add(case + ", out of order", "per chunk of stimuli", kept, chosen)
    if not args.workers:
        out.save()


def _times(ways: dict, expected: np.ndarray, repeats: int) -> dict[str, float]:
    """Each way's median time (dask's threaded scheduler), alternating, its sums checked equal first."""
    import dask

    from rnnprobe.analysis.blockwise import active_client

    times: dict[str, list[float]] = {name: [] for name in ways}
    with dask.config.set(scheduler=None if active_client() else "threads"):
        for name, way in ways.items():
            got = way().compute().reshape(expected.shape)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10, err_msg=name)
        for _ in range(repeats):
            for name, way in ways.items():
                t0 = time.perf_counter()
                way().compute()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


if __name__ == "__main__":
    main()
