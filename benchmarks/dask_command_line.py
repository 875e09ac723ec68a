"""The command line on a dask cluster started as it is on many machines (issue 20, goal 4).

Run:  python benchmarks/dask_command_line.py [--stimuli 2000] [--workers 2] [--hosts]

A cluster on other machines is a scheduler and workers started by dask's own commands (``dask scheduler``,
``dask worker``, or dask-jobqueue's batch jobs running them), each worker in a folder and an environment of
its own, reached through a scheduler file or address: nothing of the client's process (its working folder, its
``sys.path``, its environment) is theirs. This script starts such a cluster on this machine: a scheduler that
writes its address to a file, and ``--workers`` workers of one thread, each started in a folder of its own with
an environment holding only PATH, HOME (that folder), one thread for every library and this environment's
OpenBLAS settings (a forced kernel: the same BLAS on both sides). It writes a project (a
BLT-style recurrent convnet whose class is in a module of the project that the factory's module imports,
images with labels, a configuration), runs
``rnnprobe record`` and ``rnnprobe analyze`` in this process's way (no scheduler) and with ``--scheduler FILE``,
checks that the stores are equal and every number of the analyses equal to 1e-9, and prints the times. The
machine is one: the workers share its disk and cores, so the times say what the cluster's overheads cost,
not what more machines give (``benchmarks/dask_scaling.py`` measures 1 against 2 workers).

``--kernels Haswell,SkylakeX`` gives the workers OpenBLAS's kernels in turn (``OPENBLAS_CORETYPE``), as machines
of a cluster whose CPUs differ; the numbers must still equal this process's.

``--hosts`` (root, Linux: ``ip`` and ``unshare``) starts each worker as on a machine of its own: in a network
namespace of its own (its own address on a bridge, 10.77.0.2, .3, ...; the scheduler and this process at
10.77.0.1: every message over TCP between two addresses), with a hostname of its own and a /tmp of its own (a
private tmpfs), so that only the folder the run lives in (under /var/tmp: the "shared file system") is common
to all. It also records a project kept in this process's /tmp, which the workers cannot see, and checks that
the command fails with the error that names the worker's host and the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from _machine import print_machine

MODULE = """
import torch
from blocks import ProjectBLT

def blt(maps=16, image_size=16, steps=4):
    torch.manual_seed(0)
    return ProjectBLT("BLT", image_size=image_size, maps=maps, steps=steps)
"""

BLOCKS = """
from rnnprobe.models import BLT

class ProjectBLT(BLT):
    # the project's own convnet, in a module that the factory's module imports
    pass
"""

CONFIG = """
output = "results"

[stimuli]
file = "stimuli.npz"

[[models]]
name = "blt"
factory = "mymodels:blt"
layers = ["layer0", "layer1"]

[analyses]
run = ["rdms", "decoding"]
target = "label"
cv = 5
distance = "correlation"
"""


def write_project(folder: Path, n_stimuli: int) -> Path:
    """A project of its own module, images and configuration in ``folder``; returns the configuration's path."""
    folder.mkdir(parents=True)
    (folder / "mymodels.py").write_text(textwrap.dedent(MODULE))
    (folder / "blocks.py").write_text(textwrap.dedent(BLOCKS))
    rng = np.random.default_rng(0)
    label = rng.integers(0, 10, n_stimuli)
    x = rng.random((n_stimuli, 1, 16, 16), dtype=np.float32)
    x[np.arange(n_stimuli), 0, label, :] += 0.5  # a bright row per class: decodable
    np.savez(folder / "stimuli.npz", x=x, label=label)
    (folder / "config.toml").write_text(textwrap.dedent(CONFIG))
    return folder / "config.toml"


BRIDGE, SUBNET = "rnnp-br", "10.77.0"  # --hosts: the bridge between the hosts' namespaces, their addresses


@contextlib.contextmanager
def hosts(n_hosts: int) -> Iterator[list[str]]:
    """``n_hosts`` network namespaces on one bridge (this process's side at SUBNET.1): yields their names."""
    names = [f"rnnp-node{k}" for k in range(n_hosts)]
    steps = [f"ip link add {BRIDGE} type bridge", f"ip addr add {SUBNET}.1/24 dev {BRIDGE}", f"ip link set {BRIDGE} up"]
    for k, name in enumerate(names):
        steps += [f"ip netns add {name}", f"ip link add rnnp-v{k} type veth peer name rnnp-p{k}",
                  f"ip link set rnnp-v{k} master {BRIDGE}", f"ip link set rnnp-v{k} up",
                  f"ip link set rnnp-p{k} netns {name}", f"ip netns exec {name} ip addr add {SUBNET}.{k + 2}/24 dev "
                  f"rnnp-p{k}", f"ip netns exec {name} ip link set rnnp-p{k} up",
                  f"ip netns exec {name} ip link set lo up"]  # fmt: skip
    try:
        for step in steps:
            subprocess.run(step.split(), check=True, capture_output=True)
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def on_host(k: int, name: str, command: list) -> list:
    """``command`` run as on host ``k``: in its namespace, with hostname node<k> and a /tmp of its own."""
    inner = f'hostname node{k} && mount -t tmpfs tmpfs /tmp && exec "$@"'
    return ["ip", "netns", "exec", name, "unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", inner,
            "sh", *map(str, command)]  # fmt: skip


def start_cluster(root: Path, n_workers: int, names: list[str] | None = None, kernels: list[str] | None = None
                  ) -> tuple[Path, list[subprocess.Popen]]:  # fmt: skip
    """A scheduler writing its address to a file, and workers each in a folder and environment of its own (and,
    with the hosts' namespace ``names``, each on a host of its own; with ``kernels``, worker k runs OpenBLAS's
    kernel k modulo their number)."""
    root.mkdir()
    bin_dir = Path(sys.executable).parent
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    scheduler_file = root / "scheduler.json"
    processes = [
        subprocess.Popen(
            [
                bin_dir / "dask",
                "scheduler",
                "--scheduler-file",
                scheduler_file,
                "--port",
                "0",
                "--no-dashboard",
                *(["--host", f"{SUBNET}.1"] if names else []),
            ],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    while not scheduler_file.is_file():
        time.sleep(0.1)
    for k in range(n_workers):
        home = root / f"worker{k}"
        home.mkdir()
        env = {"PATH": path, "HOME": str(home), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", **blas_settings()}  # fmt: skip
        if kernels:
            env["OPENBLAS_CORETYPE"] = kernels[k % len(kernels)]
        command = [bin_dir / "dask", "worker", "--scheduler-file", scheduler_file, "--nworkers", "1", "--nthreads",
                   "1", "--local-directory", home, "--no-dashboard"]  # fmt: skip
        if names:
            command = on_host(k, names[k], [*command, "--host", f"{SUBNET}.{k + 2}"])
        processes.append(subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file)) as client:
        client.wait_for_workers(n_workers, timeout=120)
    return scheduler_file, processes


def blas_settings() -> dict[str, str]:
    """This environment's OpenBLAS settings other than threads (a kernel forced by OPENBLAS_CORETYPE, say), which
    the workers get too: both sides then run the same BLAS kernel (the numbers equal either way).
    """
    return {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_") and k != "OPENBLAS_NUM_THREADS"}


def rnnprobe_command(command: str, config: Path, *extra: str, threads: int) -> float:
    """Seconds of ``rnnprobe COMMAND CONFIG`` (``threads`` for every library), which must succeed."""
    env = {**os.environ, **dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), str(threads))}
    t0 = time.perf_counter()
    out = subprocess.run([Path(sys.executable).parent / "rnnprobe", command, str(config), "--no-progress", *extra],
                         capture_output=True, text=True, env=env, cwd=config.parent.parent)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"rnnprobe {command} {config} {' '.join(extra)} failed:\n{out.stderr}")
    return time.perf_counter() - t0


def numbers(value: object) -> list[float]:
    """The floats of a JSON document, in order."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def check_stores(local: Path, cluster: Path) -> None:
    """The two runs' stores are equal."""
    from rnnprobe import Recording

    a, b = (Recording.load(folder / "results" / "recordings" / "blt.zarr") for folder in (local, cluster))
    for layer in a.layers:
        np.testing.assert_array_equal(b.get(layer), a.get(layer), err_msg=layer)


def check_summaries(local: Path, cluster: Path) -> int:
    """The two runs' analysis.json numbers equal to 1e-9; returns how many."""
    expected, got = (numbers(json.loads((f / "results" / "analysis.json").read_text())) for f in (local, cluster))
    assert len(got) == len(expected) >= 5, (len(got), len(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    return len(got)


def analyses(store: Path, scheduler_file: Path | None, threads: int) -> tuple[float, list[np.ndarray]]:
    """(seconds, results) of every layer's RDMs and decoding over time of the store: in this process (layers in
    memory, ``threads`` for every library), or on the cluster (``Recording.load(chunks="auto")``, the client of
    ``scheduler_file`` active)."""
    import torch
    from distributed import Client
    from threadpoolctl import threadpool_limits

    from rnnprobe import Recording
    from rnnprobe.analysis import compute_rdms, decode

    client = Client(scheduler_file=str(scheduler_file)) if scheduler_file else None
    torch.set_num_threads(1 if client else threads)
    try:
        with threadpool_limits(limits=1 if client else threads):
            t0 = time.perf_counter()
            recording = Recording.load(store, chunks="auto") if client else Recording.load(store).load_into_memory()
            out = []
            for layer in recording.layers:
                out.append(compute_rdms(recording, layer, distance="correlation").dissimilarities)
                out.append(decode(recording, layer, "label", cv=5, progress=False).scores)
            return time.perf_counter() - t0, out
    finally:
        if client is not None:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stimuli", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hosts", action="store_true", help="each worker on a host of its own (network namespaces)")
    parser.add_argument("--kernels", default=None, help="OpenBLAS kernels of the workers in turn, e.g. "
                        "Haswell,SkylakeX (machines that differ); this process keeps its own")  # fmt: skip
    args = parser.parse_args()
    print_machine()
    if args.hosts and (os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare")):
        raise SystemExit("--hosts needs root and the ip and unshare commands (Linux network namespaces)")
    # this run's own folder, removed at the end; with --hosts under /var/tmp, which the hosts share (not their /tmp)
    root = Path(tempfile.mkdtemp(prefix="rnnprobe-cluster-", dir="/var/tmp" if args.hosts else None))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root)
        names = stack.enter_context(hosts(args.workers)) if args.hosts else None
        configs = {where: write_project(root / where, args.stimuli) for where in ("local", "cluster")}
        kernels = args.kernels.split(",") if args.kernels else None
        scheduler_file, processes = start_cluster(root / "machines", args.workers, names, kernels)
        stack.callback(stop, processes)
        if names or kernels:
            print(f"workers: {worker_hosts(scheduler_file)}")
            unreachable(scheduler_file)
        run_and_compare(args, root, configs, scheduler_file)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def worker_hosts(scheduler_file: Path) -> dict[str, str]:
    """{worker address: its hostname and OpenBLAS kernel}."""
    from distributed import Client

    def where() -> str:
        import socket

        from rnnprobe.analysis.machine import describe_machine

        return f"{socket.gethostname()}, OpenBLAS {describe_machine().blas.get('architecture')}"

    with Client(scheduler_file=str(scheduler_file)) as client:
        return client.run(where)


def unreachable(scheduler_file: Path) -> None:
    """A project in this process's /tmp, which no worker sees: ``rnnprobe record --scheduler`` fails with the
    error that names the worker's host and the folder, and leaves no store."""
    private = Path(tempfile.mkdtemp(prefix="rnnprobe-private-", dir="/tmp"))
    try:
        config = write_project(private / "project", 50)
        out = subprocess.run([Path(sys.executable).parent / "rnnprobe", "record", str(config), "--no-progress",
                              "--scheduler", str(scheduler_file)], capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 2 and "cannot reach" in out.stderr and "on node" in out.stderr, out.stderr
        assert not (private / "project" / "results" / "recordings" / "blt.zarr").exists()
        print(f"a project in this process's /tmp: {' '.join(out.stderr.split())[:300]}")
    finally:
        shutil.rmtree(private)


def run_and_compare(args: argparse.Namespace, root: Path, configs: dict[str, Path], scheduler_file: Path) -> None:
    """The command line and the API in this process and on the cluster: equal numbers; the times printed."""
    times = {}
    for where, config in configs.items():
        extra = ("--scheduler", str(scheduler_file)) if where == "cluster" else ()
        threads = 1 if where == "cluster" else args.workers  # in this process: as many cores as the workers
        times[where] = [rnnprobe_command(name, config, *extra, threads=threads) for name in ("record", "analyze")]
    check_stores(root / "local", root / "cluster")
    count = check_summaries(root / "local", root / "cluster")
    store = root / "cluster" / "results" / "recordings" / "blt.zarr"
    api = {"local": analyses(store, None, args.workers), "cluster": analyses(store, scheduler_file, 1)}
    for ours, theirs in zip(api["cluster"][1], api["local"][1], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    print(f"{args.stimuli} images, BLT-style convnet (16 maps, 16 x 16, 4 steps), 2 layers: stores equal, the "
          f"{count} numbers of analysis.json equal to 1e-9, every RDM and decoding score to 1e-10")  # fmt: skip
    rows = [(f"rnnprobe {command}", times["local"][k], times["cluster"][k]) for k, command in
            enumerate(("record", "analyze"))]  # fmt: skip
    rows.append(("compute_rdms + decode, every layer", api["local"][0], api["cluster"][0]))
    where = "hosts of their own" if args.hosts else "started by 'dask worker'"
    for name, local, cluster in rows:
        print(f"  {name:36s} in this process ({args.workers} threads) {local:7.1f} s   on {args.workers} workers "
              f"{where} {cluster:7.1f} s   ({local / cluster:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
