"""The workers' allocator setting shared by the dask benchmarks (see docs/scale.md, "Workers' memory allocator").

dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap threshold at
128 KiB: every larger array is then a fresh mmap whose pages fault in on first touch. The benchmarks set
MALLOC_MMAP_THRESHOLD_ in the workers' environment (``--mmap-threshold``, default 32 MiB; 0 keeps dask's
environment) and print the environment the workers start with.
"""

from __future__ import annotations

import argparse


def add_allocator_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mmap-threshold", type=int, default=2**25,
                        help="workers' MALLOC_MMAP_THRESHOLD_ in bytes (0: dask's environment unchanged)")  # fmt: skip


def set_worker_allocator(mmap_threshold: int) -> None:
    """Set the workers' mmap threshold (before any cluster starts) and print their environment."""
    import dask
    import distributed  # noqa: F401  (loads its configuration)

    if mmap_threshold:
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": str(mmap_threshold)})
    print(f"  workers' environment: {dask.config.get('distributed.nanny.pre-spawn-environ')}")


def layer_arguments(description: str, *, stimuli: int, units: int, allocator: bool = True) -> argparse.Namespace:
    """--stimuli, --units and --repeats of a script's layer on disk (and ``--mmap-threshold`` with ``allocator``),
    parsed."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stimuli", type=int, default=stimuli)
    parser.add_argument("--units", type=int, default=units)
    parser.add_argument("--repeats", type=int, default=3)
    if allocator:
        add_allocator_argument(parser)
    return parser.parse_args()
