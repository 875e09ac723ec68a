"""What every benchmark prints first: the CPU model, the BLAS library and kernel, the thread counts.

Paths tuned on one CPU can lose on another (numpy's sorts are SIMD-dispatched on AVX-512 Intel; OpenBLAS
picks a kernel per CPU), so every figure is reported with the machine it was measured on.
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    import numpy as np
    from threadpoolctl import threadpool_info

    lines = [f"machine: {cpu_model()}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
             f"numpy {np.__version__}"]  # fmt: skip
    for pool in threadpool_info():
        lines.append(f"  {pool.get('user_api')}: {pool.get('internal_api')} {pool.get('version')}, kernel "
                     f"{pool.get('architecture', '?')}, {pool.get('num_threads')} thread(s)")  # fmt: skip
    try:
        import torch

        lines.append(f"  torch {torch.__version__}: {torch.get_num_threads()} intra-op thread(s)")
    except ImportError:  # pragma: no cover
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}
    lines.append(f"  environment: {env or 'no thread variables set'}")
    return "\n".join(lines)


def print_machine() -> None:
    print(describe_machine(), flush=True)


def median_time(fn, repeats: int, *, warmup: bool = False) -> tuple[float, object]:
    """(median seconds over ``repeats`` calls, the last result); ``warmup``: one untimed call first."""
    import statistics
    import time

    if warmup:
        fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out
