"""What every benchmark prints first: the CPU model, the BLAS library and kernel, the thread counts.

Paths tuned on one CPU can lose on another (numpy's sorts are SIMD-dispatched on AVX-512 Intel; OpenBLAS
picks a kernel per CPU), so every figure is reported with the machine it was measured on.
"""

from __future__ import annotations

import os
import platform
import resource


def cpu_model() -> str:
    from rnnprobe.analysis.machine import cpu_model as model

    return model()


def describe_machine() -> str:
    """The CPU, the BLAS libraries and kernels, the thread counts, and the thread and kernel variables set."""
    from rnnprobe.analysis.machine import describe_machine as describe

    return str(describe(torch=True))


def print_machine() -> None:
    print(describe_machine(), flush=True)


def median_time(fn, repeats: int, *, warmup: bool = False, at_least: float = 0.0) -> tuple[float, object]:
    """(median seconds over ``repeats`` calls, the last result); ``warmup``: one untimed call first;
    ``at_least``: more calls (up to 1000) until the timed ones take that many seconds in all (a call of 10 ms,
    timed three times, moved by 30% from run to run on this VM).
    """
    import statistics
    import time

    if warmup:
        fn()
    times, out = [], None
    while len(times) < repeats or (sum(times) < at_least and len(times) < 1000):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def against_first(ways: dict, repeats: int):
    """(name, way, median seconds after a warm-up, the first way's seconds over these) of each of ``ways``
    ({name: function}) in turn: the ratios a script prints beside its ways.
    """
    first = None
    for name, way in ways.items():
        seconds, _ = median_time(way, repeats, warmup=True)
        first = seconds if first is None else first
        yield name, way, seconds, first / seconds


def machine_kind() -> str:
    """A folder name for the kind of CPU: 'amd-epyc', 'intel-xeon', ... (model numbers dropped)."""
    import re

    words = re.sub(r"\(.*?\)|@.*|\bCPU\b|\bProcessor\b", " ", cpu_model()).split()
    kept = [w.lower() for w in words if not any(ch.isdigit() for ch in w)][:2]
    return "-".join(kept) or platform.machine()


class Results:
    """Speed ratios of one benchmark script, saved beside the others of the same kind of CPU.

    ``add(case, anchor, anchor_s, ours_s, goal=None)`` records one case (results checked equal first, as
    every script does before timing); ``save()`` writes ``benchmarks/results/<machine kind>/<script>.json``
    with the machine's description, from which the docs build draws the benchmarks page's figures.
    """

    def __init__(self, script: str) -> None:
        self.script = os.path.splitext(os.path.basename(script))[0]
        self.rows: list[dict] = []

    def add(self, case: str, anchor: str, anchor_s: float, ours_s: float, goal: float | None = None) -> None:
        self.rows.append({"case": case, "anchor": anchor, "anchor_s": float(anchor_s), "ours_s": float(ours_s),
                          "ratio": float(anchor_s) / float(ours_s), "goal": goal})  # fmt: skip

    def save(self, folder: str | None = None) -> str:
        import datetime
        import json

        folder = folder or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", machine_kind())
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{self.script}.json")
        payload = {"script": self.script, "cpu": cpu_model(), "machine": describe_machine(),
                   "date": datetime.date.today().isoformat(), "rows": self.rows}  # fmt: skip
        with open(path + ".part", "w") as f:  # never a half-written results file
            json.dump(payload, f, indent=1)
        os.replace(path + ".part", path)
        print(f"results: {path}")
        return path


def peak_rss() -> int:
    """Peak resident memory of this process in bytes (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
