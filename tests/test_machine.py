"""rnnprobe.analysis.machine: this machine's description, and the OpenBLAS kernels timed in fresh interpreters."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from threadpoolctl import threadpool_info

from rnnprobe.analysis import machine
from rnnprobe.cli import main
from rnnprobe.errors import ArgumentError, MeasurementError, UnknownNameError

WORKLOADS = dict(machine.WORKLOADS)
SMALL, LARGE = list(WORKLOADS)


@functools.cache  # (an interpreter per kernel, once for all the tests)
def _kernel_in_a_fresh_python(coretype: str | None) -> dict:
    """numpy's BLAS as threadpoolctl describes it in a new interpreter with OPENBLAS_CORETYPE set (or not)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    code = ("import json, numpy; from threadpoolctl import threadpool_info; "
            "print(json.dumps([p for p in threadpool_info() if p['user_api'] == 'blas'][0]))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _numpy_blas() -> dict:
    return _kernel_in_a_fresh_python(os.environ.get("OPENBLAS_CORETYPE"))


def _comparison(seconds: dict, deviation: dict | None = None, default: str = "SkylakeX") -> machine.KernelComparison:
    deviation = deviation or dict.fromkeys(seconds, 1e-15)
    return machine.KernelComparison("openblas", default, default, seconds, deviation, (), WORKLOADS)


def test_describe_machine_reports_the_thread_pools_as_threadpoolctl_does(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    described = machine.describe_machine()
    assert list(described.libraries) == threadpool_info()
    assert described.environment["OMP_NUM_THREADS"] == "1" and "MKL_NUM_THREADS" not in described.environment
    assert described.cores == os.cpu_count()
    blas = next(p for p in threadpool_info() if p["user_api"] == "blas")
    assert described.blas == blas
    assert f"kernel {blas.get('architecture', '?')}" in str(described)
    assert "'OMP_NUM_THREADS': '1'" in str(described)
    before = torch.get_num_threads()
    try:  # torch is loaded: its count is the analyses' budget (rnnprobe.analysis.parallel.library_threads)
        for threads in (1, 3):
            torch.set_num_threads(threads)
            assert machine.describe_machine().workers == threads
            assert f"analyses split their work over {threads} thread(s)" in str(machine.describe_machine())
    finally:
        torch.set_num_threads(before)


def test_the_cuda_devices_torch_sees_are_listed_with_their_memory(monkeypatch):
    """As torch reports them (faked here: two devices; none where torch sees none, as on CI)."""
    fake = type("Properties", (), {"total_memory": 80 * 2**30 + 2**29})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Fake GPU {i}")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: fake)
    described = machine.describe_machine()
    assert described.gpus == ("cuda:0 Fake GPU 0 (80.5 GiB)", "cuda:1 Fake GPU 1 (80.5 GiB)")
    assert "CUDA devices: cuda:0 Fake GPU 0 (80.5 GiB); cuda:1 Fake GPU 1 (80.5 GiB)" in str(described)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert machine.describe_machine().gpus == ()
    assert "intra-op thread(s); CUDA devices: none" in str(machine.describe_machine())


def _lscpu_caches() -> dict[str, int] | None:
    """{"L1d": bytes, ...}: one core's caches as ``lscpu -C`` lists them (None where it cannot)."""
    try:
        listed = subprocess.run(["lscpu", "--caches=NAME,ONE-SIZE,TYPE", "--bytes"], capture_output=True, text=True,
                                check=True).stdout.split("\n")[1:]  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    rows = [line.split() for line in listed if line.strip()]
    return {name: int(size) for name, size, kind in rows if kind != "Instruction"} or None


def test_the_caches_are_the_ones_lscpu_lists():
    expected = _lscpu_caches()
    if expected is None:
        pytest.skip("lscpu -C lists no caches here")
    assert machine.cpu_caches() == expected
    assert machine.describe_machine().caches == expected
    assert "caches of the first core: L1d " in str(machine.describe_machine())


def test_the_caches_are_read_from_sysfs_as_linux_writes_them(tmp_path):
    """Sizes in K, M or bytes; instruction caches left out; an entry that cannot be read left out; no folder:
    nothing (and no cache line in the description)."""
    entries = [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"), (3, "Unified", "105M"),
               (4, "Unified", "")]  # fmt: skip
    for index, (level, kind, size) in enumerate(entries):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(f"{value}\n")
    (tmp_path / "index9").mkdir()  # (no files in it)
    assert machine.cpu_caches(str(tmp_path)) == {"L1d": 48 * 2**10, "L2": 2 * 2**20, "L3": 105 * 2**20}
    assert machine.cpu_caches(str(tmp_path / "absent")) == {}
    described = machine.Machine("cpu", 1, "3.11", "2.4", (), None, None, caches={"L1d": 48 * 2**10, "L2": 2**20})
    assert "caches of the first core: L1d 48 KiB, L2 1 MiB" in str(described)
    assert "caches" not in str(machine.Machine("cpu", 1, "3.11", "2.4", (), None, None))


def test_the_cpu_generation_tells_apart_cpus_of_one_model_name():
    """Family, model and the widest vector extension from /proc/cpuinfo's fields, in the description's first line;
    nothing where the fields are missing."""
    zen4 = {"cpu family": "25", "model": "17", "flags": "avx avx2 fma avx512f avx512bw"}
    assert machine.cpu_generation(zen4) == "family 25, model 17, AVX-512"
    sandy_bridge = {"cpu family": "6", "model": "42", "flags": "sse4_2 avx"}
    assert machine.cpu_generation(sandy_bridge) == "family 6, model 42, AVX"
    assert machine.cpu_generation({"flags": "neon"}) == ""
    assert machine.cpu_generation({}) == ""
    described = machine.Machine("AMD EPYC", 2, "3.11", "2.4", (), None, None, generation="family 25, model 1, AVX2")
    assert str(described).splitlines()[0].startswith("machine: AMD EPYC (family 25, model 1, AVX2), 2 logical cores")
    assert str(machine.Machine("cpu", 1, "3.11", "2.4", (), None, None)).startswith("machine: cpu, 1 logical")


def test_runnable_kernels_follow_the_cpu_flags():
    avx512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
    assert machine.runnable_kernels(frozenset()) == []
    assert machine.runnable_kernels(frozenset({"avx", "avx2"})) == ["SandyBridge"]  # no fma: no Haswell
    every = ["SandyBridge", "Haswell", "SkylakeX"]
    assert machine.runnable_kernels(frozenset({"avx", "avx2", "fma"} | avx512)) == every
    assert machine.runnable_kernels(frozenset({"avx", "avx2", "fma"} | avx512 - {"avx512vl"})) == [
        "SandyBridge", "Haswell"]  # fmt: skip


def test_a_kernel_faster_on_every_product_is_recommended():
    faster = _comparison({"SkylakeX": {SMALL: 2.0, LARGE: 40.0}, "Haswell": {SMALL: 1.5, LARGE: 36.0}})
    assert faster.recommended == "Haswell"
    assert faster.speedups()["Haswell"] == {SMALL: pytest.approx(2.0 / 1.5), LARGE: pytest.approx(40.0 / 36.0)}
    assert "set OPENBLAS_CORETYPE=Haswell" in str(faster)
    # faster by less than 5% on one product: not recommended; the summary says which is faster where
    mixed = _comparison({"SkylakeX": {SMALL: 2.0, LARGE: 40.0}, "Haswell": {SMALL: 1.5, LARGE: 39.0}})
    assert mixed.recommended is None
    assert "Haswell faster on some products" in str(mixed)
    slower = _comparison({"SkylakeX": {SMALL: 2.0, LARGE: 40.0}, "Haswell": {SMALL: 2.0, LARGE: 44.0}})
    assert slower.recommended is None and "nothing to set" in str(slower)


def test_a_kernel_whose_products_differ_from_a_loops_is_never_recommended():
    seconds = {"SkylakeX": {SMALL: 2.0, LARGE: 40.0}, "Haswell": {SMALL: 1.0, LARGE: 20.0}}
    wrong = _comparison(seconds, {"SkylakeX": 1e-16, "Haswell": 1e-6})
    assert wrong.recommended is None
    assert "products off by 1.0e-06" in str(wrong) and "nothing to set" in str(wrong)
    # the faster of two that pass is the one recommended
    seconds["SandyBridge"] = {SMALL: 1.8, LARGE: 38.0}
    assert _comparison(seconds, {"SkylakeX": 1e-16, "Haswell": 1e-6, "SandyBridge": 1e-16}).recommended == "SandyBridge"


def test_another_blas_than_openblas_has_no_kernels_to_set():
    mkl = machine.KernelComparison("mkl", None, None, {}, {}, (), WORKLOADS)
    assert mkl.recommended is None
    assert str(mkl) == "numpy's BLAS is mkl, not OpenBLAS: OPENBLAS_CORETYPE does not apply."
    single = machine.KernelComparison("openblas", None, None, {}, {}, (), WORKLOADS)  # no DYNAMIC_ARCH: no kernel
    assert single.recommended is None and "names no kernel" in str(single)


def test_an_openblas_that_names_no_kernel_is_compared_with_nothing(monkeypatch):
    ran = []

    def child(kernel, spec, timeout):
        ran.append(kernel)
        return {"library": "openblas", "kernel": None, "threads": 1, "seconds": {}, "deviation": {}}

    monkeypatch.setattr(machine, "_run_child", child)
    comparison = machine.compare_blas_kernels(machine.runnable_kernels(machine.cpu_flags()))
    assert ran == [None] and comparison.default is None and "names no kernel" in str(comparison)


@pytest.mark.skipif("avx2" not in machine.cpu_flags() or "fma" not in machine.cpu_flags(), reason="no AVX2 CPU")
def test_each_kernel_runs_in_its_own_interpreter_and_its_products_equal_a_loops():
    numpy_blas = _numpy_blas()
    if numpy_blas.get("internal_api") != "openblas":
        pytest.skip("numpy's BLAS is not OpenBLAS")
    comparison = machine.compare_blas_kernels(["Haswell", "SandyBridge"], sizes=[(3, 40, 64), [1, 300, 128]],
                                              seconds=0.01)  # fmt: skip
    assert comparison.workloads == {"3 x 40 x 64": (3, 40, 64), "1 x 300 x 128": (1, 300, 128)}
    assert comparison.threads == 1
    if (os.cpu_count() or 1) >= 2:
        assert machine.compare_blas_kernels([], sizes=[(1, 8, 8)], threads=2, seconds=0.01).threads == 2
    default = _kernel_in_a_fresh_python(None)["architecture"]
    assert comparison.default == default
    assert comparison.current == next(p for p in threadpool_info() if p["user_api"] == "blas")["architecture"]
    ran = {_kernel_in_a_fresh_python(k)["architecture"] for k in ("Haswell", "SandyBridge")} | {default}
    assert set(comparison.seconds) == ran  # each timed under the kernel it names
    for kernel, times in comparison.seconds.items():
        assert set(times) == set(comparison.workloads) and all(0 < t < 10 for t in times.values())
        assert comparison.deviation[kernel] < 1e-12
    assert not comparison.unavailable


def test_a_kernel_this_cpu_cannot_run_is_refused_before_any_run(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset({"avx", "avx2", "fma"}))
    monkeypatch.setattr(machine, "_run_child", lambda *args: pytest.fail("a timing run started"))
    with pytest.raises(ArgumentError, match=r"cannot run OpenBLAS's SkylakeX kernel \(it lacks avx512bw, avx512cd, "
                       r"avx512dq, avx512f, avx512vl\)\. It runs 'SandyBridge', 'Haswell'"):  # fmt: skip
        machine.compare_blas_kernels(["Haswell", "SkylakeX"])


def test_a_kernel_numpys_openblas_lacks_is_reported_unavailable(monkeypatch):
    if _numpy_blas().get("internal_api") != "openblas":
        pytest.skip("numpy's BLAS is not OpenBLAS")
    monkeypatch.setitem(machine.KERNEL_FLAGS, "Zen", frozenset())  # not in numpy's wheels: OpenBLAS falls back
    comparison = machine.compare_blas_kernels(["Zen"], seconds=0.01)
    assert comparison.unavailable == ("Zen",)
    assert list(comparison.seconds) == [comparison.default]
    assert "not in this OpenBLAS: Zen" in str(comparison)


def test_bad_arguments_are_one_clear_error_each():
    with pytest.raises(UnknownNameError, match=r"kernels: 'Zen3' is not one of OpenBLAS's kernels.*'Haswell'"):
        machine.compare_blas_kernels(["Zen3"])
    with pytest.raises(ArgumentError, match=r"seconds: got 0"):
        machine.compare_blas_kernels(seconds=0)
    if machine.cpu_flags() and "avx512f" not in machine.cpu_flags():
        with pytest.raises(ArgumentError, match=r"kernels: this CPU cannot run OpenBLAS's SkylakeX kernel \(it lacks "):
            machine.compare_blas_kernels(["SkylakeX"])
    for threads in (0, 1.5, True):
        with pytest.raises(ArgumentError, match=r"threads: got .*; pass a positive number of BLAS threads"):
            machine.compare_blas_kernels(threads=threads)
    with pytest.raises(ArgumentError, match=r"timeout: got -1"):
        machine.compare_blas_kernels(timeout=-1)
    nan = float("nan")  # NaN settings: refused, never a timing run of NaN seconds
    with pytest.raises(ArgumentError, match=r"seconds: got nan"):
        machine.compare_blas_kernels(seconds=nan)
    with pytest.raises(ArgumentError, match=r"timeout: got nan"):
        machine.compare_blas_kernels(timeout=nan)
    with pytest.raises(ArgumentError, match=r"sizes: got \(nan, 92, 512\)"):
        machine.compare_blas_kernels(sizes=[(nan, 92, 512)])
    for sizes in ([(1, 2)], [(0, 92, 512)], [(1.5, 92, 512)], [(True, 92, 512)], [92]):
        with pytest.raises(ArgumentError, match=r"sizes: got .*; pass \(steps, rows, units\) as three positive"):
            machine.compare_blas_kernels(sizes=sizes)
    with pytest.raises(ArgumentError, match=r"sizes: \(1, 20000, 20000\) takes more than 2 GiB"):
        machine.compare_blas_kernels(sizes=[(1, 20000, 20000)])
    with pytest.raises(ArgumentError, match=r"sizes: got no sizes"):
        machine.compare_blas_kernels(sizes=[])


def test_a_timing_run_that_fails_or_hangs_is_one_error(monkeypatch):
    monkeypatch.setattr(machine, "_CHILD", "import sys; sys.exit('no numpy here')")
    with pytest.raises(MeasurementError, match=r"failed \(exit status 1\): no numpy here"):
        machine.compare_blas_kernels([], seconds=0.01)
    monkeypatch.setattr(machine.sys, "executable", "/nonexistent/python")
    with pytest.raises(MeasurementError, match=r"could not start '/nonexistent/python'"):
        machine.compare_blas_kernels([], seconds=0.01)
    monkeypatch.undo()
    monkeypatch.setattr(machine, "_CHILD", "import time; time.sleep(30)")
    with pytest.raises(MeasurementError, match=r"timeout: .* took more than 0.5 s"):
        machine.compare_blas_kernels([], seconds=0.01, timeout=0.5)


def test_the_machine_command_prints_the_description_and_the_kernels(capsys):
    assert main(["machine"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("machine: ") and "blas:" in printed and "RDM movie block" not in printed
    if _numpy_blas().get("internal_api") == "openblas":
        assert main(["machine", "--kernels", "--seconds", "0.01"]) == 0
        printed = capsys.readouterr().out
        assert "RDM movie block (13 x 92 x 512)" in printed and "median time of one call" in printed
        assert main(["machine", "--kernels", "--seconds", "0.01", "--size", "2,10,20", "--size", "1,30,8"]) == 0
        printed = capsys.readouterr().out
        assert "2 x 10 x 20" in printed and "1 x 30 x 8" in printed and "RDM movie block" not in printed
        assert "\n1 thread(s), median time" in printed
        assert main(["machine", "--kernels", "--seconds", "0.01", "--size", "2,10,20", "--threads", "2"]) == 0
        assert "\n2 thread(s), median time" in capsys.readouterr().out
    assert main(["machine", "--kernels", "--size", "5,x,3"]) == 2
    assert "--size: got ['5,x,3']; pass STEPS,ROWS,UNITS as integers" in capsys.readouterr().err
    for extra in (["--size", "2,10,20"], ["--threads", "2"]):
        assert main(["machine", *extra]) == 2
        assert "--size/--threads: they set what --kernels times; add --kernels." in capsys.readouterr().err
