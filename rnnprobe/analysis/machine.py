"""What this machine computes rnnprobe's numbers with, and which of OpenBLAS's kernels is fastest on it.

rnnprobe's heavy analyses are matrix products in numpy's BLAS (OpenBLAS in numpy's wheels). OpenBLAS
carries one kernel per family of x86-64 CPUs and picks one when it loads, by the CPU's features; the
environment variable ``OPENBLAS_CORETYPE`` overrides the choice. The kernel it picks is not always the
fastest: on an AMD EPYC Zen 4 (AVX-512 run on 256-bit units) its SkylakeX kernel takes a block of an RDM
movie's products (13 steps of 92 conditions x 512 units) in 2.0 ms where its Haswell kernel takes 1.5 ms;
on a Zen 5 the SkylakeX kernel is the faster. The kernel is chosen when the library loads, so it cannot be
switched inside a running Python: :func:`compare_blas_kernels` times each kernel this CPU can run in a
fresh interpreter and says which to set.

``rnnprobe machine`` prints :func:`describe_machine`; ``rnnprobe machine --kernels`` also runs
:func:`compare_blas_kernels`. (Beside :mod:`rnnprobe.analysis.parallel`, the one thread policy: where the
analyses compute.)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError, MeasurementError, UnknownNameError, format_choices
from .parallel import _loaded_torch, library_threads

__all__ = ["KernelComparison", "Machine", "compare_blas_kernels", "describe_machine"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")

# OpenBLAS's x86-64 kernels in numpy's and scipy's wheels (their DYNAMIC_LIST), oldest first, with the CPU
# features (/proc/cpuinfo flags) each needs
KERNEL_FLAGS = {
    "SandyBridge": frozenset({"avx"}),
    "Haswell": frozenset({"avx2", "fma"}),
    "SkylakeX": frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
}

# the products timed (steps, rows, units: ``steps`` Gram matrices x x' of rows x units): what rnnprobe's
# RDMs spend their time on, small (a block of an RDM movie, 92 conditions) and large (one RDM of 1000)
WORKLOADS = {
    "RDM movie block (13 x 92 x 512)": (13, 92, 512),
    "one large RDM (1000 x 2048)": (1, 1000, 2048),
}

FASTER = 1.05  # a kernel is recommended where it is at least this much faster on every product timed
TOLERANCE = 1e-10  # largest relative deviation of a kernel's products from a loop's (no BLAS) accepted


@dataclass(frozen=True)
class Machine:
    """The CPU, numpy's BLAS and the thread settings of this process (:func:`describe_machine`)."""

    cpu: str
    cores: int
    python: str
    numpy: str
    libraries: tuple[dict[str, Any], ...]  # threadpoolctl's description of each native thread pool
    torch: str | None  # torch's version (None: torch not imported)
    torch_threads: int | None  # its intra-op threads
    environment: dict[str, str] = field(default_factory=dict)  # the thread and kernel variables set
    workers: int = 1  # the threads rnnprobe's analyses split their work over (parallel.library_threads)
    caches: dict[str, int] = field(default_factory=dict)  # the first core's data caches in bytes (cpu_caches)
    generation: str = ""  # the CPU's family, model and widest vector extension (cpu_generation)
    gpus: tuple[str, ...] = ()  # the CUDA devices torch sees, with their memory (cuda_devices; torch imported)

    def __str__(self) -> str:
        """The description printed by every benchmark and by ``rnnprobe machine``."""
        cpu = f"{self.cpu} ({self.generation})" if self.generation else self.cpu
        lines = [f"machine: {cpu}, {self.cores} logical cores, Python {self.python}, numpy {self.numpy}"]
        for pool in self.libraries:
            lines.append(f"  {pool.get('user_api')}: {pool.get('internal_api')} {pool.get('version')}, kernel "
                         f"{pool.get('architecture', '?')}, {pool.get('num_threads')} thread(s)")  # fmt: skip
        if self.torch is not None:
            gpus = "; ".join(self.gpus) or "none"
            lines.append(f"  torch {self.torch}: {self.torch_threads} intra-op thread(s); CUDA devices: {gpus}")
        if self.caches:
            lines.append("  caches of the first core: " + ", ".join(f"{k} {_size(v)}" for k, v in self.caches.items()))
        lines.append(f"  environment: {self.environment or 'no thread or kernel variables set'}")
        lines.append(f"  rnnprobe: analyses split their work over {self.workers} thread(s) (torch's, else BLAS's)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        blas = self.blas
        return f"<Machine: {self.cpu}, {self.cores} cores, BLAS {blas.get('internal_api')} {blas.get('architecture')}>"

    @property
    def blas(self) -> dict[str, Any]:
        """The description of numpy's BLAS by threadpoolctl (the first BLAS loaded; ``architecture``: its kernel)."""
        return _blas(self.libraries)


def describe_machine(*, torch: bool = False) -> Machine:
    """Describe the CPU, numpy's BLAS library and kernel, and the thread settings of this process.

    Parameters
    ----------
    torch : bool
        Import torch to report its version and threads (its own OpenMP and BLAS then appear among the
        libraries); without it, torch is reported only where it is already imported.

    Returns
    -------
    Machine
        Printed (``str``), the lines every benchmark prints beside its figures.

    Examples
    --------
    >>> machine = describe_machine()
    >>> machine.cores >= 1 and str(machine).startswith("machine: ")
    True
    """
    import numpy as np
    from threadpoolctl import threadpool_info

    if torch:
        import torch as _  # noqa: F401
    module = _loaded_torch()  # (None while another thread still imports it)
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        python=platform.python_version(),
        numpy=np.__version__,
        libraries=tuple(threadpool_info()),
        torch=module.__version__ if module is not None else None,
        torch_threads=module.get_num_threads() if module is not None else None,
        environment={k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        workers=library_threads(),
        caches=cpu_caches(),
        generation=cpu_generation(),
        gpus=cuda_devices(module) if module is not None else (),
    )


def cuda_devices(torch: Any) -> tuple[str, ...]:
    """The CUDA devices ``torch`` (the module) sees, each as ``cuda:i name (memory)``: where ``device="cuda"`` runs.

    Examples
    --------
    >>> import torch
    >>> cuda_devices(torch) == () or cuda_devices(torch)[0].startswith("cuda:0 ")
    True
    """
    if not torch.cuda.is_available():
        return ()
    return tuple(f"cuda:{i} {torch.cuda.get_device_name(i)} "
                 f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.1f} GiB)"
                 for i in range(torch.cuda.device_count()))  # fmt: skip


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; the platform's processor name elsewhere)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_generation(fields: dict[str, str] | None = None) -> str:
    """The CPU's family and model numbers and its widest vector extension, which tell apart CPUs of one model name
    (a VM's "AMD EPYC" is a Zen 3, 4 or 5: family 25 model 1, family 25 model 17, family 26), and on which the
    BLAS kernels and numpy's SIMD sorts depend; empty where /proc/cpuinfo cannot be read. ``fields``: the
    /proc/cpuinfo fields to read them from (default: this machine's).

    Examples
    --------
    >>> cpu_generation({"cpu family": "25", "model": "1", "flags": "fpu sse2 avx avx2 fma"})
    'family 25, model 1, AVX2'
    """
    if fields is None:
        fields = {name: _cpuinfo_field(name) or "" for name in ("cpu family", "model", "flags")}
    flags = set(fields.get("flags", "").split())
    widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")) if flag in flags),
                  None)  # fmt: skip
    parts = [f"family {fields['cpu family']}" if fields.get("cpu family") else "",
             f"model {fields['model']}" if fields.get("model") else "", widest or ""]  # fmt: skip
    return ", ".join(part for part in parts if part)


def cpu_caches(root: str = "/sys/devices/system/cpu/cpu0/cache") -> dict[str, int]:
    """The first core's data and unified caches in bytes by level, {"L1d": ..., "L2": ..., "L3": ...}, as Linux
    reports them (sysfs; empty where it cannot be read). A level shared by several cores (L3 mostly) is the
    whole cache, not a core's share. rnnprobe's blocked analyses size their blocks for caches of these sizes
    (an RDM's rows in blocks of 512 KiB: half of the 1 MiB L2 of the AMD EPYCs measured).

    Examples
    --------
    >>> set(cpu_caches()) <= {"L1d", "L2", "L3", "L4"}
    True
    """
    caches = {}
    try:
        entries = sorted(e for e in os.listdir(root) if e.startswith("index"))
    except OSError:
        return caches
    for entry in entries:
        try:
            level, kind, size = (_read(os.path.join(root, entry, name)) for name in ("level", "type", "size"))
            if kind != "Instruction":
                caches[f"L{int(level)}{'d' if kind == 'Data' else ''}"] = _bytes(size)
        except (OSError, ValueError):  # (an entry the kernel leaves unreadable or empty: left out)
            continue
    return caches


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _bytes(size: str) -> int:
    """A size as sysfs writes it ("32K", "1024K", "32M", or a plain number) in bytes."""
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:].upper(), 1)
    return int(size.rstrip("KkMmGg")) * scale


def _size(n: int) -> str:
    """1048576 -> "1 MiB"; 49152 -> "48 KiB"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo; empty where it cannot be read)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def runnable_kernels(flags: frozenset[str]) -> list[str]:
    """OpenBLAS's kernels (of :data:`KERNEL_FLAGS`) that a CPU with these feature flags runs, oldest first.

    Examples
    --------
    >>> runnable_kernels(frozenset({"avx", "avx2", "fma"}))
    ['SandyBridge', 'Haswell']
    """
    return [kernel for kernel, needs in KERNEL_FLAGS.items() if needs <= flags]


def _blas(libraries: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The description (threadpoolctl's) of the first BLAS loaded (numpy's, unless another was loaded first)."""
    return next((p for p in libraries if p.get("user_api") == "blas"), {})


# run in a fresh interpreter per kernel (the kernel is chosen when OpenBLAS loads): times each workload's
# products on the threads given and checks them against a loop's (einsum without BLAS) on a few rows
_CHILD = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_info

spec = json.loads(sys.argv[1])
blas = next((p for p in threadpool_info() if p.get("user_api") == "blas"), {})
out = {"library": blas.get("internal_api"), "kernel": blas.get("architecture"), "threads": blas.get("num_threads"),
       "seconds": {}, "deviation": {}}
rng = np.random.default_rng(0)
for name, (steps, rows, units) in spec["workloads"].items():
    x = rng.standard_normal((steps, rows, units))
    xt = x.transpose(0, 2, 1)
    gram = np.empty((steps, rows, rows))
    np.matmul(x, xt, out=gram)
    some = min(rows, 8)
    loop = np.einsum("tik,tjk->tij", x[:, :some], x, optimize=False)
    out["deviation"][name] = float(np.abs(gram[:, :some] - loop).max() / np.abs(loop).max())
    times, start = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < spec["seconds"] and len(times) < 10000):
        t0 = time.perf_counter()
        np.matmul(x, xt, out=gram)
        times.append(time.perf_counter() - t0)
    out["seconds"][name] = sorted(times)[len(times) // 2]
print(json.dumps(out))
"""


@dataclass(frozen=True)
class KernelComparison:
    """Each OpenBLAS kernel's time for rnnprobe's products on this CPU (:func:`compare_blas_kernels`)."""

    library: str | None  # numpy's BLAS (threadpoolctl's internal_api): "openblas", "mkl", ...
    default: str | None  # the kernel OpenBLAS picks on this CPU (no OPENBLAS_CORETYPE; None: not OpenBLAS, or one
    # built for a single CPU)
    current: str | None  # the kernel of this process
    seconds: dict[str, dict[str, float]]  # {kernel: {workload: median seconds of one call}}
    deviation: dict[str, float]  # {kernel: largest relative deviation of its products from a loop's}
    unavailable: tuple[str, ...]  # kernels asked for that this numpy's OpenBLAS does not hold
    workloads: dict[str, tuple[int, int, int]]
    threads: int = 1  # OpenBLAS's threads in each timing run (as it reports them: it caps them at the cores)

    def speedups(self) -> dict[str, dict[str, float]]:
        """{kernel: {workload: the default kernel's time / this kernel's}} (empty for another BLAS)."""
        if self.default is None:
            return {}
        base = self.seconds[self.default]
        return {k: {w: base[w] / s for w, s in times.items()} for k, times in self.seconds.items()}

    @property
    def recommended(self) -> str | None:
        """The kernel to set: at least 5% faster than the default on every product timed, its products equal
        to a loop's to 1e-10; None where no kernel is (keep OpenBLAS's choice, or choose by the sizes).
        """
        best, best_gain = None, 1.0
        for kernel, gains in self.speedups().items():
            gain = min(gains.values())
            if kernel != self.default and self.deviation[kernel] <= TOLERANCE and gain >= FASTER and gain > best_gain:
                best, best_gain = kernel, gain
        return best

    def __str__(self) -> str:
        """A table of the kernels' times and the advice."""
        if self.library != "openblas":
            return (f"numpy's BLAS is {self.library or 'not found'}, not OpenBLAS: OPENBLAS_CORETYPE does not "
                    f"apply.")  # fmt: skip
        if self.default is None:
            return "numpy's OpenBLAS names no kernel (built for one CPU): it has no other kernel to choose."
        lines = [
            f"numpy's BLAS: OpenBLAS, kernel {self.current} in this process, {self.default} by OpenBLAS's choice "
            f"for this CPU;\n{self.threads} thread(s), median time of one call (speed-up against {self.default}):"
        ]
        width = max(len(k) for k in self.seconds)
        columns = {w: max(len(w), 20) for w in self.workloads}
        lines.append("  " + " " * width + "".join(f"  {w:>{columns[w]}}" for w in self.workloads))
        for kernel, gains in self.speedups().items():
            cells = "".join(f"  {f'{self.seconds[kernel][w] * 1e3:.3f} ms ({gains[w]:.2f}x)':>{columns[w]}}"
                            for w in self.workloads)  # fmt: skip
            flag = "" if self.deviation[kernel] <= TOLERANCE else f"  products off by {self.deviation[kernel]:.1e}"
            lines.append(f"  {kernel:<{width}}{cells}{flag}")
        if self.unavailable:
            lines.append(f"  not in this OpenBLAS: {', '.join(self.unavailable)}")
        lines.append(self._advice())
        return "\n".join(lines)

    def _advice(self) -> str:
        best = self.recommended
        if best is not None:
            gains = self.speedups()[best]
            return (f"{best} is faster on every product ({min(gains.values()):.2f}-"
                    f"{max(gains.values()):.2f}x): set OPENBLAS_CORETYPE={best} in the environment "
                    f"before Python starts (numpy's and scipy's OpenBLAS read it when they load; processes "
                    f"started from that environment, dask workers included, inherit it).")  # fmt: skip
        others = [
            k for k, gains in self.speedups().items()
            if k != self.default and self.deviation[k] <= TOLERANCE and max(gains.values()) >= FASTER
        ]  # fmt: skip
        if others:
            return (f"{', '.join(others)} faster on some products and not on others: OpenBLAS's choice "
                    f"({self.default}) is kept; set OPENBLAS_CORETYPE to the kernel faster at your sizes.")  # fmt: skip
        return f"No kernel is faster than OpenBLAS's choice ({self.default}) here: nothing to set."


def compare_blas_kernels(
    kernels: list[str] | None = None,
    *,
    sizes: Sequence[tuple[int, int, int]] | None = None,
    threads: int = 1,
    seconds: float = 0.5,
    timeout: float = 300.0,
) -> KernelComparison:
    """Time rnnprobe's products under each OpenBLAS kernel this CPU runs, each in a fresh Python.

    OpenBLAS picks its kernel when it loads (``OPENBLAS_CORETYPE`` overrides the pick), so each kernel runs
    in an interpreter of its own: numpy's batched Gram products (by default those of :data:`WORKLOADS`: a
    block of an RDM movie's steps, one large RDM) on ``threads`` threads, each checked against a loop's products
    (einsum without BLAS) on a few rows.

    Parameters
    ----------
    kernels : list of str, optional
        Kernels to time besides OpenBLAS's own choice (names of :data:`KERNEL_FLAGS`); default: every one
        this CPU's features allow.
    sizes : list of (steps, rows, units), optional
        Products to time instead of :data:`WORKLOADS`: ``steps`` Gram matrices x x' of ``rows`` x ``units``
        (an RDM movie of 92 conditions x 512 units over 50 steps: (50, 92, 512); one RDM of 2000 conditions:
        (1, 2000, 4096)). At most 2 GiB of arrays each.
    threads : int
        OpenBLAS's threads in each timing run (1: the products of rnnprobe's workers, one thread each; the
        cores: a large RDM computed alone).
    seconds : float
        Time spent repeating each product per kernel (at least 3 calls; the median is kept).
    timeout : float
        Seconds each interpreter may take.

    Returns
    -------
    KernelComparison
        Printed (``str``): the table and the advice; ``recommended``: the kernel to set, or None.

    Examples
    --------
    >>> comparison = compare_blas_kernels([], seconds=0.01)  # OpenBLAS's own kernel only
    >>> list(comparison.seconds) == ([comparison.default] if comparison.library == "openblas" else [])
    True
    """
    from threadpoolctl import threadpool_info

    workloads = _workloads(sizes)
    flags = cpu_flags()
    for kernel in kernels or ():
        if kernel not in KERNEL_FLAGS:
            raise UnknownNameError(
                f"kernels: {kernel!r} is not one of OpenBLAS's kernels in numpy's wheels. Available: "
                f"{format_choices(list(KERNEL_FLAGS))}."
            )
        missing = sorted(KERNEL_FLAGS[kernel] - flags)
        if flags and missing:  # (flags unknown off Linux: OpenBLAS itself refuses or falls back)
            raise ArgumentError(
                f"kernels: this CPU cannot run OpenBLAS's {kernel} kernel (it lacks {', '.join(missing)}). It runs "
                f"{format_choices(runnable_kernels(flags))}."
            )
    if not (isinstance(seconds, (int, float)) and 0 < seconds <= 60):
        raise ArgumentError(f"seconds: got {seconds!r}; pass the time per product and kernel, in (0, 60] seconds.")
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ArgumentError(f"threads: got {threads!r}; pass a positive number of BLAS threads (1 by default).")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ArgumentError(f"timeout: got {timeout!r}; pass a positive number of seconds.")
    spec = {"workloads": workloads, "seconds": seconds, "threads": threads}
    own = _run_child(None, spec, timeout)
    ran = own["threads"] or threads
    if own["library"] != "openblas" or not own["kernel"]:  # (an OpenBLAS built for one CPU names no kernel)
        return KernelComparison(own["library"], None, None, {}, {}, (), workloads, ran)
    default = own["kernel"]
    times, deviation, unavailable = {default: own["seconds"]}, {default: max(own["deviation"].values())}, []
    for kernel in runnable_kernels(flags) if kernels is None else kernels:
        if kernel.lower() == default.lower():
            continue
        run = _run_child(kernel, spec, timeout)
        if (run["kernel"] or "").lower() != kernel.lower():  # not in this build: OpenBLAS fell back
            unavailable.append(kernel)
            continue
        times[run["kernel"]], deviation[run["kernel"]] = run["seconds"], max(run["deviation"].values())
    current = _blas(tuple(threadpool_info())).get("architecture")  # (OPENBLAS_CORETYPE may set another here)
    return KernelComparison("openblas", default, current, times, deviation, tuple(unavailable), workloads, ran)


def _workloads(sizes: Sequence[tuple[int, int, int]] | None) -> dict[str, tuple[int, int, int]]:
    """{name: (steps, rows, units)} of the products to time, checked (:data:`WORKLOADS` by default)."""
    if sizes is None:
        return dict(WORKLOADS)
    workloads = {}
    for size in sizes:
        ints = isinstance(size, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        if not ints or len(size) != 3 or min(size) < 1:
            raise ArgumentError(
                f"sizes: got {size!r}; pass (steps, rows, units) as three positive integers, e.g. (50, 92, 512) for "
                f"an RDM movie of 92 conditions x 512 units over 50 steps."
            )
        steps, rows, units = size
        if 8 * steps * rows * (units + rows) > 2**31:
            raise ArgumentError(f"sizes: {tuple(size)} takes more than 2 GiB of arrays; time fewer steps.")
        workloads[f"{steps} x {rows} x {units}"] = (steps, rows, units)
    if not workloads:
        raise ArgumentError("sizes: got no sizes; pass at least one (steps, rows, units), or None for the default.")
    return workloads


def _run_child(kernel: str | None, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The timings of :data:`_CHILD` in a fresh interpreter under ``kernel`` (None: OpenBLAS's own choice)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    threads = str(spec["threads"])
    env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if kernel is not None:
        env["OPENBLAS_CORETYPE"] = kernel
    what = f"the timing run with OPENBLAS_CORETYPE={kernel}" if kernel else "the timing run with OpenBLAS's kernel"
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise MeasurementError(f"timeout: {what} took more than {timeout:g} s; pass a larger timeout.") from exc
    except OSError as exc:  # (an embedded Python whose sys.executable is no interpreter)
        raise MeasurementError(f"{what} could not start {sys.executable!r} ({exc}): a Python interpreter is "
                               f"needed to time each kernel in a process of its own.") from exc  # fmt: skip
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise MeasurementError(f"{what} failed (exit status {done.returncode}): {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])
