"""Recording overhead: rnnprobe.record vs the same forward passes without hooks.

Run:  OMP_NUM_THREADS=1 python benchmarks/record_overhead.py [--quick]

For an LSTM, a BLT-style recurrent convnet and a CORnet-RT-like model (224 x 224 images, 5 steps, 4
areas): the same batches through the model
(eval, no_grad) with and without recording, alternated, median of repeats; the
overhead is record / plain - 1 (goal <= 10% in memory). With store=... it reports MB/s
written and the peak RSS of a fresh process that records into a store.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch
from _machine import peak_rss, print_machine
from _models import ConvRecurrent, CORnetRT, SeqLSTM

import rnnprobe

CASES = {
    "lstm": dict(
        make=lambda: SeqLSTM(),
        stimuli=lambda n: torch.randn(n, 50, 32),
        layers=["lstm:output", "lstm:h_n", "lstm:c_n", "readout"],
        sequence=["readout"],
        n=2048,
        batch_size=128,
    ),
    "conv": dict(
        make=lambda: ConvRecurrent(),
        stimuli=lambda n: torch.randn(n, 1, 32, 32),
        layers=["layer1", "layer2", "readout"],
        sequence=[],
        n=512,
        batch_size=64,
    ),
    "cornet-rt": dict(
        make=lambda: CORnetRT(),
        stimuli=lambda n: torch.randn(n, 3, 224, 224),
        layers=["V1.output", "V2.output", "V4.output", "IT.output"],
        sequence=[],
        n=64,
        batch_size=8,
    ),
}


def plain_pass(model, stimuli, batch_size):
    model.eval()
    with torch.no_grad():
        for start in range(0, stimuli.shape[0], batch_size):
            model(stimuli[start : start + batch_size])


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def setup(name: str, n: int | None):
    """The case's model (seeded), its stimuli and record() keyword arguments."""
    case = CASES[name]
    torch.manual_seed(0)
    model = case["make"]()
    stimuli = case["stimuli"](n or case["n"])
    kwargs = dict(layers=case["layers"], sequence=case["sequence"], batch_size=case["batch_size"], progress=False)
    return case, model, stimuli, kwargs


def measure_memory(name: str, repeats: int, n: int | None) -> dict:
    case, model, stimuli, kwargs = setup(name, n)
    n = stimuli.shape[0]
    rnnprobe.record(model, stimuli[: case["batch_size"]], **kwargs)  # warm-up both paths
    plain_pass(model, stimuli[: case["batch_size"]], case["batch_size"])
    plain, rec_times = [], []
    for _ in range(repeats):  # alternate, so that drift of a shared machine hits both alike
        plain.append(timed(lambda: plain_pass(model, stimuli, case["batch_size"]))[0])
        rec_times.append(timed(lambda: rnnprobe.record(model, stimuli, **kwargs))[0])
    rec = rnnprobe.record(model, stimuli, **kwargs)
    result = {
        "case": name,
        "n_stimuli": n,
        "plain_s": statistics.median(plain),
        "record_s": statistics.median(rec_times),
        "recorded_MB": rec.nbytes / 1e6,
    }
    # median of the ratios of adjacent pairs: robust to slow drifts of machine load; the quartiles say how noisy
    ratios = [r / p - 1 for r, p in zip(rec_times, plain, strict=True)]
    result["overhead"] = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    result["overhead_iqr"] = (quartiles[0], quartiles[2])
    if name == "lstm":  # cell states and gates need the unrolled recurrence: a different computation
        unroll_layers = ["lstm:output"] + [f"lstm:l{k}.{s}" for k in range(2) for s in "hcifgo"]
        t_unroll = statistics.median(
            timed(
                lambda: rnnprobe.record(
                    model, stimuli, layers=unroll_layers, batch_size=case["batch_size"], progress=False
                )
            )[0]
            for _ in range(max(1, repeats // 2))
        )
        result["unrolled_all_states_s"] = t_unroll
    return result


def store_child(name: str, n: int | None) -> None:
    """In a fresh process: record into a store; print time, bytes and peak RSS as JSON."""
    _, model, stimuli, kwargs = setup(name, n)
    with tempfile.TemporaryDirectory(dir=os.environ.get("RNNPROBE_BENCH_TMP")) as tmp:
        rnnprobe.record(model, stimuli[:2], store=Path(tmp) / "warm.zarr", **kwargs)  # imports, first calls
        rss_before = peak_rss()
        path = Path(tmp) / "rec.zarr"
        t, rec = timed(lambda: rnnprobe.record(model, stimuli, store=path, **kwargs))
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    peak = peak_rss()
    print(
        json.dumps(
            {"store_s": t, "state_bytes": rec.nbytes, "disk_bytes": disk, "peak_rss": peak, "rss_before": rss_before}
        )
    )


def measure_store(name: str, n: int | None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--store-child", name] + (["--n", str(n)] if n else []),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer stimuli and repeats")
    parser.add_argument("--store-child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=list(CASES), action="append", help="only these cases (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.store_child:
        store_child(args.store_child, args.n)
        return
    repeats = 3 if args.quick else 15
    print(f"rnnprobe {rnnprobe.__version__}, torch {torch.__version__}, 1 thread, median of {repeats}")
    for name in args.case or CASES:
        n = CASES[name]["n"] // 4 if args.quick else None
        r = measure_memory(name, repeats, n)
        s = measure_store(name, n)
        print(f"\n[{name}] {r['n_stimuli']} stimuli, {r['recorded_MB']:.0f} MB of states")
        print(f"  plain forward        {r['plain_s']:.3f} s")
        print(
            f"  record (in memory)   {r['record_s']:.3f} s   overhead {100 * r['overhead']:+.1f}% "
            f"(median of {repeats} paired ratios; quartiles {100 * r['overhead_iqr'][0]:+.1f}% to "
            f"{100 * r['overhead_iqr'][1]:+.1f}%)"
        )
        if "unrolled_all_states_s" in r:
            print(
                f"  record h, c and 4 gates of both layers (unrolled): {r['unrolled_all_states_s']:.3f} s "
                f"({r['unrolled_all_states_s'] / r['plain_s']:.2f}x the fused forward)"
            )
        print(
            f"  record (zarr store)  {s['store_s']:.3f} s   "
            f"{s['state_bytes'] / 1e6 / s['store_s']:.0f} MB/s of states, "
            f"{s['disk_bytes'] / 1e6:.0f} MB on disk, peak RSS {s['peak_rss'] / 2**20:.0f} MiB "
            f"({s['rss_before'] / 2**20:.0f} MiB before recording)"
        )


if __name__ == "__main__":
    main()
