"""Recording and RDMs on a dask LocalCluster (2 worker processes): equal to the in-memory path."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import os
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("distributed")

import dask
from distributed import Client, LocalCluster

import rnnprobe
from rnnprobe import Recording
from rnnprobe.analysis import compute_rdms
from rnnprobe.errors import (
    ArgumentError,
    ArgumentTypeError,
    NonFiniteError,
    RnnprobeError,
    ShapeError,
    StoreExistsError,
    StoreFormatError,
)
from rnnprobe.models import BLT


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


def _model_and_stimuli(n: int = 60):
    torch.manual_seed(0)
    model = BLT("BLT", image_size=8, maps=4, steps=3)
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return model, x, {"label": np.arange(n) % 4}


def test_a_sharded_recording_equals_the_in_memory_one(client, tmp_path):
    model, x, meta = _model_and_stimuli()
    sharded = rnnprobe.record(model, x, metadata=meta, store=tmp_path / "rec.zarr", client=client, chunk_stimuli=7,
                              progress=False)  # fmt: skip
    memory = rnnprobe.record(model, x, metadata=meta, progress=False)
    assert sharded.layers == memory.layers and sharded.sources() == {(tmp_path / "rec.zarr").resolve()}
    for layer in memory.layers:
        np.testing.assert_array_equal(sharded.get(layer), memory.get(layer))
        np.testing.assert_array_equal(sharded.times[layer], memory.times[layer])
    np.testing.assert_array_equal(sharded.column("label"), meta["label"])
    assert sharded.provenance["n_stimuli"] == 60 and "scheduler" in sharded.provenance["cluster"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left
    assert not (tmp_path / "rec.zarr" / ".rnnprobe-regions").exists()


def test_dask_backed_rdms_equal_the_in_memory_ones(client, tmp_path):
    model, x, meta = _model_and_stimuli()
    rnnprobe.record(model, x, metadata=meta, store=tmp_path / "rec.zarr", progress=False)
    lazy = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks={"stimuli": 16, "time": 2})
    assert chunked.is_dask and not lazy.is_dask
    assert chunked.to_dask("layer1").chunks[:2] == ((16, 16, 16, 12), (2, 1))
    for distance in ("correlation", "cosine", "euclidean", "euclidean_plain"):
        for descriptor in (None, "label"):
            for selection in ({}, {"time": [0, 2], "stimuli": slice(5, 50)}):
                expected = compute_rdms(lazy, "layer1", distance=distance, descriptor=descriptor, **selection)
                got = compute_rdms(chunked, "layer1", distance=distance, descriptor=descriptor, **selection)
                np.testing.assert_allclose(got.dissimilarities, expected.dissimilarities, rtol=0, atol=1e-10)
                np.testing.assert_array_equal(got.rdm_descriptors["time"], expected.rdm_descriptors["time"])
    np.testing.assert_array_equal(
        chunked.get("layer0", stimuli=[3, 1], time=1), lazy.get("layer0", stimuli=[3, 1], time=1)
    )
    array = chunked.to_xarray("layer1")
    assert hasattr(array.data, "dask") and array.data.chunks[0] == (16, 16, 16, 12)


def test_blockwise_correlation_rdms_give_constant_patterns_nan_as_in_memory(client, tmp_path):
    """A pattern of 0.1s (a spread of rounding once centred): NaN in the blockwise RDMs as in memory."""
    x = np.random.default_rng(3).normal(size=(30, 2, 60))
    x[4] = 0.1
    Recording({"h": x}).save(tmp_path / "c.zarr")
    with pytest.warns(rnnprobe.errors.RnnprobeWarning, match="NaN at 2 time step"):
        got = compute_rdms(Recording.load(tmp_path / "c.zarr", chunks={"stimuli": 8}), "h")
    with pytest.warns(rnnprobe.errors.RnnprobeWarning, match="NaN at 2 time step"):
        expected = compute_rdms(Recording({"h": x}), "h")
    assert np.isnan(got.matrices()[:, 4, 5:]).all() and np.isnan(got.dissimilarities).sum() == 2 * 29
    np.testing.assert_allclose(got.dissimilarities, expected.dissimilarities, rtol=0, atol=1e-10)


@pytest.mark.parametrize("distance", ["correlation", "euclidean"])
def test_blockwise_rdms_of_many_conditions_by_rows_on_two_threads_equal_the_in_memory_ones(
    client, tmp_path, monkeypatch, distance
):
    """The client forms the distances of many conditions from the Gram matrices by blocks of rows (as from 8
    MiB a step; here from 150 conditions), split across its threads: equal to the in-memory RDMs."""
    import torch

    import rnnprobe.analysis.rsa.triangles as triangles

    monkeypatch.setattr(triangles, "ROWS_BYTES", 150**2 * 8)
    taken = []
    rows = triangles.upper_triangle_rows
    monkeypatch.setattr(triangles, "upper_triangle_rows", lambda *a, **k: taken.append(k["threads"]) or rows(*a, **k))
    monkeypatch.setattr("rnnprobe.analysis.rsa.compute.upper_triangle_rows", triangles.upper_triangle_rows)
    x = np.random.default_rng(4).normal(size=(150, 2, 40))
    Recording({"h": x}).save(tmp_path / "m.zarr")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = compute_rdms(Recording.load(tmp_path / "m.zarr", chunks={"stimuli": 64}), "h", distance=distance)
    finally:
        torch.set_num_threads(before)
    expected = compute_rdms(Recording({"h": x}), "h", distance=distance)
    assert taken[0] == 2  # (the blockwise call; then the in-memory one's)
    np.testing.assert_allclose(got.dissimilarities, expected.dissimilarities, rtol=1e-10, atol=1e-12)


def test_blockwise_distances_of_patterns_far_from_the_origin_keep_their_digits(client, tmp_path):
    """Patterns 1e4 from the origin that differ by 1e-3: the blockwise Gram matrices are taken again of the
    patterns centred across conditions, as in memory; the distances of the differences to 1e-10."""
    x = 1e4 + 1e-3 * np.random.default_rng(5).normal(size=(30, 2, 20))
    Recording({"h": x}).save(tmp_path / "far.zarr")
    got = compute_rdms(Recording.load(tmp_path / "far.zarr", chunks={"stimuli": 8}), "h", distance="euclidean")
    i, j = np.triu_indices(30, 1)
    expected = ((x[i] - x[j]) ** 2).mean(axis=2).T
    np.testing.assert_allclose(got.dissimilarities, expected, rtol=1e-10)


def test_nan_states_are_refused_by_the_blockwise_rdms(client, tmp_path):
    states = np.random.default_rng(0).normal(size=(20, 3, 5))
    states[4, 1, 2] = np.nan
    Recording({"h": states}).save(tmp_path / "nan.zarr")
    chunked = Recording.load(tmp_path / "nan.zarr", chunks=5)
    with pytest.raises(rnnprobe.errors.NonFiniteError, match="NaN"):
        compute_rdms(chunked, "h")
    assert compute_rdms(chunked, "h", time=[0]).dissimilarities.shape == (1, 190)  # step 0 is finite


@pytest.mark.parametrize("with_client", [True, False])
def test_crossnobis_and_mahalanobis_rdms_of_a_dask_backed_recording_are_blockwise(
    client, tmp_path, monkeypatch, with_client
):
    """Crossnobis in blocks of steps as tasks (each reading its steps only), Mahalanobis as one graph of Gram
    matrices: equal to the in-memory RDMs, the layer never read whole; fold errors before any read; NaN refused."""
    import dask

    from rnnprobe.analysis import blockwise as shared
    from rnnprobe.analysis.rsa import blockwise, compute

    rng = np.random.default_rng(9)
    image, run = np.repeat(np.arange(6), 8), np.tile(np.arange(4), 12)
    states = rng.normal(size=(48, 5, 2, 4)) + image[:, None, None, None] * 0.3
    uneven = run.copy()
    uneven[1] = 2  # image 0 three times in run 2, once in run 1: unbalanced folds (per-fold means)
    metadata = {"image": image, "run": run, "uneven": uneven}
    Recording({"h": states}, metadata=metadata).save(tmp_path / "rec.zarr")
    whole = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks={"stimuli": 13, "time": 2})
    noise = np.linalg.inv(np.cov(rng.normal(size=(8, 30))) + np.eye(8))
    cases = [
        {"distance": "crossnobis", "descriptor": "image"},
        {
            "distance": "crossnobis",
            "descriptor": "image",
            "cv_descriptor": "uneven",
            "time": [0, 3, 4],
            "stimuli": np.flatnonzero(image != 2),
        },
        {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run", "noise": noise},
        {"distance": "mahalanobis", "descriptor": "image", "noise": noise},
        {"distance": "mahalanobis", "noise": noise, "stimuli": slice(2, 30)},  # (whitened by P's Cholesky factor)
        {"distance": "mahalanobis", "noise": noise - np.linalg.eigvalsh(noise).mean() * np.eye(8)},  # (indefinite)
    ]
    expected = [compute_rdms(whole, "h", **case) for case in cases]
    real_read, reads = blockwise.layer_states, []
    for sums_fit in (True, False):  # crossnobis: the folds' sums as one graph, or blocks of steps as tasks
        reads.clear()
        with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
            patch.setattr(compute, "layer_states", None)  # the in-memory path would read the layer whole
            patch.setattr(blockwise, "time_blocks", lambda n, p, positions, **kw: np.array_split(positions, 3))
            if not sums_fit:
                patch.setattr(blockwise, "BLOCK_BYTES", 24 * 5 * 8 * 8 - 1)  # just short of the sums of 24 groups
            if not with_client:  # (a worker's reads are not seen here)
                patch.setattr(shared, "active_client", lambda: None)
                patch.setattr(blockwise, "layer_states", lambda *a, **k: reads.append(k["time"].size) or
                              real_read(*a, **k))  # fmt: skip
            got = [compute_rdms(chunked, "h", **case) for case in cases]
        for case, ours, reference in zip(cases, got, expected, strict=True):
            np.testing.assert_allclose(ours.dissimilarities, reference.dissimilarities, rtol=0, atol=1e-10,
                                       err_msg=case)  # fmt: skip
            np.testing.assert_array_equal(ours.rdm_descriptors["time"], reference.rdm_descriptors["time"])
        # the first and third cases' 5 steps in 3 blocks each (the second's 20 groups x 3 steps still fit)
        blocks = [] if sums_fit else [2, 2, 1, 2, 2, 1]
        assert reads == ([] if with_client else blocks)
    with monkeypatch.context() as patch:
        patch.setattr(blockwise, "layer_states", None)
        with pytest.raises(ArgumentError, match=r"fold 3 leaves conditions \[5\]"):
            compute_rdms(chunked, "h", distance="crossnobis", descriptor="image", cv_descriptor="run",
                         stimuli=np.flatnonzero((image != 5) | (run != 3)))  # fmt: skip
        with pytest.raises(rnnprobe.errors.ShapeError, match="noise"):
            compute_rdms(chunked, "h", distance="mahalanobis", noise=np.eye(3))
    bad = states.copy()
    bad[30, 2, 1, 0] = np.inf
    Recording({"h": bad}, metadata=metadata).save(tmp_path / "bad.zarr")
    for distance, noise_ in (("crossnobis", None), ("mahalanobis", noise)):
        with pytest.raises(NonFiniteError):
            compute_rdms(Recording.load(tmp_path / "bad.zarr", chunks=13), "h", distance=distance,
                         descriptor="image", noise=noise_)  # fmt: skip


@pytest.mark.parametrize("with_client", [True, False])
def test_blockwise_rdms_of_conditions_outnumbering_units_come_from_blocks_of_steps(
    client, tmp_path, monkeypatch, with_client
):
    """Conditions outnumbering units sixfold (from 1024 conditions: the thresholds lowered here, on the client):
    blocks of steps as tasks, each reading its steps and computing their RDMs as in memory; no graph of Gram
    matrices; equal to the in-memory RDMs for every distance, with condition means and selections; NaN refused."""
    import dask

    from rnnprobe.analysis import blockwise as shared
    from rnnprobe.analysis.rsa import blockwise, compute, triangles

    rng = np.random.default_rng(11)
    x = rng.normal(size=(60, 5, 3)) + 0.2
    Recording({"h": x}, metadata={"label": np.arange(60) % 20}).save(tmp_path / "few.zarr")
    whole = Recording.load(tmp_path / "few.zarr")
    chunked = Recording.load(tmp_path / "few.zarr", chunks={"stimuli": 16, "time": 2})
    noise = np.linalg.inv(np.cov(rng.normal(size=(3, 30))) + np.eye(3))
    cases = [{"distance": distance} for distance in ("correlation", "cosine", "euclidean", "euclidean_plain")]
    cases += [{"distance": "mahalanobis", "noise": noise, "stimuli": slice(2, 50)},
              {"distance": "euclidean", "descriptor": "label", "time": [0, 3, 4]}]  # fmt: skip
    expected = [compute_rdms(whole, "h", **case) for case in cases]
    real_read, reads = compute.layer_states, []
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
        patch.setattr(triangles, "ROWS_BYTES", 8)
        patch.setattr(blockwise, "symmetric_gram", None)  # (the graph of Gram matrices)
        patch.setattr(blockwise, "time_blocks", lambda n, u, positions, **kw: np.array_split(positions, 2))
        if not with_client:  # (a worker's reads are not seen here)
            patch.setattr(shared, "active_client", lambda: None)
            patch.setattr(compute, "layer_states", lambda *a, **k: reads.append(len(k["time"])) or real_read(*a, **k))
        got = [compute_rdms(chunked, "h", **case) for case in cases]
        bad = x.copy()
        bad[7, 3, 1] = np.nan
        Recording({"h": bad}).save(tmp_path / "bad.zarr")
        with pytest.raises(NonFiniteError, match="NaN"):
            compute_rdms(Recording.load(tmp_path / "bad.zarr", chunks=16), "h", distance="euclidean")
    for case, ours, reference in zip(cases, got, expected, strict=True):
        np.testing.assert_allclose(ours.dissimilarities, reference.dissimilarities, rtol=0, atol=1e-10, err_msg=case)
        np.testing.assert_array_equal(ours.rdm_descriptors["time"], reference.rdm_descriptors["time"])
    assert reads == ([] if with_client else [3, 2] * 5 + [2, 1] + [3, 2])  # (the NaN: in the second block)


class _FailsOn(torch.nn.Module):
    """Raises (or, with ``kill``, ends its worker process) on stimuli whose first value is 42."""

    def __init__(self, kill: bool) -> None:
        super().__init__()
        self.kill = kill
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        if (x[:, 0, 0] == 42).any():
            if self.kill:
                os._exit(1)
            raise RuntimeError("bad stimulus")
        return self.linear(x)


class _Noisy(torch.nn.Module):
    """Adds standard normal noise to its input, recorded by a tap."""

    def __init__(self) -> None:
        super().__init__()
        self.noise = rnnprobe.recording.Tap()

    def forward(self, x):
        return self.noise(x + torch.randn_like(x))


def test_a_seeded_sharded_recording_gives_every_piece_its_own_noise(client, tmp_path):
    """Every piece (5 stimuli here) recorded with ``seed`` itself drew the same noise: stimuli 5 apart had
    identical noise. Each piece now has a stream of its own from (seed, its first stimulus): no two stimuli's
    noise is the same, and the recording repeats whichever worker records which piece."""
    x = torch.zeros(30, 4)
    runs = [rnnprobe.record(_Noisy(), x, store=tmp_path / f"rec{i}.zarr", client=client, chunk_stimuli=5,
                            batch_size=5, seed=1, progress=False).get("noise") for i in range(2)]  # fmt: skip
    np.testing.assert_array_equal(runs[0], runs[1])
    flat = runs[0].reshape(30, -1)
    assert len(np.unique(flat, axis=0)) == 30
    alone = rnnprobe.record(_Noisy(), x[5:10], seed=rnnprobe.recording.cluster.piece_seed(1, 5), progress=False)
    np.testing.assert_array_equal(runs[0][5:10], alone.get("noise"))
    # a noise intervention's own seed likewise (its generator is made anew by every piece's record)
    noisy = rnnprobe.recording.Intervention.noise("noise", 1.0, seed=4)
    changed = rnnprobe.record(_Noisy(), x, store=tmp_path / "changed.zarr", client=client, chunk_stimuli=5,
                              batch_size=5, seed=1, interventions=noisy, progress=False).get("noise")  # fmt: skip
    added = changed - runs[0]
    assert len(np.unique(added.reshape(30, -1).round(6), axis=0)) == 30
    assert changed.shape == runs[0].shape


def test_a_failing_shard_leaves_no_store(client, tmp_path):
    x = torch.zeros(40, 2, 3)
    x[33, 0, 0] = 42
    with pytest.raises(RnnprobeError, match=r"failed on a worker|bad stimulus"):
        rnnprobe.record(_FailsOn(kill=False), x, store=tmp_path / "rec.zarr", client=client, chunk_stimuli=5,
                        sequence=["linear"], progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_killed_worker_never_leaves_a_store_marked_complete(tmp_path):
    import dask

    x = torch.zeros(40, 2, 3)
    x[33, 0, 0] = 42  # the worker recording this shard dies, and so does every retry
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        with Client(cluster) as c, pytest.raises(RnnprobeError, match="failed on a worker"):
            rnnprobe.record(_FailsOn(kill=True), x, store=tmp_path / "rec.zarr", client=c, chunk_stimuli=5,
                            sequence=["linear"], progress=False)  # fmt: skip
        cluster.close()
    assert list(tmp_path.iterdir()) == []


def test_bad_cluster_arguments(client, tmp_path):
    model, x, _ = _model_and_stimuli(8)
    with pytest.raises(ArgumentTypeError, match="client"):
        rnnprobe.record(model, x, store=tmp_path / "a.zarr", client="tcp://127.0.0.1:8786", progress=False)
    with pytest.raises(ArgumentError, match="store"):
        rnnprobe.record(model, x, client=client, progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(StoreExistsError):
        rnnprobe.record(model, x, store=tmp_path / "mine", client=client, overwrite=True, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    rnnprobe.record(model, x, store=tmp_path / "rec.zarr", progress=False)
    for chunks in (0, "big", {"units": 3}, True):
        with pytest.raises(ArgumentError, match="chunks"):
            Recording.load(tmp_path / "rec.zarr", chunks=chunks)


def test_a_model_defined_in_the_calling_script_is_recorded_on_the_workers(client, tmp_path):
    """A model whose class is defined in the user's script or notebook (``__main__``): a plain pickle named the
    class, which the workers (their ``__main__`` is dask's) could not find; it is sent as it is. The sharded
    recording equals the in-memory one (to float32 rounding)."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(f"""
        import numpy as np, torch
        from distributed import Client
        import rnnprobe

        class MyRNN(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = torch.nn.GRU(3, 8, batch_first=True)

            def forward(self, x):
                return self.rnn(x)[0]

        if __name__ == "__main__":
            torch.manual_seed(0)
            model, x = MyRNN(), torch.randn(30, 5, 3)
            with Client({client.scheduler.address!r}) as client:
                sharded = rnnprobe.record(model, x, store={str(tmp_path / "rec.zarr")!r}, client=client,
                                          chunk_stimuli=7, progress=False)
            memory = rnnprobe.record(model, x, progress=False)
            for layer in memory.layers:  # (float32 products of a GRU depend on the batch's size: shards of 14, 2)
                np.testing.assert_allclose(sharded.get(layer), memory.get(layer), rtol=1e-5, atol=1e-6)
            print("equal", sorted(memory.layers))
    """)
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "equal ['rnn:h_n', 'rnn:output']"


def _callers_modules(folder, monkeypatch):
    """A model whose classes live in the caller's own files (``from local_models import Local``, which imports a
    module of its own), which the workers cannot import: the files are gone once imported here."""
    (folder / "local_blocks.py").write_text("import torch\n\n\nclass Block(torch.nn.Linear):\n    pass\n")
    (folder / "local_models.py").write_text(
        "import torch\nfrom local_blocks import Block\n\n\nclass Local(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.rnn, self.out = torch.nn.GRU(3, 4, batch_first=True), Block(4, 2)\n\n"
        "    def forward(self, x):\n        return self.out(self.rnn(x)[0][:, -1])\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "local_models", raising=False)
    monkeypatch.delitem(sys.modules, "local_blocks", raising=False)
    import local_models

    (folder / "local_models.py").unlink()
    (folder / "local_blocks.py").unlink()
    torch.manual_seed(0)
    return local_models.Local(), torch.randn(10, 4, 3)


def test_a_model_from_the_callers_own_modules_is_recorded_on_the_workers(client, tmp_path, monkeypatch):
    """The classes of the caller's own modules travel with the model (the command line's project modules too); a
    plain pickle named them, and the workers could not import them. Equal to the in-memory recording."""
    model, x = _callers_modules(tmp_path, monkeypatch)
    sharded = rnnprobe.record(model, x, store=tmp_path / "rec.zarr", client=client, chunk_stimuli=4, progress=False)
    memory = rnnprobe.record(model, x, progress=False)
    assert sorted(sharded.layers) == sorted(memory.layers) == ["out", "rnn:h_n", "rnn:output"]
    for layer in memory.layers:  # (float32 products of a GRU depend on the batch's size)
        np.testing.assert_allclose(sharded.get(layer), memory.get(layer), rtol=1e-5, atol=1e-6)


def test_a_forward_function_from_the_callers_own_modules_runs_on_the_workers(client, tmp_path, monkeypatch):
    """``forward=`` of a file beside the caller's script travels with the model as its classes do (dask's own
    pickling of the task's arguments named it, and the workers could not import it)."""
    model, x = _callers_modules(tmp_path, monkeypatch)
    helpers = _import_fresh(tmp_path, monkeypatch, "local_forward", "def twice(model, x):\n    return model(2 * x)\n")
    (tmp_path / "local_forward.py").unlink()
    sharded = rnnprobe.record(model, x, store=tmp_path / "rec.zarr", client=client, chunk_stimuli=4,
                              forward=helpers.twice, progress=False)  # fmt: skip
    memory = rnnprobe.record(model, x, forward=helpers.twice, progress=False)
    assert not np.allclose(memory.get("out"), rnnprobe.record(model, x, progress=False).get("out"))
    np.testing.assert_allclose(sharded.get("out"), memory.get("out"), rtol=1e-5, atol=1e-6)


def test_an_estimator_from_the_callers_own_modules_decodes_on_the_workers(client, tmp_path, monkeypatch):
    """An estimator whose class lives in a file beside the caller's script reaches the tasks of a blockwise
    decoding with its code (dask's plain pickle named the class); equal to decoding in memory. One that the
    workers cannot import (sent by name) is one error."""
    from rnnprobe.analysis import decode
    from rnnprobe.recording import model_pickle

    estimators = _import_fresh(
        tmp_path, monkeypatch, "local_estimators",
        "from sklearn.neighbors import KNeighborsClassifier\n\n\nclass Nearest(KNeighborsClassifier):\n    pass\n",
    )  # fmt: skip
    (tmp_path / "local_estimators.py").unlink()
    rng = np.random.default_rng(2)
    label = np.arange(40) % 2
    Recording({"h": rng.normal(size=(40, 4, 5)) + label[:, None, None]}, metadata={"label": label}).save(
        tmp_path / "rec.zarr"
    )
    chunked = Recording.load(tmp_path / "rec.zarr", chunks=10)
    expected = decode(
        Recording.load(tmp_path / "rec.zarr"), "h", "label", estimator=estimators.Nearest(3), progress=False
    )
    got = decode(chunked, "h", "label", estimator=estimators.Nearest(3), progress=False)
    np.testing.assert_allclose(got.fold_scores, expected.fold_scores, rtol=0, atol=1e-12)
    monkeypatch.setattr(model_pickle, "own_modules", lambda: [])  # as if installed here and not on the workers
    with pytest.raises(ArgumentError, match=r"estimator: the worker on .* cannot import a class or function"):
        decode(chunked, "h", "label", estimator=estimators.Nearest(3), progress=False)


def test_a_model_whose_class_the_workers_cannot_import_says_so(client, tmp_path, monkeypatch):
    """A class of a module sent by name (an installed package) that the workers lack: one error naming the fix,
    no store."""
    from rnnprobe.recording import model_pickle

    model, x = _callers_modules(tmp_path, monkeypatch)
    monkeypatch.setattr(model_pickle, "own_modules", lambda: [])  # as if installed here and not on the workers
    message = r"cannot import the model's class or forward function .*No module named 'local_models'.*Install the"
    with pytest.raises(ArgumentError, match=message):
        rnnprobe.record(model, x, store=tmp_path / "rec.zarr", client=client, progress=False)
    assert not (tmp_path / "rec.zarr").exists()


def _import_fresh(folder, monkeypatch, name, text):
    """Module ``name`` with ``text``, imported from a file in ``folder`` (gone from sys.modules after the test)."""
    (folder / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def test_the_callers_own_modules_are_files_outside_the_installed_packages(tmp_path, monkeypatch):
    from rnnprobe.recording import model_pickle

    _import_fresh(tmp_path, monkeypatch, "mine", "X = 1\n")
    own = {module.__name__ for module in model_pickle.own_modules()}
    assert "mine" in own
    installed = ("numpy", "torch", "json", "pytest", "rnnprobe", "__main__")  # site-packages, stdlib, rnnprobe's
    assert not [name for name in own if name.partition(".")[0] in installed]
    # a module of an installed distribution outside site-packages (an editable install) goes by name
    monkeypatch.setattr(model_pickle, "_distributed", lambda: frozenset({"mine"}))
    model_pickle._own_file.cache_clear()
    try:
        assert "mine" not in {module.__name__ for module in model_pickle.own_modules()}
    finally:
        model_pickle._own_file.cache_clear()


def test_a_pickled_model_holds_the_callers_classes_and_leaves_registrations_as_they_were(tmp_path, monkeypatch):
    """The model's class goes by value (it loads where its module cannot be imported); a module the caller
    registered with cloudpickle stays registered, the ones registered for the pickle do not."""
    import cloudpickle

    from rnnprobe.recording import model_pickle

    mine = _import_fresh(tmp_path, monkeypatch, "mine", "import torch\n\n\nclass Mine(torch.nn.Linear):\n    pass\n")
    yours = _import_fresh(tmp_path, monkeypatch, "yours", "Y = 2\n")
    cloudpickle.register_pickle_by_value(yours)
    try:
        data = model_pickle.pickled(mine.Mine(3, 2))
        assert model_pickle._registered(yours) and not model_pickle._registered(mine)
    finally:
        cloudpickle.unregister_pickle_by_value(yours)
    (tmp_path / "mine.py").unlink()
    monkeypatch.delitem(sys.modules, "mine")
    model = model_pickle.unpickled(data)
    assert type(model).__name__ == "Mine" and model.weight.shape == (2, 3)
    with pytest.raises(ImportError):
        importlib.import_module("mine")


def test_a_module_of_the_callers_holding_what_does_not_pickle_goes_by_name(tmp_path, monkeypatch):
    """A model whose code uses a lock held in a global of the caller's own module: by value the module's
    globals would travel and the lock does not pickle, so the modules go by name (the workers import them)."""
    from rnnprobe.recording import model_pickle

    text = (
        "import threading\n\nimport torch\n\nLOCK = threading.Lock()\n\n\n"
        "class Guarded(torch.nn.Linear):\n    def forward(self, x):\n        with LOCK:\n"
        "            return super().forward(x)\n"
    )
    guarded = _import_fresh(tmp_path, monkeypatch, "guarded", text)
    model = guarded.Guarded(3, 2)
    data = model_pickle.pickled(model)
    assert b"guarded" in data and not model_pickle._registered(guarded)
    x = torch.ones(1, 3)
    torch.testing.assert_close(model_pickle.unpickled(data)(x), model(x))  # rebuilt by importing guarded


def test_a_model_that_does_not_pickle_is_one_error_and_leaves_no_store(client, tmp_path):
    import threading

    model, x, _ = _model_and_stimuli(8)
    model.lock = threading.Lock()  # (an attribute no pickle takes)
    with pytest.raises(
        ArgumentError, match=r"model: cannot be sent to the dask workers: it does not pickle \(TypeError"
    ):
        rnnprobe.record(model, x, store=tmp_path / "rec.zarr", client=client, progress=False)
    assert not (tmp_path / "rec.zarr").exists() and list(tmp_path.iterdir()) == []


def test_a_worker_that_cannot_reach_the_store_says_so(tmp_path):
    import pickle

    from rnnprobe.recording.cluster import _record_region

    model, x, _ = _model_and_stimuli(4)
    with pytest.raises(ArgumentError, match="cannot reach"):
        _record_region(pickle.dumps((model, {})), [x], 0, 4, str(tmp_path / "elsewhere"), ["layer0"])


@pytest.mark.parametrize("where", ["synchronous", "client"])
def test_a_store_opened_by_a_relative_path_reads_the_same_in_a_process_in_another_folder(
    client, tmp_path, monkeypatch, where
):
    """Workers started in folders of their own (``dask worker`` on other machines) read a store opened by a
    relative path at the caller's: the layers are read from its absolute path, never as zarr's zeros for
    chunks it could not find (the command line's analyses on such workers gave NaN and chance before)."""
    states = np.random.default_rng(0).normal(size=(12, 3, 5))
    monkeypatch.chdir(tmp_path)
    Recording({"h": states}).save("rec.zarr", chunk_stimuli=4)
    layer = Recording.load("rec.zarr", chunks=4).to_dask("h")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # this process now stands where a worker would
    if where == "synchronous":
        np.testing.assert_array_equal(layer.compute(scheduler="synchronous"), states)
    else:
        np.testing.assert_array_equal(client.compute(layer).result(), states)


@pytest.mark.parametrize("damage", ["moved", "chunk deleted"])
def test_a_store_that_a_read_cannot_find_is_an_error_not_zeros(tmp_path, damage):
    """A worker that cannot see the store's folder (not mounted there), or a chunk file gone after the store
    was opened, is one clear error at the read, not the fill value zarr reads for a chunk it lacks."""
    states = np.random.default_rng(0).normal(size=(12, 3, 5)) + 5.0
    Recording({"h": states}).save(tmp_path / "rec.zarr", chunk_stimuli=4)
    recording, lazy = Recording.load(tmp_path / "rec.zarr", chunks=4), Recording.load(tmp_path / "rec.zarr")
    if damage == "moved":
        (tmp_path / "rec.zarr").rename(tmp_path / "other.zarr")
        error, message = ArgumentError, "cannot reach .*rec.zarr"
    else:
        (tmp_path / "rec.zarr" / "states" / "0" / "c" / "1" / "0" / "0").unlink()
        error, message = StoreFormatError, r"1 chunk file\(s\) of states/0 .* not there \(first: c/1/0/0\)"
    reads = {  # read on dask's workers (here: this process), or by a lazy layer in this process
        "dask-backed": lambda rows: recording.to_dask("h")[rows].compute(scheduler="synchronous"),
        "lazy as dask": lambda rows: lazy.to_dask("h")[rows].compute(scheduler="synchronous"),
        "lazy": lambda rows: lazy.select(stimuli=np.arange(12)[rows]).get("h"),
        "lazy, positions": lambda rows: lazy.select(stimuli=np.arange(12)[rows][::-1]).get("h")[::-1],
    }
    for how, read in reads.items():
        with pytest.raises(error, match=message):
            read(slice(None))
        if damage != "moved":  # the chunks that are there still read
            np.testing.assert_array_equal(read(slice(0, 4)), states[:4], err_msg=how)


def _count_blocks(monkeypatch, block_bytes: int, with_client: bool) -> list[int]:
    """Blocks of ``block_bytes`` (with or without the test's client); returns the list of each run's block count."""
    from rnnprobe.analysis import blockwise

    monkeypatch.setattr(blockwise, "BLOCK_BYTES", block_bytes)
    if not with_client:  # nor the module's client for the reads (a round trip to the cluster each)
        monkeypatch.setattr(blockwise, "active_client", lambda: None)
        monkeypatch.setitem(dask.config.config, "scheduler", "synchronous")
    seen = []
    run_blocks = blockwise.run_blocks
    monkeypatch.setattr(
        blockwise, "run_blocks", lambda f, blocks, *a: seen.append(len(blocks)) or run_blocks(f, blocks, *a)
    )
    return seen


@pytest.mark.parametrize("with_client", [True, False])
def test_decoding_a_dask_backed_recording_in_blocks_equals_the_whole(client, tmp_path, monkeypatch, with_client):
    from rnnprobe.analysis import decode

    rng = np.random.default_rng(4)
    label = np.arange(60) % 3
    states = rng.normal(size=(60, 7, 5))
    states[:, 3:] += label[:, None, None] * 0.8
    Recording({"h": states}, metadata={"label": label}).save(tmp_path / "rec.zarr")
    whole = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks=20)
    seen = _count_blocks(monkeypatch, 2 * 60 * 5 * 8, with_client)  # blocks of 2 time steps: 4 blocks
    for settings in ({}, {"estimator": "logistic", "n_permutations": 20, "patterns": True, "time": [1, 2, 4, 6]}):
        expected = decode(whole, "h", "label", progress=False, **settings)
        got = decode(chunked, "h", "label", progress=False, **settings)
        np.testing.assert_allclose(got.fold_scores, expected.fold_scores, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(got.times, expected.times)
        if settings:
            np.testing.assert_allclose(got.null, expected.null, rtol=0, atol=1e-10)
            np.testing.assert_allclose(got.p_values, expected.p_values, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got.patterns, expected.patterns, rtol=0, atol=1e-8)
            assert [c.p_value for c in got.clusters] == pytest.approx([c.p_value for c in expected.clusters])
    # 7 steps in blocks of 2; then the whole recording's 20 permutations in 8 blocks with a client; 4 steps
    assert seen == ([4, 8, 2] if with_client else [4, 2])


@pytest.mark.parametrize("with_client", [True, False])
def test_condition_averages_of_a_dask_backed_recording_are_blockwise(client, tmp_path, monkeypatch, with_client):
    """Means and standard errors per condition from products with the condition indicator, summed over chunks
    of trials (the deviations in a second pass): equal to the in-memory averages, never reading a layer
    whole; NaN refused."""
    import dask

    from rnnprobe.analysis import condition_average, conditions

    rng = np.random.default_rng(8)
    ctx, coherence = rng.integers(0, 3, 50), rng.integers(0, 2, 50)
    ctx[0] = 7  # a condition of one trial: NaN standard error
    states = {"h": rng.normal(size=(50, 5, 3, 4)) * 3 + 10, "g": rng.normal(size=(50, 5, 2))}
    Recording(states, metadata={"ctx": ctx, "coherence": coherence}).save(tmp_path / "rec.zarr")
    whole = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks={"stimuli": 16, "time": 2})
    expected = condition_average(whole, ["ctx", "coherence"], sem=True)
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
        patch.setattr(conditions, "layer_states", None)  # the in-memory path would call it
        got = condition_average(chunked, ["ctx", "coherence"], sem=True)
        means_only = condition_average(chunked, "ctx", layers="g")
    assert got.layers == expected.layers and means_only.layers == ["g"]
    for layer in expected.layers:
        np.testing.assert_allclose(got.get(layer), expected.get(layer), rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(means_only.get("g"), condition_average(whole, "ctx", layers="g").get("g"), atol=1e-12)
    np.testing.assert_array_equal(got.column("n_trials"), expected.column("n_trials"))
    assert np.isnan(got.get("h:sem")[-1]).all() and not np.isnan(got.get("h:sem")[:-1]).any()
    bad = states["g"].copy()
    bad[3, 1, 0] = np.nan
    Recording({"g": bad}, metadata={"ctx": ctx}).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match="layer 'g' holds NaN or inf"):
        condition_average(Recording.load(tmp_path / "bad.zarr", chunks=16), "ctx")


@pytest.mark.parametrize("with_client", [True, False])
def test_tdr_of_a_dask_backed_recording_is_blockwise(client, tmp_path, monkeypatch, with_client):
    """Targeted dimensionality reduction of trials on disk: the z-scoring moments, the regression (normal
    equations of the small design from products summed over chunks of trials), R^2 and the condition means
    blockwise; equal to the in-memory fit, never reading the layer whole; NaN refused."""
    import dask

    from rnnprobe.analysis import conditions, fit_tdr, tdr

    rng = np.random.default_rng(9)
    choice, coherence = rng.choice([-1, 1], 120), rng.choice([-0.5, -0.1, 0.1, 0.5], 120)
    axes = np.linalg.qr(rng.normal(size=(12, 2)))[0]
    ramp = np.linspace(0, 1, 6)[None, :, None]
    states = ramp * (choice[:, None, None] * axes[:, 0] + coherence[:, None, None] * axes[:, 1]) * 3 + 5
    states = states + 0.3 * rng.normal(size=states.shape)
    states[:, :, 4] = 0.1  # a constant unit (no float64 mean of it is 0.1: rounding's spread)
    states[:, 3, 7] = 1 / 3  # a unit constant across trials at one step
    meta = {"choice": choice, "coherence": coherence}
    Recording({"h": states.reshape(120, 6, 3, 4)}, metadata=meta).save(tmp_path / "rec.zarr")
    whole = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks={"stimuli": 32, "time": 2})
    for settings in ({}, {"time": slice(1, 5), "conditions": ["choice"], "n_components": 3}):
        expected = fit_tdr(whole, variables=["choice", "coherence"], **settings)
        with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
            patch.setattr(tdr, "layer_states", None)  # the in-memory paths would call it
            patch.setattr(conditions, "layer_states", None)
            got = fit_tdr(chunked, variables=["choice", "coherence"], **settings)
        for name in ("axes", "coefficients", "denoised", "r2", "projections", "mean", "scale"):
            np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_array_equal(got.peak_times, expected.peak_times)
    bad = states.copy()
    bad[5, 2, 1] = np.inf
    Recording({"h": bad}, metadata=meta).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        fit_tdr(Recording.load(tmp_path / "bad.zarr", chunks=32), variables=["choice"])


def test_fixed_points_from_a_dask_backed_recording_read_only_the_picked_stimuli(client, tmp_path, monkeypatch):
    """Initial states drawn from a recording on disk: the same draw as in memory (so the same fixed points),
    the layers checked finite blockwise, and only the stimuli of the picked states read; NaN refused."""
    from rnnprobe import record
    from rnnprobe.analysis import find_fixed_points
    from rnnprobe.models import shipped
    from rnnprobe.tasks import FlipFlop

    model = shipped.load("flipflop-lstm")
    rec = record(model, FlipFlop(3).sample(40, split="test").x, progress=False)
    rec.save(tmp_path / "rec.zarr")
    settings = {"layer": ["l0.h", "l0.c"], "n_initial": 12, "noise": 0.01, "seed": 3}
    expected = find_fixed_points(model, initial_states=Recording.load(tmp_path / "rec.zarr"), **settings)
    chunked = Recording.load(tmp_path / "rec.zarr", chunks=8)
    reads, real_get = [], Recording.get

    def reading(self, layer, *args, **kwargs):
        if self.is_dask:
            reads.append(kwargs.get("stimuli"))
        return real_get(self, layer, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Recording, "get", reading)
        got = find_fixed_points(model, initial_states=chunked, **settings)
    assert len(reads) == 2 and all(rows is not None and 1 <= len(rows) <= 12 for rows in reads)
    np.testing.assert_array_equal(got.states, expected.states)
    np.testing.assert_array_equal(got.inputs, expected.inputs)
    assert got.n_candidates == expected.n_candidates
    states = rec.to_numpy("l0.c").copy()
    states[30, 7, 2] = np.nan
    Recording({"l0.h": rec.to_numpy("l0.h"), "l0.c": states}).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match=r"layer 'l0\.c' holds NaN or inf"):
        find_fixed_points(model, initial_states=Recording.load(tmp_path / "bad.zarr", chunks=8), **settings)


@pytest.mark.parametrize("with_client", [True, False])
def test_jpca_of_dask_backed_condition_averages_is_blockwise(client, tmp_path, monkeypatch, with_client):
    """jPCA of condition averages on disk: the units' ranges and the cross-condition mean, the centred
    states' axes by dask's tall-and-skinny QR, then the states on the axes; equal to the in-memory fit to
    1e-10 (soft-normalised or not, a time selection, a constant unit), the layer never read whole; NaN
    refused."""
    import dask

    from rnnprobe.analysis import fit_jpca
    from rnnprobe.analysis import jpca as jpca_module

    rng = np.random.default_rng(4)
    t, phases = np.arange(40), rng.uniform(0, 2 * np.pi, size=(30, 1))
    latent = np.stack([np.cos(0.1 * t + phases), np.sin(0.1 * t + phases), 0.5 * np.cos(0.04 * t + 2 * phases),
                       0.5 * np.sin(0.04 * t + 2 * phases)], axis=-1)  # fmt: skip
    states = 20 * latent @ rng.normal(size=(4, 12)) + rng.normal(size=(30, 40, 12))
    states[:, :, 5] = 3.0  # a constant unit
    states[:, :, 7] = 0.1 + np.sin(t)  # a unit that agrees across conditions
    Recording({"h": states}).save(tmp_path / "rec.zarr")
    whole, chunked = Recording.load(tmp_path / "rec.zarr"), Recording.load(tmp_path / "rec.zarr", chunks=7)
    settings = [{"n_components": 4}, {"n_components": 6, "soft_normalize": None, "time": slice(5, 35)}]
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
        patch.setattr(jpca_module, "layer_states", None)  # the in-memory path would call it
        got = [fit_jpca(chunked, **kw) for kw in settings]
    for result, kw in zip(got, settings, strict=True):
        expected = fit_jpca(whole, **kw)
        for name in ("m", "m_skew", "frequencies", "planes", "projections", "components", "variance_captured"):
            np.testing.assert_allclose(getattr(result, name), getattr(expected, name), rtol=0, atol=1e-10, err_msg=name)
        for name in ("r2", "r2_skew", "skew_fraction"):
            assert getattr(result, name) == pytest.approx(getattr(expected, name), abs=1e-12), name
        np.testing.assert_array_equal(result.times, expected.times)
    bad = states.copy()
    bad[3, 4, 2] = np.inf
    Recording({"h": bad}).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        fit_jpca(Recording.load(tmp_path / "bad.zarr", chunks=7))
    same = np.broadcast_to(0.1 + states[:1], states.shape)  # conditions that agree but for rounding
    Recording({"h": same}).save(tmp_path / "same.zarr")
    with pytest.raises(ShapeError, match="do not differ"):
        fit_jpca(Recording.load(tmp_path / "same.zarr", chunks=7), soft_normalize=None)


@pytest.mark.parametrize("with_client", [True, False])
def test_dpca_of_a_dask_backed_recording_is_blockwise(client, tmp_path, monkeypatch, with_client):
    """dPCA of trials on disk: the conditions' trial sums blockwise (the condition indicator times chunks of
    trials; here two designs' per pass, the budget of two splits), and for regularizer="auto" and
    dpca_significance only the held-out trials read (two splits' at a time); equal to the in-memory fit and
    significance, the layer never read whole; NaN refused."""
    import dask

    from rnnprobe.analysis import dpca_significance, fit_dpca
    from rnnprobe.analysis.dpca import trials as dpca_trials

    rng = np.random.default_rng(10)
    stimulus, decision = np.repeat([0, 1, 2], 24), np.tile([0, 1], 36)
    t = np.linspace(0, 1, 8)
    w = rng.normal(size=(3, 10))
    states = t[None, :, None] * w[0] + ((stimulus - 1)[:, None] * t)[..., None] * w[1]
    states = states + (decision[:, None, None] - 0.5) * t[None, :, None] ** 2 * w[2]
    states = states[:-3] + 0.6 * rng.normal(size=(69, 8, 10))  # unbalanced conditions
    meta = {"stimulus": stimulus[:-3], "decision": decision[:-3]}
    Recording({"h": states}, metadata=meta).save(tmp_path / "rec.zarr")
    whole = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks={"stimuli": 16, "time": 3})
    for settings in ({"n_components": 2}, {"regularizer": "auto", "n_splits": 2, "time": slice(1, None)}):
        expected = fit_dpca(whole, parameters=["stimulus", "decision"], **settings)
        significant = dpca_significance(whole, expected, n_shuffles=4, n_splits=3, seed=1).significance
        reads = []

        def reading(*args, real=dpca_trials.layer_states, seen=reads, **kwargs):  # what the analyses read
            seen.append(kwargs.get("stimuli"))
            return real(*args, **kwargs)

        with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
            patch.setattr(dpca_trials, "layer_states", reading)
            patch.setattr(dpca_trials, "BUDGET", 2 * 8 * 6 * len(expected.times) * 10)  # two splits' held-out trials
            got = fit_dpca(chunked, parameters=["stimulus", "decision"], **settings)
            assert len(reads) == (1 if "n_splits" in settings else 0)
            got_significant = dpca_significance(chunked, got, n_shuffles=4, n_splits=3, seed=1).significance
        assert len(reads) == (1 if "n_splits" in settings else 0) + 5 * 2  # observed and 4 shuffles: splits 1-2, 3
        assert all(rows is not None and 6 <= len(rows) <= 12 for rows in reads)  # one held-out trial per condition
        with monkeypatch.context() as patch:  # a budget that holds every design's held-out trials: one read
            patch.setattr(dpca_trials, "layer_states", reading)
            reads.clear()
            together = dpca_significance(chunked, got, n_shuffles=4, n_splits=3, seed=1).significance
            assert len(reads) == 1 and 6 < len(reads[0]) <= 5 * 3 * 6
            reads.clear()  # the held-out trials of two designs at a time (their sums all in one pass): 3 reads
            patch.setattr(dpca_trials, "BUDGET", 8 * 2 * 3 * 6 * len(expected.times) * 10)
            in_pairs = dpca_significance(chunked, got, n_shuffles=4, n_splits=3, seed=1).significance
            assert len(reads) == 3 and all(len(rows) <= 2 * 3 * 6 for rows in reads)
        for name in significant:
            np.testing.assert_array_equal(together[name], significant[name])
            np.testing.assert_array_equal(in_pairs[name], significant[name])
        assert got.regularizer == expected.regularizer
        for name in expected.decoders:
            np.testing.assert_allclose(got.decoders[name], expected.decoders[name], rtol=0, atol=1e-10)
            np.testing.assert_allclose(got.components[name], expected.components[name], rtol=0, atol=1e-10)
            np.testing.assert_allclose(got.explained_variance[name], expected.explained_variance[name], atol=1e-12)
        np.testing.assert_allclose(got.mean, expected.mean, rtol=0, atol=1e-12)
        if expected.cv_scores is not None:
            np.testing.assert_allclose(got.cv_scores, expected.cv_scores, rtol=1e-10)
        assert set(got_significant) == set(significant)
        assert any(flags.any() and not flags.all() for flags in significant.values())  # not trivially all or none
        for name, flags in significant.items():
            np.testing.assert_array_equal(got_significant[name], flags, err_msg=name)
    bad = states.copy()
    bad[2, 3, 4] = np.nan
    Recording({"h": bad}, metadata=meta).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        fit_dpca(Recording.load(tmp_path / "bad.zarr", chunks=16), parameters=["stimulus"])
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        dpca_significance(Recording.load(tmp_path / "bad.zarr", chunks=16), expected, n_shuffles=1, n_splits=1)


def test_group_sums_equal_a_loop_over_groups():
    """The condition-indicator product behind the blockwise means: sums and means per group equal a loop
    over the groups' members (chunks of stimuli that split groups; an empty group sums to 0)."""
    import dask.array as da

    from rnnprobe.analysis.blockwise import group_sums

    rng = np.random.default_rng(11)
    x = rng.normal(size=(23, 3, 4))
    groups = rng.integers(0, 4, 23)  # groups 0..3, and group 4 empty
    lazy = da.from_array(x, chunks=(5, 3, 4))
    sums, means = group_sums(lazy, groups, 5).compute(), group_sums(lazy, groups, 4, mean=True).compute()
    for g in range(5):
        np.testing.assert_allclose(sums[g], x[groups == g].sum(axis=0), rtol=0, atol=1e-12)
    for g in range(4):
        np.testing.assert_allclose(means[g], x[groups == g].mean(axis=0), rtol=0, atol=1e-12)
    sets = np.stack([groups, rng.permutation(groups), rng.integers(0, 5, 23)])  # several label sets at once
    set_sums, set_means = group_sums(lazy, sets, 5).compute(), group_sums(lazy, sets, 5, mean=True).compute()
    assert set_sums.shape == set_means.shape == (3, 5, 3, 4)
    for k, labels in enumerate(sets):
        for g in np.unique(labels):
            np.testing.assert_allclose(set_sums[k, g], x[labels == g].sum(axis=0), rtol=0, atol=1e-12)
            np.testing.assert_allclose(set_means[k, g], x[labels == g].mean(axis=0), rtol=0, atol=1e-12)
    many = rng.integers(0, 30, 23)  # more groups than the dense indicator takes: sparse products per chunk
    many_sums = group_sums(lazy, many, 30).compute()
    for g in range(30):
        np.testing.assert_allclose(many_sums[g], x[many == g].sum(axis=0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("way", ["in order", "shuffled", "per chunk"])
def test_group_sums_of_more_groups_than_a_chunk_has_stimuli(way, monkeypatch):
    """Images shown a few times each: more groups than a chunk's stimuli. In group order, chunks of whole groups
    each sum their own (several chunks of sums): the same bits as sum_groups in memory; out of order, the
    stimuli are shuffled into order first where SHUFFLE_VALUES says the shuffle costs less (the same bits), else
    each chunk of stimuli sums into every group (one chunk of sums). With empty groups first, inside and last, a
    group larger than a chunk, float32 states and chunks along time. Sums per chunk wider than PART_BYTES split
    the chunk's values."""
    import dask.array as da

    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis.blockwise import group_sums
    from rnnprobe.analysis.conditions import sum_groups

    rng = np.random.default_rng(12)
    groups = np.concatenate([rng.integers(1, 40, 60), np.full(9, 7), np.arange(2, 40, 3)])  # 0, and 40-44 empty
    groups = np.sort(groups) if way == "in order" else rng.permutation(groups)
    groups[groups == 20] = 21  # an empty group inside
    x = rng.normal(size=(groups.size, 6, 5)).astype(np.float32)
    lazy = da.from_array(x, chunks=(8, 4, 5))
    if way == "shuffled":  # (45 groups x 30 values against 11 chunks x SHUFFLE_VALUES, whichever the scheduler)
        monkeypatch.setattr(blockwise, "SHUFFLE_VALUES", dict.fromkeys(("threads", "distributed"), 45 * 30 // 11 - 1))
    sums, means = group_sums(lazy, groups, 45), group_sums(lazy, groups, 45, mean=True)
    per_chunk = way == "per chunk"
    assert sum(sums.chunks[0]) == 45 and (len(sums.chunks[0]) == 1 if per_chunk else len(sums.chunks[0]) > 3)
    expected = sum_groups(x, groups, 45)
    got = sums.compute()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 if per_chunk else 0)
    counts = np.bincount(groups, minlength=45)
    np.testing.assert_allclose(means.compute(), expected / np.maximum(counts, 1)[:, None, None], rtol=0,
                               atol=1e-12 if per_chunk else 0)  # fmt: skip
    assert not expected[[0, 20, 40, 44]].any() and expected[7].any()
    if per_chunk:  # a chunk's sums into every group at most 6 values wide: its values split (time steps apart)
        monkeypatch.setattr(blockwise, "PART_BYTES", 8 * 45 * 6)
        split = group_sums(lazy, groups, 45)
        assert split.chunks[1:] == ((1,) * 6, (5,))
        np.testing.assert_array_equal(split.compute(), got)


def test_group_sums_shuffle_by_the_constant_of_the_scheduler_that_will_run_them(monkeypatch):
    """Whether group_sums shuffles stimuli into order depends on the active client: dask.distributed's shuffle
    pieces cost more than the threaded scheduler's (its own SHUFFLE_VALUES)."""
    import dask.array as da

    from rnnprobe.analysis import blockwise

    groups = np.random.default_rng(3).permutation(np.repeat(np.arange(45), 2))
    lazy = da.from_array(np.ones((90, 30)), chunks=(10, 30))  # 9 chunks; 45 groups x 30 values = 1350
    monkeypatch.setattr(blockwise, "SHUFFLE_VALUES", {"threads": 149, "distributed": 151})
    for client, shuffles in [(None, True), (object(), False)]:
        monkeypatch.setattr(blockwise, "active_client", lambda client=client: client)
        assert (len(blockwise.group_sums(lazy, groups, 45).chunks[0]) > 1) == shuffles


@pytest.mark.parametrize("shuffled", [False, True])
def test_repetition_sums_weigh_each_stimulus_repetitions_in_chunks_of_whole_stimuli(shuffled):
    """fit_encoding's blockwise repetition sums: each stimulus's r-th trial (in trial order) weighted by column r
    of each weight row, for trials stored stimulus by stimulus (no shuffle) or in shuffled order; the sums come
    in chunks of whole stimuli."""
    import dask.array as da

    from rnnprobe.analysis.encoding.blockwise import repetition_sums
    from rnnprobe.analysis.encoding.inputs import repetitions

    rng = np.random.default_rng(13)
    stimulus = np.repeat(np.arange(7), 3)
    stimulus = rng.permutation(stimulus) if shuffled else stimulus
    x = rng.normal(size=(21, 2, 4))
    weights = rng.normal(size=(2, 3))
    _, order, n_reps = repetitions(stimulus, "image")
    sums = repetition_sums(da.from_array(x, chunks=(5, 2, 4)), order, n_reps, weights)
    assert sums.chunks[1] == (1, 1, 1, 1, 1, 1, 1)  # 5 trials per chunk: one stimulus of 3 repetitions
    expected = np.zeros((2, 7, 2, 4))
    for k in range(7):
        for r, trial in enumerate(np.flatnonzero(stimulus == k)):
            expected[:, k] += weights[:, r, None, None] * x[trial]
    np.testing.assert_allclose(sums.compute(), expected, rtol=0, atol=1e-12)


def _scheduler_name(block: int) -> str:
    import dask

    return getattr(dask.base.get_scheduler(), "__module__", "")


def test_blockwise_tasks_compute_their_reads_themselves(client):
    """A worker's default scheduler would submit a task's dask reads to the cluster and wait for them
    (slower, and more memory); blockwise tasks compute them synchronously in the task."""
    from rnnprobe.analysis import blockwise

    assert blockwise.run_blocks(_scheduler_name, [0, 1]) == ["dask.local"] * 2
    assert "distributed" in client.submit(_scheduler_name, 0, pure=False).result()  # what a plain task would use


def _fails_on_two(block: int) -> int:
    if block == 2:
        raise ValueError("block 2 failed")
    return block


def _row_or_fails_on_two(block: int) -> list:
    return [_fails_on_two(block)]


def _rows(block: np.ndarray, scale: float) -> np.ndarray:
    return np.outer(block, [scale, -scale])


@pytest.mark.parametrize("with_client", [True, False])
def test_blocks_into_fills_the_rows_in_block_order_and_refuses_a_partial_fill(client, monkeypatch, with_client):
    """blocks_into: each block's result as the next rows of ``out``, in block order; results that leave rows
    unfilled or run past the end are an error, not a result; a failed block's error reaches the caller."""
    from rnnprobe.analysis import blockwise

    if not with_client:
        monkeypatch.setattr(blockwise, "active_client", lambda: None)
    blocks = np.array_split(np.arange(10.0), 4)
    out = np.full((10, 2), np.nan)
    assert blockwise.blocks_into(out, _rows, blocks, 2.0) is out
    np.testing.assert_array_equal(out, np.outer(np.arange(10.0), [2, -2]))
    with pytest.raises(RuntimeError, match="filled 8 of the 10 rows"):
        blockwise.blocks_into(out, _rows, blocks[:3], 2.0)
    with pytest.raises(RuntimeError, match="more than the 9 rows"):
        blockwise.blocks_into(out[:9], _rows, blocks, 2.0)
    with pytest.raises(ValueError, match="block 2 failed"):
        blockwise.blocks_into(np.empty(6), _row_or_fails_on_two, list(range(6)))


@pytest.mark.parametrize("run", ["run_blocks", "sum_blocks", "blocks_into"])
def test_a_failed_block_leaves_no_task_held_on_the_client(client, run):
    """A task that fails: the error reaches the caller, and no task of the call stays on the client (the error's
    traceback, kept by a notebook or here by pytest, held every future and its result on the workers)."""
    import time

    from rnnprobe.analysis import blockwise

    into, function = ((np.empty(6),), _row_or_fails_on_two) if run == "blocks_into" else ((), _fails_on_two)
    with pytest.raises(ValueError, match="block 2 failed") as caught:
        getattr(blockwise, run)(*into, function, list(range(6)))
    for _ in range(100):
        if not client.futures:
            break
        time.sleep(0.02)
    assert not client.futures, (caught, client.futures)


@pytest.mark.parametrize("with_client", [True, False])
def test_sum_blocks_adds_every_blocks_result_in_block_order(client, monkeypatch, with_client):
    """sum_blocks: the blocks' results added in block order (list concatenation keeps it), each task's future
    released once added (none left on the client)."""
    import operator
    import time

    from rnnprobe.analysis import blockwise

    if not with_client:
        monkeypatch.setattr(blockwise, "active_client", lambda: None)
    assert blockwise.sum_blocks(operator.add, [[i] for i in range(7)], []) == list(range(7))
    assert blockwise.sum_blocks(operator.mul, [np.arange(3.0)] * 4, 2.0).tolist() == [0, 8, 16]
    assert blockwise.sum_blocks(operator.add, [(1,), (2,)], (), add=lambda a, b: b + a) == (2, 1)
    if with_client:  # released as they are added (the client forgets them as its event loop gets to it)
        held = []

        def counted(a: list, b: list) -> list:
            time.sleep(0.05)
            held.append(len(client.futures))
            return a + b

        assert blockwise.sum_blocks(operator.add, [[i] for i in range(7)], [], add=counted) == list(range(7))
        assert held[-1] <= 2, held
        for _ in range(100):
            if not client.futures:
                break
            time.sleep(0.02)
        assert not client.futures


@pytest.mark.parametrize("with_client", [True, False])
def test_decoding_steps_larger_than_a_block_reads_them_in_blocks(client, tmp_path, monkeypatch, with_client):
    """Ridge decoders of steps larger than a block, never read whole: from kernels summed over blocks of units
    (fewer stimuli than units) or sums over blocks of stimuli (more; each fold's test sums, or its training sums
    where the folds are no partition). Equal to the in-memory decoders (folds, permutations, patterns; scaled or
    not; classes and values); NaN refused."""
    from sklearn.linear_model import Ridge, RidgeClassifier
    from sklearn.model_selection import ShuffleSplit

    from rnnprobe.analysis import blockwise, decode, decoding_steps

    rng = np.random.default_rng(12)
    _count_blocks(monkeypatch, 8 * 45 * 30, with_client)  # half a step of 45 x 60: one fold's kernel per pass
    reads = []
    read = blockwise.read_values
    monkeypatch.setattr(blockwise, "read_values", lambda x, index, layer: reads.append(index) or read(x, index, layer))
    cases = [
        ("label", {"n_permutations": 3, "patterns": True}),  # StandardScaler + RidgeClassifier
        ("label", {"estimator": RidgeClassifier(alpha=3.0), "n_permutations": 3, "scoring": "balanced_accuracy"}),
        ("pair", {"scoring": "roc_auc", "patterns": True, "time": [0, 3]}),
        ("value", {"estimator": Ridge(alpha=2.0), "patterns": True}),
    ]
    for n, unit_shape, how in [(45, (6, 10), "units"), (230, (2, 3), "stimuli")]:
        label, pair = np.arange(n) % 3, np.arange(n) % 2
        states = rng.normal(size=(n, 4, *unit_shape)) * rng.uniform(0.5, 3, size=unit_shape) + 5
        states[:, 2:, 0, :3] += label[:, None, None] * 0.7
        value = states[:, 0, 1, 0] + rng.normal(size=n)
        meta = {"label": label, "pair": pair, "value": value}
        Recording({"h": states}, metadata=meta).save(tmp_path / f"{how}.zarr")
        whole, chunked = Recording.load(tmp_path / f"{how}.zarr"), Recording.load(tmp_path / f"{how}.zarr", chunks=20)
        assert decoding_steps.large_steps(chunked, _decode_plan(chunked, "ridge")) == how
        for target, settings in cases[1::2] if with_client else cases:  # (on the cluster: its tasks, two cases)
            expected = decode(whole, "h", target, progress=False, **settings)
            got = decode(chunked, "h", target, progress=False, **settings)
            np.testing.assert_allclose(got.fold_scores, expected.fold_scores, rtol=0, atol=1e-10)
            if expected.null is not None:
                np.testing.assert_allclose(got.null, expected.null, rtol=0, atol=1e-10)
                np.testing.assert_allclose(got.p_values, expected.p_values, rtol=0, atol=1e-12)
            if expected.patterns is not None:
                np.testing.assert_allclose(got.patterns, expected.patterns, rtol=0, atol=1e-10)
            np.testing.assert_array_equal(got.times, expected.times)
        logistic = decoding_steps.large_steps(chunked, _decode_plan(chunked, "logistic"))
        assert logistic == how  # the kernels' coordinates, or passes over blocks of stimuli
    if not with_client:  # per pass over a step, 6 blocks of 10 units: the 5 folds' kernels (+ patterns: 2 passes)
        units = [index[1] for index in reads if len(index) == 2]
        assert {b.stop - b.start for b in units} == {1} and len(units) == 6 * (4 * 7 + 4 * 5 + 2 * 7 + 4 * 7)
        # blocks of 40 stimuli (2 chunks; 6 a step): the centre's, then 2 passes per group of target sets (1 set a
        # group of 3 classes' codes in this budget, every set in one with one column)
        stimuli = [index[0] for index in reads if len(index) == 1]
        assert {b.stop - b.start for b in stimuli} == {40, 30}
        assert len(stimuli) == 4 * (1 + 12 * 4) + 4 * (1 + 12 * 4) + 2 * (1 + 12) + 4 * (1 + 12)
    for n, unit_shape in [(45, (6, 10)), (230, (2, 3))]:  # cross-decoding: trained on one recording, tested on another

        def layer(count: int, seed: int, shape: tuple = unit_shape) -> tuple[np.ndarray, np.ndarray]:
            labels, values = np.arange(count) % 3, np.random.default_rng(seed).normal(size=(count, 3, *shape)) + 2
            values[:, 1:, 0, :2] += 3 * labels[:, None, None]
            return values, labels

        (train, labels), (held, held_labels) = layer(n, 1), layer(n - 7, 2)
        settings = {"n_permutations": 5, "patterns": True, "time": [0, 2], "progress": False}
        expected = _cross_decoded(tmp_path, (train, labels), (held, held_labels), settings)
        assert expected.scores.max() > 0.45  # above chance (1 / 3) across the two recordings
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 34_000)  # 45 x 100 units: two kernels a pass (+ the patterns')
    wide = rng.normal(size=(45, 2, 10, 10))
    wide[:, 1, 0, :3] += (np.arange(45) % 3)[:, None]
    Recording({"h": wide}, metadata={"label": np.arange(45) % 3}).save(tmp_path / "wide.zarr")
    settings = {"n_permutations": 4, "patterns": True, "progress": False}
    expected = decode(Recording.load(tmp_path / "wide.zarr"), "h", "label", **settings)
    got = decode(Recording.load(tmp_path / "wide.zarr", chunks=20), "h", "label", **settings)
    for name in ("fold_scores", "null", "patterns"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-10)
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 1000)  # 12 units: a fold's sums and every stimulus's a pass
    for n, expected_how in [(15, None), (24, None), (25, "stimuli"), (61, "stimuli")]:
        small = Recording({"h": np.zeros((n, 1, 2, 6))}, metadata={"label": np.arange(n) % 3})
        assert decoding_steps.large_steps(small, _decode_plan(small, "ridge")) == expected_how
    label = np.arange(230) % 3
    grouped = rng.normal(size=(230, 2, 4, 10)) * rng.uniform(0.5, 3, size=(4, 10)) + 5
    grouped[:, 1, 0, :3] += label[:, None] * 0.7
    Recording({"h": grouped}, metadata={"label": label}).save(tmp_path / "grouped.zarr")
    whole, chunked = Recording.load(tmp_path / "grouped.zarr"), Recording.load(tmp_path / "grouped.zarr", chunks=30)
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 3 * 8 * 40 * 40)  # 40 units: the sums of 3 slots a pass
    reads.clear()
    partitioned = [(np.setdiff1d(np.arange(230), test)[10:], test) for test in np.array_split(np.arange(230), 5)]
    splits = [  # the folds in groups beside every stimulus's sums, summed first (their Gram matrices do not fit)
        5,  # k-fold: each group's test sums (a partition's, grouped: every stimulus's minus a test set's)
        ShuffleSplit(3, test_size=0.3, random_state=0),  # test sets that overlap: the same
        ShuffleSplit(3, test_size=0.3, train_size=0.5, random_state=1),  # each group's training sums
        partitioned,  # test sets that partition the stimuli, training sets that leave 10 out: no subtraction
    ]
    for cv, generalize in itertools.product(splits, (False, True)):
        settings = {"cv": cv, "n_permutations": 3, "patterns": True, "generalize": generalize, "progress": False}
        shuffled, reference = decode(chunked, "h", "label", **settings), decode(whole, "h", "label", **settings)
        for name in ("fold_scores", "null", "patterns"):
            np.testing.assert_allclose(getattr(shuffled, name), getattr(reference, name), rtol=0, atol=1e-10)
    assert reference.scores[1, 1] > 0.5  # the signal at the second step (chance 1 / 3)
    if not with_client:  # in blocks of 30 stimuli (of 230): a chunk
        assert reads and all(len(index) == 1 and index[0].stop - index[0].start <= 30 for index in reads)
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 1000)
    for n, unit_shape in [(45, (6, 10)), (230, (2, 3))]:  # NaN refused by either form
        bad = np.random.default_rng(0).normal(size=(n, 2, *unit_shape))
        bad[n - 3, 1, 1, 2] = np.nan
        Recording({"h": bad}, metadata={"label": np.arange(n) % 3}).save(tmp_path / f"nan{n}.zarr")
        with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
            decode(Recording.load(tmp_path / f"nan{n}.zarr", chunks=20), "h", "label", progress=False)


@pytest.mark.parametrize("with_client", [True, False])
def test_generalization_matrix_of_steps_larger_than_a_block_reads_them_in_blocks(
    client, tmp_path, monkeypatch, with_client
):
    """The generalization matrix of ridge decoders on steps larger than a block: fitted from kernels over blocks of
    units (then weights from the dual coefficients, one more pass) or from sums over blocks of stimuli, tested on
    blocks of stimuli; target sets fitted in groups and tested in groups of sets or of training steps. Equal to the
    in-memory matrix (folds, permutations, patterns, cross-decoding); every read a block; NaN refused."""
    from sklearn.linear_model import Ridge, RidgeClassifier

    from rnnprobe.analysis import blockwise, decode

    rng = np.random.default_rng(21)
    _count_blocks(monkeypatch, 8 * 45 * 30, with_client)  # half a step of 45 x 60: one set a fit, one step a test
    reads = []
    read = blockwise.read_values
    monkeypatch.setattr(blockwise, "read_values", lambda x, index, layer: reads.append(index) or read(x, index, layer))
    cases = [
        ("label", {"n_permutations": 3, "patterns": True}),  # 4 fit groups of one set
        ("label", {"estimator": RidgeClassifier(alpha=3.0), "n_permutations": 3, "time": [0, 2, 3]}),
        ("pair", {"scoring": "roc_auc", "patterns": True, "n_permutations": 2}),  # stimuli: a set, every step, a test
        ("value", {"estimator": Ridge(alpha=2.0), "patterns": True}),
    ]
    for size, (n, unit_shape, how) in enumerate([(45, (6, 10), "units"), (230, (2, 3), "stimuli")]):
        label, pair = np.arange(n) % 3, np.arange(n) % 2
        states = rng.normal(size=(n, 4, *unit_shape)) * rng.uniform(0.5, 3, size=unit_shape) + 5
        states[:, 1:, 0] += label[:, None, None] * 2.0
        states[:, 1:, 1, :2] += pair[:, None, None] * 0.5
        meta = {"label": label, "pair": pair, "value": states[:, 0, 1, 0] + rng.normal(size=n)}
        Recording({"h": states}, metadata=meta).save(tmp_path / f"{how}.zarr")
        whole, chunked = Recording.load(tmp_path / f"{how}.zarr"), Recording.load(tmp_path / f"{how}.zarr", chunks=20)
        for target, settings in cases[1::2][size : size + 1] if with_client else cases:  # (the cluster: one a size)
            reads.clear()
            expected = decode(whole, "h", target, generalize=True, progress=False, **settings)
            got = decode(chunked, "h", target, generalize=True, progress=False, **settings)
            for name in ("fold_scores", "null", "p_values", "patterns"):
                if getattr(expected, name) is not None:
                    np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-10)
            assert got.scores.shape == expected.scores.shape == (len(got.times),) * 2
            if not with_client:  # every read a block: a row of 10 units of every stimulus, or 5 (40) stimuli
                assert {len(index) for index in reads} == ({1, 2} if how == "units" else {1})
                sizes = {1 if len(index) == 2 else 5 if how == "units" else 40 for index in reads}
                assert all(i[-1].stop - i[-1].start in sizes or i[-1].stop == n for i in reads)
            if target == "label" and "time" not in settings:  # generalizes across the signal's steps
                assert expected.scores[1:, 1:].mean() > expected.scores[0].mean() + 0.2
            if not with_client and how == "units" and settings is cases[0][1]:  # 4 sets: per fit group, per training
                # step, 5 kernel passes of 6 blocks (+ the patterns' kernel and their pass in the first); per set and
                # training step its weights' pass; per set, per training step, the 4 test steps' 9 blocks of 5 stimuli
                assert len(reads) == 4 * (4 * 5 * 6 + 2 * 6) + 4 * 4 * 6 + 4 * 4 * 4 * 9
    # cross-decoding: trained on one recording, tested on another (on the cluster: the first size)
    for n, unit_shape in [(45, (6, 10)), (230, (2, 3))][: 1 if with_client else 2]:
        labels, held_labels = np.arange(n) % 3, np.arange(n - 7) % 3
        train = np.random.default_rng(1).normal(size=(n, 3, *unit_shape)) + 2
        held = np.random.default_rng(2).normal(size=(n - 7, 3, *unit_shape)) + 2
        train[:, 1:, 0] += 2 * labels[:, None, None]
        held[:, 1:, 0] += 2 * held_labels[:, None, None]
        settings = {"n_permutations": 3, "patterns": True, "generalize": True, "progress": False}
        expected = _cross_decoded(tmp_path, (train, labels), (held, held_labels), settings)
        assert expected.scores[1:, 1:].min() > 0.5  # above chance (1 / 3) across the two recordings
        bad = train.copy()
        bad[n - 3, 2, 1, 2] = np.nan  # a step's last block: read by the test pass only after the fits
        Recording({"h": bad}, metadata={"label": labels}).save(tmp_path / f"nan{n}.zarr")
        with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
            decode(Recording.load(tmp_path / f"nan{n}.zarr", chunks=20), "h", "label", generalize=True, progress=False)


@pytest.mark.parametrize(("with_client", "classes"), [(True, 3), (False, 3), (False, 2)])
def test_logistic_decoding_of_steps_larger_than_a_block_reads_them_in_blocks(
    client, tmp_path, monkeypatch, with_client, classes
):
    """Logistic regression (2 or 3 classes) on steps larger than a block with fewer stimuli than units, as in
    memory in the training samples' coordinates, from the folds' kernels summed over blocks of units: over time,
    the generalization matrix and cross-decoding equal the in-memory decoding (scores and null to 1e-10, patterns
    to 1e-6 relative, the solver's precision: its float32 conjugate gradients turn the kernels' rounding, summed
    over other blocks of units, into up to 6e-8); more stimuli than units and other devices read whole steps."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rnnprobe.analysis import blockwise, decode, decoding_steps

    _count_blocks(monkeypatch, 8 * 45 * 30, with_client)  # half a step of 45 x 60
    reads = []
    read = blockwise.read_values
    monkeypatch.setattr(blockwise, "read_values", lambda x, index, layer: reads.append(index) or read(x, index, layer))
    rng = np.random.default_rng(12)
    label = np.arange(45) % classes
    states = rng.normal(size=(45, 4, 6, 10)) * rng.uniform(0.5, 3, size=(6, 10)) + 5
    states[:, 1:, 0] += label[:, None, None] * 1.5
    held = rng.normal(size=(38, 4, 6, 10)) * 2 + 5
    held[:, 1:, 0] += (np.arange(38) % classes)[:, None, None] * 1.5
    Recording({"h": states}, metadata={"label": label}).save(tmp_path / "wide.zarr")
    Recording({"h": held}, metadata={"label": np.arange(38) % classes}).save(tmp_path / "held.zarr")
    whole, chunked = Recording.load(tmp_path / "wide.zarr"), Recording.load(tmp_path / "wide.zarr", chunks=20)
    cases = [
        {"estimator": "logistic", "n_permutations": 5, "patterns": True},
        {"estimator": LogisticRegression(C=0.5), "n_permutations": 2, "scoring": "balanced_accuracy"},
        {"estimator": make_pipeline(StandardScaler(), LogisticRegression(C=2.0)), "generalize": True, "patterns": True},
        {"estimator": "logistic", "n_permutations": 3, "patterns": True, "test": "held"},
    ]
    results = []
    for settings in cases:
        test = settings.pop("test", None)
        reads.clear()
        tested = [test and Recording.load(tmp_path / "held.zarr", chunks=chunks) for chunks in (None, 20)]
        expected = decode(whole, "h", "label", progress=False, test=tested[0], **settings)
        results.append(expected)
        got = decode(chunked, "h", "label", progress=False, test=tested[1], **settings)
        for name in ("fold_scores", "null", "p_values", "patterns"):
            if getattr(expected, name) is not None:
                rtol, atol = (1e-6, 1e-9) if name == "patterns" else (0, 1e-10)
                np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=rtol, atol=atol)
        if not with_client and not settings.get("generalize"):  # blocks of 10 units of every stimulus only
            assert reads and all(len(index) == 2 and index[1].stop - index[1].start == 1 for index in reads)
    chance = 1 / classes
    assert results[0].scores[1:].min() > chance + 0.15 > results[0].scores[0]  # from the signal's first step
    plan = _decode_plan(chunked, "logistic")
    assert decoding_steps.large_steps(chunked, plan) == "units"
    assert decoding_steps.large_steps(chunked, dataclasses.replace(plan, device=torch.device("meta"))) is None
    tall = Recording({"h": np.zeros((61, 1, 2, 6))}, metadata={"label": np.arange(61) % 3})
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 1000)
    assert decoding_steps.large_steps(tall, _decode_plan(tall, "logistic")) == "stimuli"
    assert decoding_steps.large_steps(tall, _decode_plan(tall, "ridge")) == "stimuli"


@pytest.mark.parametrize("with_client", [True, False])
def test_logistic_decoding_of_tall_steps_larger_than_a_block_reads_them_in_blocks_of_stimuli(
    client, tmp_path, monkeypatch, with_client
):
    """Logistic regression (2 or 3 classes) on steps larger than a block with more stimuli than units: the in-memory
    solver with its products summed over blocks of stimuli (a pass per conjugate-gradient step). Over time, with
    shuffled splits, the generalization matrix and cross-decoding equal the in-memory decoding (scores and null to
    1e-10, patterns to 1e-6 relative: the solver's float32 conjugate gradients, whose products are summed in other
    orders); only blocks of stimuli are read; on another device, whole steps."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import ShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rnnprobe.analysis import blockwise, decode, decoding_steps

    _count_blocks(monkeypatch, 8 * 10 * 80, with_client)  # 80 of the 90 stimuli x 10 units: blocks of 20 (a chunk)
    reads = []
    read = blockwise.read_values
    monkeypatch.setattr(blockwise, "read_values", lambda x, index, layer: reads.append(index) or read(x, index, layer))
    cases = [
        {"estimator": "logistic", "n_permutations": 2, "patterns": True},
        {"estimator": LogisticRegression(C=0.5), "cv": ShuffleSplit(3, test_size=0.3, random_state=0)},
        {"estimator": make_pipeline(StandardScaler(), LogisticRegression(C=2.0)), "generalize": True, "patterns": True},
        {"estimator": "logistic", "n_permutations": 1, "patterns": True, "test": "held"},
    ]
    for classes in (2, 3):
        rng = np.random.default_rng(classes)
        layers = []
        for name, n in (("tall", 90), ("held", 70)):
            label = np.arange(n) % classes
            states = rng.normal(size=(n, 2, 2, 5)) * rng.uniform(0.5, 3, size=(2, 5)) + 5
            states[:, 1, 0, :2] += label[:, None] * 2.5
            Recording({"h": states}, metadata={"label": label}).save(tmp_path / f"{name}{classes}.zarr")
            layers.append([Recording.load(tmp_path / f"{name}{classes}.zarr", chunks=c) for c in (None, 20)])
        (whole, chunked), held = layers
        assert decoding_steps.large_steps(chunked, _decode_plan(chunked, "logistic")) == "stimuli"
        for settings in cases:
            settings = dict(settings)
            tested = held if settings.pop("test", None) else (None, None)
            reads.clear()
            expected = decode(whole, "h", "label", progress=False, test=tested[0], **settings)
            got = decode(chunked, "h", "label", progress=False, test=tested[1], **settings)
            for name in ("fold_scores", "null", "p_values", "patterns"):
                if getattr(expected, name) is not None:
                    rtol, atol = (1e-6, 1e-9) if name == "patterns" else (0, 1e-10)
                    np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=rtol, atol=atol)
            if not with_client:  # blocks of 20 stimuli (10 the last), every unit
                assert reads and {index[0].stop - index[0].start for index in reads if len(index) == 1} == {20, 10}
                assert all(len(index) == 1 for index in reads)
            if settings.get("n_permutations") == 2:
                assert expected.scores[1] > 1 / classes + 0.2 > expected.scores[0]  # the signal at the second step
    plan = dataclasses.replace(_decode_plan(chunked, "logistic"), device=torch.device("meta"))
    assert decoding_steps.large_steps(chunked, plan) is None
    bad = np.random.default_rng(0).normal(size=(90, 2, 2, 5))
    bad[87, 1, 1, 2] = np.inf  # in the last block
    Recording({"h": bad}, metadata={"label": np.arange(90) % 3}).save(tmp_path / "inf.zarr")
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        decode(Recording.load(tmp_path / "inf.zarr", chunks=20), "h", "label", estimator="logistic", progress=False)


def _cross_decoded(tmp_path, trained: tuple, held: tuple, settings: dict):
    """decode() trained on the states and labels ``trained`` and tested on ``held``, both saved: the in-memory
    result, once the training store dask-backed (the held-out one dask-backed or not) gave the same to 1e-10.
    """
    from rnnprobe.analysis import decode

    paths = [tmp_path / f"train{len(trained[0])}.zarr", tmp_path / f"held{len(held[0])}.zarr"]
    for path, (states, labels) in zip(paths, (trained, held), strict=True):
        Recording({"h": states}, metadata={"label": labels}).save(path)
    expected = decode(Recording.load(paths[0]), "h", "label", test=Recording.load(paths[1]), **settings)
    for tested in (Recording.load(paths[1], chunks=20), Recording.load(paths[1])):  # dask-backed or not
        got = decode(Recording.load(paths[0], chunks=20), "h", "label", test=tested, **settings)
        for name in ("fold_scores", "null", "patterns", "test_times"):
            np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-10)
    return expected


def test_slot_groups_sum_every_stimulus_once_then_groups_of_folds_where_the_sums_do_not_fit(monkeypatch):
    """Ridge's sums over blocks of stimuli in passes whose Gram matrices fit in a block: one pass where they all do;
    else every stimulus's sums first (held), then groups of folds that fit beside them (a partition's test sets and
    test sets of complementary training sets as ComplementGroup, other training sets as TrainingGroup), one fold a
    group at least; cross-decoding's one slot unchanged."""
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis._ridge_sums import ComplementGroup, FoldSums, TrainingGroup
    from rnnprobe.analysis._stimulus_sums import held_slots, slot_groups

    n, p = 50, 6
    tests = np.array_split(np.arange(n), 5)
    trains = [np.setdiff1d(np.arange(n), test) for test in tests]
    groups = slot_groups(trains, tests, n, p, cross=False)  # 5 Gram matrices of 288 bytes: one pass
    assert [kind for kind, _ in groups] == [FoldSums] and len(groups[0][1]) == 5 and held_slots(groups) == 5
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 3 * 8 * p * p)  # 3 slots a pass: 2 folds beside every stimulus
    groups = slot_groups(trains, tests, n, p, cross=False)
    assert [kind for kind, _ in groups] == [FoldSums, ComplementGroup, ComplementGroup, ComplementGroup]
    assert [[len(rows) for rows in members] for _, members in groups] == [[n], [10, 10], [10, 10], [10]]
    np.testing.assert_array_equal(groups[2][1][0], tests[2])
    assert held_slots(groups) == 3
    short = [train[5:] for train in trains]  # training sets that are not the rest: their own sums
    groups = slot_groups(short, tests, n, p, cross=False)
    assert [kind for kind, _ in groups] == [FoldSums, TrainingGroup, TrainingGroup, TrainingGroup]
    np.testing.assert_array_equal(groups[3][1][0], short[4])
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 8 * p * p)  # one slot a pass: still a fold beside every stimulus
    groups = slot_groups(trains, tests, n, p, cross=False)
    assert [len(members) for _, members in groups] == [1] * 6 and held_slots(groups) == 2
    [(kind, members)] = slot_groups(trains, tests, n, p, cross=True)
    assert kind is FoldSums and len(members) == 1 and len(members[0]) == n


@pytest.mark.parametrize("split", ["k-fold", "shuffled"])
def test_blockwise_decoders_take_units_silent_on_a_training_set_for_constant(tmp_path, monkeypatch, split):
    """Steps decoded from sums over blocks of stimuli (a training set's: the other folds' test sums, or every
    stimulus's less its test set's), with units at 0 on every training stimulus of a fold but large on two of
    its test stimuli: ridge's scores equal scikit-learn's pipeline (a StandardScaler: the unit constant there),
    and logistic regression's the in-memory fit's (tests/test_decoding.py ties that to scikit-learn's)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, ShuffleSplit, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rnnprobe.analysis import decode, decoding_steps

    _count_blocks(monkeypatch, 8 * 60 * 60, with_client=False)  # a block: a quarter of a step
    n, rng = 240, np.random.default_rng(3)
    cv = KFold(3) if split == "k-fold" else ShuffleSplit(3, test_size=0.3, random_state=0)
    label = np.arange(n) % 3
    states = rng.normal(size=(n, 2, 60)) + 0.8 * label[:, None, None]
    for k in range(12, 60):  # silent on every training stimulus of fold k % 3, driven on two of its test stimuli
        test = list(cv.split(states))[k % 3][1]
        first = test[test < 20]  # (in the first block, whose mean the sums are taken about, where it can be)
        driven = rng.choice(first if len(first) >= 2 else test, size=2, replace=False)
        states[:, :, k] = 0.0
        states[driven, :, k] = rng.uniform(7, 70, size=2)[:, None] * ([[1], [1]] if k % 2 else [[1], [-0.99]])
    value = states[:, 0, 0] + rng.normal(size=n)
    meta = {"label": label, "first": label == 0, "value": value}
    Recording({"h": states}, metadata=meta).save(tmp_path / "rec.zarr", chunk_stimuli=20)
    whole, chunked = Recording.load(tmp_path / "rec.zarr"), Recording.load(tmp_path / "rec.zarr", chunks=20)
    assert decoding_steps.large_steps(chunked, _decode_plan(chunked, "ridge")) == "stimuli"
    pipeline = make_pipeline(StandardScaler(), Ridge(alpha=2.0))
    got = decode(chunked, "h", "value", estimator=pipeline, cv=cv, scoring="r2", progress=False)
    expected = [cross_val_score(pipeline, states[:, t], value, cv=cv, scoring="r2") for t in range(2)]
    np.testing.assert_allclose(got.fold_scores, np.transpose(expected), rtol=0, atol=1e-9)
    in_memory = decode(whole, "h", "first", estimator="logistic", cv=cv, scoring="roc_auc", progress=False)
    blockwise = decode(chunked, "h", "first", estimator="logistic", cv=cv, scoring="roc_auc", progress=False)
    np.testing.assert_allclose(blockwise.fold_scores, in_memory.fold_scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [True, False])
def test_ridge_from_sums_gives_a_unit_constant_on_its_samples_a_weight_of_0(scale):
    """Ridge from sums over samples (taken about a centre of other samples, as blocks are): a unit at 0 on every
    sample keeps rounding in its centred sums, and gets a weight of exactly 0, as scikit-learn's, whatever the
    penalty; the other weights are scikit-learn's."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rnnprobe.analysis._ridge_sums import solve

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 5)) + 1.0, rng.normal(size=(40, 1))
    x[:, 2] = 0.0
    centre = np.array([0.9, 1.1, 1 / 3, 1.2, 0.8])  # (a block's mean: the unit is not 0 about it)
    z = x - centre
    coef, intercept, _ = solve((40, z.sum(axis=0), y.sum(axis=0), z.T @ z, z.T @ y), centre, penalty=1e-3, scale=scale)
    assert coef[2, 0] == 0.0
    model = make_pipeline(StandardScaler(), Ridge(alpha=1e-3)) if scale else Ridge(alpha=1e-3)
    np.testing.assert_allclose(x @ coef[:, 0] + intercept[0], model.fit(x, y[:, 0]).predict(x), rtol=1e-9, atol=1e-9)


def test_a_training_sets_sums_are_the_other_folds_sums_added():
    """k-fold: fold f's training sums are the other folds' test sums added (as by hand, to the bit), not the total
    less fold f's, which keeps rounding of fold f's sums ((0.1 + 0.2 + 0.3) - 0.1 is not 0.2 + 0.3 in floating
    point): a unit silent on the training samples keeps a variance of exactly 0 there."""
    from rnnprobe.analysis._ridge_sums import FIELDS, FoldSums

    values = np.array([0.1, 0.2, 0.3])
    sums = FoldSums(np.array([3.0, 4.0, 5.0]), values[:, None], values[:, None], values[:, None, None],
                    values[:, None, None])  # fmt: skip
    for f in range(3):
        others = [k for k in range(3) if k != f]
        for field, got in zip(FIELDS, sums.training(f), strict=True):
            by_hand = getattr(sums, field)[others[0]] + getattr(sums, field)[others[1]]
            np.testing.assert_array_equal(got, by_hand, err_msg=f"{field}, fold {f}")
    assert sums.training(None)[0] == 12.0 and sums.cancelled(0) == 0.0


def _decode_plan(recording: Recording, estimator: str):
    from rnnprobe.analysis.decoding import _plan

    return _plan(recording, "h", "label", estimator=estimator, cv=5, scoring=None, time=None, groups=None, test=None,
                 generalize=False, alpha=1.0, fast=None, n_permutations=0, patterns=False, seed=0,
                 device=None)  # fmt: skip


@pytest.mark.parametrize("with_client", [True, False])
def test_generalizing_and_cross_decoding_dask_backed_recordings_equal_the_whole(
    client, tmp_path, monkeypatch, with_client
):
    """The generalization matrix in two passes of tasks (decoders fitted on blocks of training steps, then
    scored on blocks of test steps; target sets in groups whose weights fit a block), and cross-decoding
    (test=) over time in blocks of steps: equal to the in-memory decode, and never reading a layer whole."""
    from sklearn.neighbors import KNeighborsClassifier

    from rnnprobe.analysis import decode, decoding

    rng = np.random.default_rng(6)
    label, other_label = np.arange(60) % 3, np.arange(45) % 3
    states = rng.normal(size=(60, 5, 4))
    states[:, 2:] += label[:, None, None] * 0.8
    other = rng.normal(size=(45, 5, 4)) + other_label[:, None, None] * 0.8
    Recording({"h": states}, metadata={"label": label}).save(tmp_path / "a.zarr")
    Recording({"h": other}, metadata={"label": other_label}).save(tmp_path / "b.zarr")
    whole, test_whole = (Recording.load(tmp_path / name) for name in ("a.zarr", "b.zarr"))
    chunked, test_chunked = (Recording.load(tmp_path / name, chunks=20) for name in ("a.zarr", "b.zarr"))
    seen = _count_blocks(monkeypatch, 2 * 60 * 4 * 8, with_client)  # blocks of 2 steps
    cases = [  # (training recording, settings); the expected result from the in-memory recordings
        (chunked, {"generalize": True}),
        (
            chunked,
            {"generalize": True, "estimator": "logistic", "n_permutations": 10, "patterns": True, "time": [0, 2, 3, 4]},
        ),
        (chunked, {"generalize": True, "estimator": KNeighborsClassifier(5), "n_permutations": 2}),
        (chunked, {"generalize": True, "test": test_chunked, "n_permutations": 3}),
        (whole, {"generalize": True, "test": test_chunked, "time": slice(1, None)}),
        (chunked, {"test": test_chunked, "n_permutations": 5}),
    ]
    for recording, settings in cases:
        in_memory = {**settings, "test": test_whole} if "test" in settings else settings
        expected = decode(whole, "h", "label", progress=False, **in_memory)
        seen.clear()
        with monkeypatch.context() as patch:
            if settings.get("generalize"):  # over time, each block is decoded in memory by decode() itself
                patch.setattr(decoding, "layer_states", None)  # the in-memory path would read the layers whole
            got = decode(recording, "h", "label", progress=False, **settings)
        np.testing.assert_allclose(got.fold_scores, expected.fold_scores, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(got.test_times, expected.test_times)
        for name in ("null", "p_values", "patterns"):
            if getattr(expected, name) is not None:
                np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-8)
        assert [c.p_value for c in got.clusters] == pytest.approx([c.p_value for c in expected.clusters])
        assert got.scores.shape == expected.scores.shape and got.generalize == expected.generalize
        if settings == {"generalize": True}:
            assert seen == [3, 3]  # 5 steps in blocks of 2: fitted in 3 tasks, then tested in 3
        if "patterns" in settings:  # weights of 5 folds x 4 steps x 4 units x 3 classes: 2 of 11 sets per group
            assert seen == [2, 2] * 6


@pytest.mark.parametrize("with_client", [True, False])
def test_encoding_a_dask_backed_recording_in_blocks_equals_the_whole(client, tmp_path, monkeypatch, with_client):
    from rnnprobe.analysis import fit_encoding

    rng = np.random.default_rng(5)
    states = rng.normal(size=(40, 5, 12))
    trials = states[:, None, 2:4, :6] @ rng.normal(size=(6, 3)) + rng.normal(0, 0.5, size=(40, 4, 2, 3))
    Recording({"h": states, "g": states[:, :, :4]}).save(tmp_path / "rec.zarr")
    whole = Recording.load(tmp_path / "rec.zarr")
    chunked = Recording.load(tmp_path / "rec.zarr", chunks=10)
    seen = _count_blocks(monkeypatch, 2 * 40 * 12 * 8, with_client)  # "h" in blocks of 2 steps: 3 blocks
    for settings in ({}, {"estimator": "pls", "n_components": 3, "time": [0, 2, 3], "ceiling": False}):
        expected = fit_encoding(whole, trials, n_splits=20, **settings)
        got = fit_encoding(chunked, trials, n_splits=20, **settings)
        assert got.scores.keys() == expected.scores.keys() == {"h", "g"}
        for layer in expected.scores:
            np.testing.assert_allclose(got.scores[layer], expected.scores[layer], rtol=0, atol=1e-10)
            np.testing.assert_allclose(got.r2[layer], expected.r2[layer], rtol=0, atol=1e-10)
            np.testing.assert_array_equal(got.model_times[layer], expected.model_times[layer])
        assert got.edge_share == pytest.approx(expected.edge_share, nan_ok=True)
    # "h" (5 steps) in 3 blocks and "g" in 1; then 3 steps of "h", 2 of "g"; on the client's 2 worker threads, at
    # least 2 blocks where there are 2 steps (a block is a task)
    assert seen == ([3, 2, 2, 2] if with_client else [3, 1, 2, 1])


@pytest.mark.parametrize("with_client", [True, False])
def test_encoding_steps_larger_than_a_block_reads_them_in_blocks(client, tmp_path, monkeypatch, with_client):
    """A dask-backed feature step larger than a block, fitted by ridge or PLS in its dual form: its Gram matrix
    across stimuli (or conditions' means) from pairs of blocks of stimuli, the step never read whole; equal to the
    whole step's fit."""
    from rnnprobe.analysis import blockwise, fit_encoding

    rng = np.random.default_rng(9)
    n = 36
    states = rng.normal(size=(n, 3, 6, 10)) + 4
    trials = states[:, None, :2, 0, :4] @ rng.normal(size=(4, 3)) + rng.normal(0, 0.5, size=(n, 4, 2, 3))
    image = np.arange(n) // 2  # two stimuli per image: features averaged per image
    Recording({"h": states}, metadata={"image": image}).save(tmp_path / "rec.zarr")
    neural = Recording({"IT": trials.reshape(n * 4, 2, 3)}, metadata={"image": np.repeat(image, 4)})
    whole, chunked = Recording.load(tmp_path / "rec.zarr"), Recording.load(tmp_path / "rec.zarr", chunks=10)
    _count_blocks(monkeypatch, 8 * n * 30, with_client)  # half a step: 6 blocks of 10 units
    reads = []
    read = blockwise.read_values
    monkeypatch.setattr(blockwise, "read_values", lambda x, index, layer: reads.append(index) or read(x, index, layer))
    cases = [
        (trials, {}),
        (trials, {"inner_cv": 3, "time": [0, 2]}),
        (neural, {"descriptor": "image"}),
        (trials, {"estimator": "pls", "n_components": 3}),
        (trials, {"cv": 2, "alphas": [0.1, 10.0]}),
        (neural, {"descriptor": "image", "estimator": "pls_nipals", "n_components": 2, "time": [1]}),
    ]
    for responses, settings in cases:
        expected = fit_encoding(whole, responses, n_splits=10, **settings)
        got = fit_encoding(chunked, responses, n_splits=10, **settings)
        np.testing.assert_allclose(got.scores["h"], expected.scores["h"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.r2["h"], expected.r2["h"], rtol=0, atol=1e-10)
        assert got.edge_share == pytest.approx(expected.edge_share, nan_ok=True)
    if not with_client:  # groups of 10 stimuli (a chunk; 18 fit a block) held in turn, the stimuli after each read
        # in blocks of 9 (half a block): 4 groups + 3 + 2 + 1 blocks = 10 reads per step, of 3 + 2 + 3 + 3 + 3 + 1
        # steps
        sizes = [index[0].stop - index[0].start for index in reads[:10]]
        assert sizes == [10, 9, 9, 8, 10, 9, 7, 10, 6, 6] and {len(index) for index in reads} == {1}
        assert len(reads) == 10 * (3 + 2 + 3 + 3 + 3 + 1)
    bad = states.copy()
    bad[20, 1, 3, 7] = np.nan
    Recording({"h": bad}).save(tmp_path / "nan.zarr")
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 8 * n * 30)
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):  # refused from the blocks of stimuli
        fit_encoding(Recording.load(tmp_path / "nan.zarr", chunks=10), trials, n_splits=10)
    assert with_client or reads  # (read in blocks, not whole: counted here without a client)


def test_step_rows_give_each_conditions_mean_once_in_the_block_of_its_last_stimulus(tmp_path, monkeypatch):
    """StepRows of a dask-backed step: its stimuli block by block, or the conditions' means (consecutive, scattered,
    a condition of one stimulus, stimuli of no condition), each once, equal to the means of the step in memory, the
    sums of conditions that span blocks held until their last stimulus."""
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis._stimulus_sums import StepRows

    rng = np.random.default_rng(3)
    states = rng.normal(size=(23, 1, 4)) + 10
    Recording({"h": states}).save(tmp_path / "rec.zarr")
    x = blockwise.step_states(Recording.load(tmp_path / "rec.zarr", chunks=5), "h", 0)
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 8 * 4 * 4 * 5)  # blocks of 5 stimuli
    monkeypatch.setitem(dask.config.config, "scheduler", "synchronous")
    groups = [np.array([0, 1, 2]), np.array([4, 5, 6, 7]), np.array([3, 20, 9]), np.array([12]), np.array([22, 8])]
    for given in (None, groups):
        rows = StepRows(x, "h", given)
        seen, expected = [], states[:, 0] if given is None else np.stack([states[g, 0].mean(0) for g in given])
        for b, (pos, values) in enumerate(rows):
            at = np.flatnonzero(pos >= 0)
            np.testing.assert_allclose(values[pos[at]], expected[at], rtol=1e-15)
            seen.extend((int(i), b) for i in at)
        assert sorted(i for i, _ in seen) == list(range(rows.n))  # each row once
        if given is not None:  # in the block (of 5 stimuli) of its last stimulus
            assert dict(seen) == {0: 0, 1: 1, 2: 4, 3: 2, 4: 4}
    np.testing.assert_allclose(rows.first_mean(), states[:5, 0].mean(0), rtol=1e-15)


@pytest.mark.parametrize("with_client", [True, False])
def test_encoding_tall_steps_larger_than_a_block_are_fitted_from_sums_over_blocks_of_stimuli(
    client, tmp_path, monkeypatch, with_client
):
    """A dask-backed step larger than a block with no more units than training stimuli, fitted by ridge (penalties
    by leave-one-out) or PLS: from each fold's sums over blocks of stimuli (k-fold, shuffled splits, splits that leave
    stimuli out; the folds' Gram matrices in groups), then the leave-one-out errors' and the predictions' passes; of
    the conditions' means (consecutive pairs of stimuli, or scattered ones), each formed in the block that reads its
    last stimulus; penalties by inner k-fold; the step never read whole, and equal to the whole step's fit. Other
    regressors, and targets whose sums would take more than 4 blocks, read whole steps."""
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import ShuffleSplit

    from rnnprobe.analysis import blockwise, fit_encoding

    rng = np.random.default_rng(12)
    n = 60
    states = rng.normal(size=(n, 3, 8)) * np.linspace(0.5, 2, 8) + 4
    trials = states[:, None, :2, :4] @ rng.normal(size=(4, 3)) + rng.normal(0, 0.5, size=(n, 4, 2, 3))
    image, scattered = np.arange(n) // 2, np.arange(n) % 30  # pairs of stimuli: i and i + 1, or i and i + 30
    Recording({"h": states}, metadata={"image": image, "scattered": scattered}).save(tmp_path / "rec.zarr")
    trial_rows = {"image": np.repeat(image, 4), "scattered": np.repeat(scattered, 4)}
    neural = Recording({"IT": trials.reshape(n * 4, 2, 3)}, metadata=trial_rows)
    whole, chunked = Recording.load(tmp_path / "rec.zarr"), Recording.load(tmp_path / "rec.zarr", chunks=10)
    _count_blocks(monkeypatch, 8 * n * 4, with_client)  # half a step; room for 3 Gram matrices
    reads = []
    read = blockwise.read_values
    monkeypatch.setattr(blockwise, "read_values", lambda x, index, layer: reads.append(index) or read(x, index, layer))
    shuffled = list(ShuffleSplit(4, test_size=0.3, random_state=0).split(np.arange(n)))
    alphas = np.logspace(-2, 4, 13)  # (the default grid's largest penalties leave near-constant predictions)
    cases = [  # (responses, settings)
        (trials, {"alphas": alphas}),
        (trials, {"alphas": alphas, "cv": shuffled}),  # test sets that overlap
        (trials, {"alphas": alphas, "cv": [(train[:30], test) for train, test in shuffled]}),  # left out
        (trials, {"estimator": "pls", "n_components": 3, "time": [0, 2]}),
        (trials, {"estimator": "pls_nipals", "n_components": 2, "cv": shuffled}),
        (trials, {"alphas": alphas, "inner_cv": 3, "time": [1]}),
        (neural, {"descriptor": "image", "alphas": alphas, "time": [1]}),
        (neural, {"descriptor": "image", "estimator": "pls", "n_components": 2, "cv": 3, "time": [2]}),
        (neural, {"descriptor": "scattered", "alphas": alphas, "cv": 3, "time": [0]}),
    ]
    for responses, settings in cases:
        expected = fit_encoding(whole, responses, **{"n_splits": 10, **settings})
        reads.clear()
        got = fit_encoding(chunked, responses, **{"n_splits": 10, **settings})
        np.testing.assert_allclose(got.scores["h"], expected.scores["h"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.r2["h"], expected.r2["h"], rtol=0, atol=1e-10)
        assert got.edge_share == pytest.approx(expected.edge_share, nan_ok=True)
        assert with_client or reads  # (counted here without a client)
        assert all(index[0].stop - index[0].start < n and len(index) == 1 for index in reads)
    many = states[:, None, :2, :4] @ rng.normal(size=(4, 40)) + rng.normal(0, 0.5, size=(n, 4, 2, 40))
    for responses, settings in [(trials, {"estimator": Lasso(alpha=0.05)}), (many, {"alphas": alphas})]:
        reads.clear()  # other regressors, and 80 targets (sums larger than 4 blocks), read whole steps
        expected = fit_encoding(whole, responses, n_splits=10, time=[0], **settings)
        got = fit_encoding(chunked, responses, n_splits=10, time=[0], **settings)
        np.testing.assert_allclose(got.scores["h"], expected.scores["h"], rtol=0, atol=1e-10)
        assert not reads
    expected = fit_encoding(whole, trials, n_splits=10)  # the default grid: scores of near-constant predictions
    reads.clear()
    got = fit_encoding(chunked, trials, n_splits=10)
    np.testing.assert_allclose(got.scores["h"], expected.scores["h"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(got.r2["h"], expected.r2["h"], rtol=0, atol=1e-10)
    if not with_client:  # per step: the centre's block, then passes over 9 blocks of 7 stimuli: every stimulus's sums,
        # then 5 folds' in 3 groups (room for 3 Gram matrices: 2 beside every stimulus's), each group's leave-one-out
        # errors, the predictions
        assert len(reads) == 3 * (1 + 9 * (1 + 3 + 3 + 1))
    bad = states.copy()
    bad[33, 1, 5] = np.nan
    Recording({"h": bad}).save(tmp_path / "nan.zarr")
    reads.clear()
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):  # refused from the blocks of stimuli
        fit_encoding(Recording.load(tmp_path / "nan.zarr", chunks=10), trials, n_splits=10, alphas=alphas)
    assert with_client or reads


@pytest.mark.parametrize("with_client", [True, False])
def test_encoding_dask_backed_responses_averages_and_splits_their_repetitions_blockwise(
    client, tmp_path, monkeypatch, with_client
):
    """Neural trials on disk grouped by a descriptor (shuffled trial order, 6 repetitions): their mean and every
    split's half means are weighted sums of each image's trials in chunks of whole images, two splits per pass
    here; the scores, R² and noise ceiling equal the in-memory fit's, the trials never read whole; NaN refused."""
    import dask

    from rnnprobe.analysis import fit_encoding
    from rnnprobe.analysis.encoding import blockwise, inputs

    rng = np.random.default_rng(6)
    n_stimuli, n_reps = 30, 6
    x = rng.normal(size=(n_stimuli, 8))
    signal = (x @ rng.normal(size=(8, 15))).reshape(n_stimuli, 3, 5)  # 3 time bins x 5 neurons
    stimulus = rng.permutation(np.repeat(np.arange(n_stimuli) * 10, n_reps))  # descriptor values, trials shuffled
    trials = signal[stimulus // 10] + rng.normal(0, 2.0, size=(stimulus.size, 3, 5))
    Recording({"IT": trials}, metadata={"image": stimulus}).save(tmp_path / "neural.zarr")
    features = Recording({"f": x[:, None]}, metadata={"image": np.arange(n_stimuli) * 10})
    settings = {"descriptor": "image", "n_splits": 5, "cv": 3}
    expected = fit_encoding(features, Recording.load(tmp_path / "neural.zarr"), **settings)
    passes = []
    real_sums = blockwise.repetition_sums
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
        patch.setattr(inputs, "layer_states", None)  # the in-memory path would read the trials whole
        patch.setattr(blockwise, "BUDGET", 2 * 2 * 8 * n_stimuli * 3 * 5)  # two splits' halves per pass
        patch.setattr(blockwise, "repetition_sums", lambda *a: passes.append(a[3].sum(axis=1)) or real_sums(*a))
        got = fit_encoding(features, Recording.load(tmp_path / "neural.zarr", chunks=32), **settings)
    # the mean (all 6 repetitions), then 5 splits' halves of 3 repetitions, two splits' per pass
    assert [weights.tolist() for weights in passes] == [[6.0], [3.0] * 4, [3.0] * 4, [3.0] * 2]
    np.testing.assert_allclose(got.scores["f"], expected.scores["f"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.r2["f"], expected.r2["f"], rtol=0, atol=1e-10)
    for name in ("reliability", "split_half"):
        np.testing.assert_allclose(getattr(got.ceiling, name), getattr(expected.ceiling, name), rtol=0, atol=1e-12)
    assert np.all(expected.ceiling.reliability > 0.5)  # a ceiling worth comparing
    bad = trials.copy()
    bad[7, 1, 2] = np.nan
    Recording({"IT": bad}, metadata={"image": stimulus}).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match="layer 'IT' holds NaN or inf"):
        fit_encoding(features, Recording.load(tmp_path / "bad.zarr", chunks=32), **settings)


@pytest.mark.parametrize("with_client", [True, False])
def test_pca_of_a_dask_backed_recording_equals_the_in_memory_one(client, tmp_path, monkeypatch, with_client):
    """Blockwise PCA (dask's tall-and-skinny SVD, Gram matrices per step summed over chunks of stimuli)
    against numpy's SVD of the whole layer; never reads the layer whole (layer_states would)."""
    import dask

    from rnnprobe.analysis import fit_pca, pca, pca_blockwise

    rng = np.random.default_rng(6)
    fields = ["components", "mean", "explained_variance", "explained_variance_ratio", "trajectories"]
    for shape in ((40, 5, 6), (30, 4, 2, 25)):  # p x p Gram matrices per step; n x n (more units than stimuli)
        states = rng.normal(size=shape) * np.linspace(3, 0.2, int(np.prod(shape[2:]))).reshape(shape[2:]) + 2.0
        states[:, 0] = 0.0  # a constant step: no variance, NaN participation ratio
        states[:, 1] = 0.1  # one of rounding's spread once centred (no float64 mean of it is 0.1): NaN too
        Recording({"h": states}).save(tmp_path / f"{len(shape)}.zarr")
        whole = Recording.load(tmp_path / f"{len(shape)}.zarr")
        chunked = Recording.load(tmp_path / f"{len(shape)}.zarr", chunks={"stimuli": 7, "time": 2})
        for settings in ({}, {"time": slice(2, None), "stimuli": slice(3, 27), "n_components": 3}):
            expected = fit_pca(whole, "h", **settings)
            with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
                patch.setattr(pca, "layer_states", None)  # the in-memory path would call it
                patch.setattr(pca_blockwise, "GRAM_BUDGET", 8 * 30**2 * 2)  # two steps per pass: 2 or 3 passes
                got = fit_pca(chunked, "h", **settings)
            for name in fields:
                np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(got.participation_ratio, expected.participation_ratio, rtol=1e-10)
            assert np.isnan(got.participation_ratio[:2]).all() and not np.isnan(got.participation_ratio[2:]).any()
            assert got.fit_time.tolist() == expected.fit_time.tolist()
            with monkeypatch.context() as patch:
                patch.setattr(Recording, "get", None)  # projected blockwise, never read whole
                projected = expected.transform(chunked)
            np.testing.assert_allclose(projected, expected.trajectories, rtol=1e-10, atol=1e-10)


def test_pca_of_a_dask_backed_recording_refuses_nan(client, tmp_path):
    from rnnprobe.analysis import fit_pca

    states = np.random.default_rng(0).normal(size=(20, 3, 5))
    finite = fit_pca(Recording({"h": states.copy()}))
    states[7, 2, 1] = np.inf
    Recording({"h": states}).save(tmp_path / "nan.zarr")
    with pytest.raises(rnnprobe.errors.NonFiniteError, match="layer 'h' holds NaN or inf among the selected states"):
        fit_pca(Recording.load(tmp_path / "nan.zarr", chunks=5), "h")
    with pytest.raises(rnnprobe.errors.NonFiniteError, match="layer 'h' holds NaN or inf among the selected states"):
        finite.transform(Recording.load(tmp_path / "nan.zarr", chunks=5))
    with pytest.raises(rnnprobe.errors.NonFiniteError, match="1 non-finite value"):
        finite.transform(states)


@pytest.mark.parametrize("with_client", [True, False])
def test_timescales_of_a_dask_backed_recording_equal_the_in_memory_ones(client, tmp_path, monkeypatch, with_client):
    import dask

    from rnnprobe.analysis import fit_timescales, timescales

    rng = np.random.default_rng(7)
    x = np.zeros((50, 30, 2, 2))
    x[:, 0] = rng.normal(size=(50, 2, 2))
    for t in range(29):  # AR(1) units with different time constants, and one constant unit
        x[:, t + 1] = np.array([[0.9, 0.6], [0.3, 0.0]]) * x[:, t] + rng.normal(size=(50, 2, 2))
    x[:, :, 1, 1] = 0.1  # (no float64 mean of it is 0.1: rounding's spread, not a unit's)
    Recording({"h": x}).save(tmp_path / "ar.zarr")
    whole = Recording.load(tmp_path / "ar.zarr")
    chunked = Recording.load(tmp_path / "ar.zarr", chunks={"stimuli": 12, "time": 7})
    for settings in ({}, {"max_lag": 6, "time": slice(4, 25)}):
        expected = fit_timescales(whole, "h", **settings)
        with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
            patch.setattr(timescales, "layer_states", None)  # the in-memory path would call it
            got = fit_timescales(chunked, "h", **settings)
        np.testing.assert_allclose(got.autocorrelation, expected.autocorrelation, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.tau, expected.tau, rtol=1e-9)
        assert np.isnan(got.autocorrelation[3]).all() and got.valid.tolist() == expected.valid.tolist()
    states = x.copy()
    states[3, 5, 0, 1] = np.nan
    Recording({"h": states}).save(tmp_path / "nan.zarr")
    with pytest.raises(rnnprobe.errors.NonFiniteError, match="layer 'h' holds NaN or inf among the selected states"):
        fit_timescales(Recording.load(tmp_path / "nan.zarr", chunks=10), "h")
    with pytest.raises(ArgumentError, match="max_lag"):
        fit_timescales(chunked, "h", max_lag=30)


def test_permutation_and_bootstrap_samples_as_tasks_equal_the_local_ones(client, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from rnnprobe.analysis import blockwise, bootstrap_conditions, bootstrap_subjects, decode, permutation_test

    rng = np.random.default_rng(6)
    truth = rng.random(66)  # 12 conditions
    data = truth + rng.normal(0, 0.3, size=(5, 66))
    models = np.stack([truth, rng.random(66)])
    label = np.arange(60) % 3
    rec = Recording({"h": rng.normal(size=(60, 4, 5)) + label[:, None, None] * 0.5}, metadata={"label": label})
    calls = [
        lambda: permutation_test(models, data, n_permutations=300, comparison="corr", seed=1),
        lambda: permutation_test(models, data, n_permutations=40, comparison="spearman", seed=2),
        lambda: bootstrap_conditions(models, data, n_bootstrap=60, comparison="corr", seed=3),
        lambda: bootstrap_conditions(models, data, n_bootstrap=30, comparison="tau-a", seed=3),
        lambda: bootstrap_subjects(models, data, n_bootstrap=50, comparison="spearman", seed=4),
        lambda: decode(rec, "h", "label", n_permutations=30, progress=False),
        lambda: decode(
            rec,
            "h",
            "label",
            estimator=LogisticRegression(),
            fast=False,
            n_permutations=9,
            time=[0, 3],
            cv=3,
            progress=False,
        ),
    ]
    blocks = []
    sample_blocks = blockwise.sample_blocks
    monkeypatch.setattr(blockwise, "sample_blocks", lambda n: blocks.append(sample_blocks(n)) or blocks[-1])
    on_cluster = [call() for call in calls]
    assert len(blocks) == len(calls) and all(b is not None and len(b) == 8 for b in blocks)  # 2 workers x 4
    monkeypatch.setattr(blockwise, "active_client", lambda: None)
    for got, call in zip(on_cluster, calls, strict=True):
        expected = call()
        for name in ("null", "p_values", "evaluations", "noise_ceiling", "fold_scores"):
            if hasattr(expected, name) and getattr(expected, name) is not None:
                np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-12)


def _alignment_layers(tmp_path):
    """A wide layer of rank 6 (more units than stimuli: it enters as its principal coordinates) and a narrow
    one, offset from 0, saved and opened whole and in chunks."""
    rng = np.random.default_rng(12)
    latent = rng.normal(size=(40, 4, 6))
    wide = np.einsum("ntk,kp->ntp", latent, rng.normal(size=(6, 60))) + 1e4  # far from 0: centred first
    narrow = np.einsum("ntk,kp->ntp", latent[:, :3], rng.normal(size=(6, 10))) + rng.normal(size=(40, 3, 10)) - 4
    Recording({"wide": wide.reshape(40, 4, 6, 10), "narrow": narrow}).save(tmp_path / "align.zarr")
    return Recording.load(tmp_path / "align.zarr"), Recording.load(
        tmp_path / "align.zarr", chunks={"stimuli": 16, "time": 2}
    )


@pytest.mark.parametrize("with_client", [True, False])
def test_alignment_of_dask_backed_recordings_equals_the_in_memory_one(client, tmp_path, monkeypatch, with_client):
    """Every metric, in sample and cross-validated, over time and pairwise: a wide layer from its stimuli's
    Gram matrices summed over chunks (PWCCA's loadings read from its units), a narrow one as its moments
    summed over chunks (cross products in blocks of pairs), never read whole; equal to the in-memory
    comparison; NaN refused."""
    import dask

    from rnnprobe.analysis import compare_representations, pairwise_distances
    from rnnprobe.analysis.alignment import blockwise, inputs, moments

    whole, chunked = _alignment_layers(tmp_path)
    wide_array = np.random.default_rng(14).normal(size=(40, 3)) @ np.random.default_rng(15).normal(size=(3, 55))
    cases = [(m, None) for m in inputs.METRICS] + [(m, 3) for m in inputs.FITTED_METRICS]
    if with_client:  # the same code on the cluster: the reads and PWCCA's loadings as its tasks
        cases = [("pwcca", None), ("pwcca", 3), ("debiased_cka", None)]
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):

        def reading(recording, *args, real=inputs.layer_states, **kwargs):  # the in-memory path's read
            assert not recording.is_dask, "a dask-backed layer read whole"
            return real(recording, *args, **kwargs)

        patch.setattr(inputs, "layer_states", reading)
        patch.setattr(moments, "BLOCK_BYTES", 3 * 3 * 10 * 10 * 8)  # 3 pairs of narrow steps, 3 folds
        patch.setattr(blockwise, "GRAM_BYTES", 3 * 40 * 60 * 8)  # the wide layer's Gram matrices: steps 3 + 1
        passes = []  # the steps of each pass of the wide layer's Gram matrices

        def gram_pass(centred, real=blockwise._gram_matrices):
            if centred.shape[2] == 60:
                passes.append(centred.shape[1])
            return real(centred)

        patch.setattr(blockwise, "_gram_matrices", gram_pass)
        widths = []  # the sides summed over stimuli: every one no wider than the 40 stimuli

        def summed(sides, *args, real=moments.moment_values, **kwargs):
            widths.extend(side.shape[2] for side in sides)
            return real(sides, *args, **kwargs)

        patch.setattr(moments, "moment_values", summed)
        got = {(m, cv, pair): compare_representations(chunked, chunked, layer=pair, metric=m, cv=cv,
                                                      alpha=0.5 if m == "shape" else 1.0).values
               for m, cv in cases for pair in [("wide", "narrow"), ("narrow", "wide"), ("wide", "wide"),
                                                ("narrow", "narrow")]}  # fmt: skip
        distances = [pairwise_distances({"w": chunked, "n": chunked, "array": np.arange(40.0)[:, None] ** [1, 2],
                                         "wide array": wide_array},
                                        layer={"w": "wide", "n": "narrow"}, metric=m, cv=cv).distances
                     for m, cv in [("pwcca", None), ("shape", 3)]]  # fmt: skip
    assert set(passes) == {3, 1}  # 4 steps in passes of 3 and 1; one step (pairwise) in one
    assert widths and max(widths) <= 40  # the wide array (55 units) entered as its principal coordinates
    for (metric, cv, pair), values in got.items():
        expected = compare_representations(whole, whole, layer=pair, metric=metric, cv=cv,
                                           alpha=0.5 if metric == "shape" else 1.0).values  # fmt: skip
        # a step against itself: the shape distance ~ 0, where arccos turns rounding of 1e-16 into 1e-8
        tolerance = 1e-6 if metric == "shape" and pair[0] == pair[1] else 1e-10
        np.testing.assert_allclose(values, expected, rtol=0, atol=tolerance, err_msg=f"{metric} cv={cv} {pair}")
    for got_distances, (metric, cv) in zip(distances, [("pwcca", None), ("shape", 3)], strict=True):
        expected = pairwise_distances({"w": whole, "n": whole, "array": np.arange(40.0)[:, None] ** [1, 2],
                                         "wide array": wide_array},
                                      layer={"w": "wide", "n": "narrow"}, metric=metric, cv=cv).distances  # fmt: skip
        np.testing.assert_allclose(got_distances, expected, rtol=0, atol=1e-10)
    bad = np.random.default_rng(0).normal(size=(40, 2, 50))
    bad[7, 1, 3] = np.nan
    Recording({"h": bad, "g": bad[:, :, :5]}).save(tmp_path / "bad.zarr")
    for layer in ("h", "g"):  # wide: the Gram pass refuses it; narrow: the moments' first pass
        with pytest.raises(NonFiniteError, match=f"layer '{layer}' holds NaN or inf"):
            compare_representations(Recording.load(tmp_path / "bad.zarr", chunks=16), bad[:, 0, 5:9] + 1,
                                    layer=(layer, None))  # fmt: skip


@pytest.mark.parametrize("with_client", [True, False])
def test_hash_recording_of_a_dask_backed_recording_stays_lazy(client, tmp_path, monkeypatch, with_client):
    """Fly-hash codes of a layer on disk: a lazy layer hashed chunk by chunk when read (a FlyHash and a
    custom hasher), equal to the in-memory codes; the hashed layer's RDMs blockwise; NaN refused on read."""
    import dask

    from rnnprobe.analysis import flyhash, hash_recording, random_projection

    rng = np.random.default_rng(13)
    states = rng.normal(size=(30, 3, 2, 5))
    Recording({"h": states}, metadata={"label": np.arange(30) % 3}).save(tmp_path / "rec.zarr")
    whole, chunked = Recording.load(tmp_path / "rec.zarr"), Recording.load(tmp_path / "rec.zarr", chunks=8)
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
        patch.setattr(flyhash, "layer_states", None)  # the in-memory path would call it
        lazy = hash_recording(chunked, "h", expansion=20, k=6, seed=0)
        projected = hash_recording(chunked, "h", random_projection(10, 4, seed=1), name="lsh")
        assert lazy.is_dask and projected.is_dask and lazy.shapes == {"h:flyhash": (30, 3, 200)}
        codes, lsh = lazy.get("h:flyhash"), projected.get("lsh")
        rdms = compute_rdms(lazy, "h:flyhash", distance="euclidean", descriptor="label").dissimilarities
    np.testing.assert_array_equal(codes, hash_recording(whole, "h", expansion=20, k=6, seed=0).get("h:flyhash"))
    np.testing.assert_allclose(lsh, hash_recording(whole, "h", random_projection(10, 4, seed=1)).get("h:flyhash"),
                               rtol=1e-6)  # fmt: skip
    assert list(lazy.column("label")) == list(whole.column("label"))
    expected = compute_rdms(hash_recording(whole, "h", expansion=20, k=6, seed=0), distance="euclidean",
                            descriptor="label").dissimilarities  # fmt: skip
    np.testing.assert_allclose(rdms, expected, rtol=0, atol=1e-10)
    bad = states.copy()
    bad[20, 1, 0, 0] = np.nan
    Recording({"h": bad}).save(tmp_path / "bad.zarr")
    hashed = hash_recording(Recording.load(tmp_path / "bad.zarr", chunks=8), "h", expansion=20, k=6)
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        hashed.get("h:flyhash")


@pytest.mark.parametrize("with_client", [True, False])
def test_dmd_of_a_dask_backed_recording_is_blockwise(client, tmp_path, monkeypatch, with_client):
    """HAVOK DMD of trials on disk: the delay embedding's Gram matrix and the leading coordinates' one-step
    products (signs fixed by each coordinate's largest entry, found across chunks) summed over chunks of
    trials, never reading the layer whole (also with no rank, every coordinate well conditioned); equal to the
    in-memory fit; rank-deficient states with no rank from a tall-and-skinny QR, blockwise too, unless the kept
    singular values are too spread (then read);
    DSA between a dask-backed and an in-memory system; NaN refused."""
    import dask

    import rnnprobe._validation as validation
    from rnnprobe.analysis import compare_dynamics, fit_dmd
    from rnnprobe.testing import make_dynamics

    states = make_dynamics("cycle", n_trials=40, n_steps=30, n_units=6, noise=0.05, seed=3)
    Recording({"h": states}).save(tmp_path / "rec.zarr")
    whole, chunked = Recording.load(tmp_path / "rec.zarr"), Recording.load(tmp_path / "rec.zarr", chunks=7)
    other = states[:, :, ::-1].copy()
    settings = [{"n_delays": 3, "delay_interval": 2, "rank": 8, "ridge": 0.1}, {"n_delays": 2, "rank": 5,
                "time": slice(2, 28)}]  # fmt: skip
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):

        def reading(recording, *args, real=validation.layer_states, **kwargs):  # the in-memory path's read
            assert not recording.is_dask, "a dask-backed layer read whole"
            return real(recording, *args, **kwargs)

        patch.setattr(validation, "layer_states", reading)
        got = [fit_dmd(chunked, **kw) for kw in settings]
        distance = compare_dynamics(chunked, other, rank=6, n_delays=2).distance
        full = fit_dmd(chunked, n_delays=2)  # no rank: every coordinate, all well conditioned
    for result, kw in zip(got, settings, strict=True):
        expected = fit_dmd(whole, **kw)
        for name in ("operator", "eigenvalues", "singular_values"):
            np.testing.assert_allclose(getattr(result, name), getattr(expected, name), rtol=0, atol=1e-10, err_msg=name)
        assert result.explained == pytest.approx(expected.explained, abs=1e-12) and result.rank == expected.rank
    assert distance == pytest.approx(compare_dynamics(whole, other, rank=6, n_delays=2).distance, abs=1e-8)
    assert full.rank == 12
    np.testing.assert_allclose(full.operator, fit_dmd(whole, n_delays=2).operator, rtol=0, atol=1e-10)
    # rank-deficient states (every unit twice): without a rank, the numerical rank the in-memory SVD keeps, from
    # the tall-and-skinny QR's triangular factor, blockwise; a rank beyond it is the in-memory fit's error.
    # Kept singular values more than 1e4 apart (a unit scaled by 1e-6) need the in-memory SVD: read.
    Recording({"h": np.concatenate([states, states], axis=2)}).save(tmp_path / "twice.zarr")
    spread = np.concatenate([states, 1e-6 * states[:, :, ::-1] ** 2], axis=2)
    Recording({"h": spread}).save(tmp_path / "spread.zarr")
    with monkeypatch.context() as patch, dask.config.set(scheduler=None if with_client else "threads"):
        patch.setattr(validation, "layer_states", reading)
        twice = fit_dmd(Recording.load(tmp_path / "twice.zarr", chunks=7), n_delays=2)
        with pytest.raises(ArgumentError, match="rank: got 9, but the delay embedding of h"):
            fit_dmd(Recording.load(tmp_path / "twice.zarr", chunks=7), rank=9)
        with pytest.raises(AssertionError, match="a dask-backed layer read whole"):
            fit_dmd(Recording.load(tmp_path / "spread.zarr", chunks=7), n_delays=2)
    assert twice.rank == 12
    in_memory = fit_dmd(Recording.load(tmp_path / "twice.zarr"), n_delays=2)
    for name in ("operator", "eigenvalues", "singular_values"):
        np.testing.assert_allclose(getattr(twice, name), getattr(in_memory, name), rtol=0, atol=1e-10, err_msg=name)
    spread_fit = fit_dmd(Recording.load(tmp_path / "spread.zarr", chunks=7), n_delays=2)
    assert spread_fit.rank == 24
    spread_expected = fit_dmd(Recording.load(tmp_path / "spread.zarr"), n_delays=2)
    np.testing.assert_allclose(spread_fit.operator, spread_expected.operator, rtol=0, atol=1e-12)
    bad = states.copy()
    bad[33, 4, 2] = np.nan
    Recording({"h": bad}).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match="layer 'h' holds NaN or inf"):
        fit_dmd(Recording.load(tmp_path / "bad.zarr", chunks=7), rank=4)


@pytest.mark.parametrize("units", [3, 30])
def test_dask_backed_states_the_same_for_every_stimulus_at_0_1_are_refused(tmp_path, units):
    """Blockwise alignment (sums over stimuli for a narrow layer, principal coordinates for a wide one): a step
    whose states are 0.1 for every stimulus (rounding's spread once centred) is refused as in memory."""
    from rnnprobe.analysis import compare_representations

    rng = np.random.default_rng(4)
    x = rng.normal(size=(24, 2, units))
    x[:, 1] = 0.1
    Recording({"h": x}).save(tmp_path / "a.zarr")
    chunked = Recording.load(tmp_path / "a.zarr", chunks={"stimuli": 8})
    other = Recording({"h": rng.normal(size=(24, 2, 3))})
    for metric, cv in (("cka", None), ("shape", 2)):
        with pytest.raises(ArgumentError, match="time position 1 are the same for every stimulus"):
            compare_representations(chunked, other, layer="h", metric=metric, cv=cv)


def test_alignment_settings_are_checked_before_a_dask_backed_layer_is_read(tmp_path, monkeypatch):
    """Bad settings and unequal stimuli fail before any blockwise read (the costly part), with the errors of
    the in-memory path."""
    from rnnprobe.analysis import compare_representations, pairwise_distances
    from rnnprobe.analysis.alignment import blockwise

    _, chunked = _alignment_layers(tmp_path)
    monkeypatch.setattr(blockwise, "dask_states", None)  # a blockwise read would call it
    with pytest.raises(ArgumentError, match=r"alpha: got 0\.5, but alpha"):
        compare_representations(chunked, chunked, layer="wide", metric="cka", alpha=0.5)
    with pytest.raises(ArgumentError, match="cv: got 3, but metric='cka' fits nothing"):
        pairwise_distances({"a": chunked, "b": np.ones((40, 3))}, layer={"a": "wide"}, metric="cka", cv=3)
    with pytest.raises(rnnprobe.errors.ShapeError, match="a, b: 40 and 39 stimuli"):
        compare_representations(chunked, np.ones((39, 3)), layer=("narrow", None))


@pytest.mark.parametrize("seed", range(25))
def test_time_blocks_cut_at_stored_chunks_and_read_each_chunk_the_fewest_times(seed):
    """Blocks of at most ``most`` steps, in order; each block decompresses the chunks it touches, and a run of
    s selected steps in one chunk must be read by ceil(s / most) blocks at least: the blocks reach that."""
    from rnnprobe.analysis.blockwise import time_blocks

    rng = np.random.default_rng(seed)
    stored = np.repeat(np.arange(8), rng.integers(1, 9, 8))  # the chunk of each of the layer's steps
    selected = np.sort(rng.choice(stored.size, int(rng.integers(1, stored.size + 1)), replace=False))
    positions, chunks, most = selected * 3, stored[selected], int(rng.integers(1, 12))
    blocks = time_blocks(1, 1, positions, budget=8 * most, chunks=chunks)
    np.testing.assert_array_equal(np.concatenate(blocks), positions)
    assert all(1 <= len(block) <= most for block in blocks)
    chunk_of = dict(zip(positions, chunks, strict=True))
    reads = sum(len({chunk_of[p] for p in block}) for block in blocks)
    runs = np.split(chunks, np.flatnonzero(np.diff(chunks)) + 1)
    assert reads == sum(-(-len(run) // most) for run in runs)


@pytest.mark.parametrize("seed", range(30))
def test_chunk_cuts_read_the_fewest_chunks_then_make_the_fewest_blocks_as_a_brute_force_search(seed):
    from rnnprobe.analysis.blockwise import chunk_cuts

    rng = np.random.default_rng(seed)
    chunks = np.sort(rng.integers(0, 4, int(rng.integers(1, 10))))
    most = int(rng.integers(1, 5))
    n = len(chunks)

    def reads_and_blocks(cuts: list[int]) -> tuple[int, int]:
        return sum(len(set(chunks[a:b])) for a, b in itertools.pairwise(cuts)), len(cuts) - 1

    best = min(
        reads_and_blocks([0, *inner, n])
        for k in range(n)
        for inner in itertools.combinations(range(1, n), k)
        if all(b - a <= most for a, b in itertools.pairwise([0, *inner, n]))
    )
    cuts = chunk_cuts(chunks, most)
    assert cuts[0] == 0 and cuts[-1] == n and all(0 < b - a <= most for a, b in itertools.pairwise(cuts))
    assert reads_and_blocks(cuts) == best


def test_time_blocks_of_50_steps_in_chunks_of_7(monkeypatch):
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis.blockwise import time_blocks

    monkeypatch.setattr(blockwise, "active_client", lambda: None)  # (not the module's client: blocks run here)
    steps = np.arange(50)
    aligned = time_blocks(1, 1, steps, budget=80, chunks=steps // 7)  # 10 steps a block
    assert [(b[0], b[-1]) for b in aligned] == [(0, 6), (7, 13), (14, 20), (21, 27), (28, 34), (35, 41), (42, 49)]
    plain = time_blocks(1, 1, steps, budget=80)
    assert [len(b) for b in plain] == [10] * 5
    assert [len(b) for b in time_blocks(1, 1, steps, budget=80, result_bytes=8)] == [5] * 10  # (states and results)
    sizes = np.bincount(steps // 7)  # the steps each chunk holds (the last: step 49 alone)

    def decompressed(blocks: list) -> int:
        return sum(int(sizes[np.unique(b // 7)].sum()) for b in blocks)

    assert (decompressed(aligned), decompressed(plain)) == (50, 78)


def test_blockwise_decoding_reads_whole_stored_chunks_of_steps(tmp_path, monkeypatch):
    """A store chunked along time: the blocks of steps of decode (over time, and both passes of the
    generalization matrix) are cut at the chunks' edges, and the results equal the in-memory ones."""
    from rnnprobe.analysis import blockwise, decode
    from rnnprobe.recording import store

    rng = np.random.default_rng(5)
    label = np.arange(24) % 2
    states = rng.normal(size=(24, 6, 4))
    states[:, 2:] += label[:, None, None]
    monkeypatch.setattr(store, "MIN_CHUNK_BYTES", 8 * 2 * 4 * 8)  # chunks of 8 stimuli x 2 steps
    Recording({"h": states}, metadata={"label": label}).save(tmp_path / "rec.zarr", chunk_stimuli=8)
    chunked = Recording.load(tmp_path / "rec.zarr", chunks="auto")
    np.testing.assert_array_equal(chunked.time_chunks("h"), [0, 0, 1, 1, 2, 2])
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 3 * 24 * 4 * 8)  # 3 steps a block: [0 1 2] would read 2 chunks
    monkeypatch.setattr(blockwise, "active_client", lambda: None)
    seen, run_blocks = [], blockwise.run_blocks
    monkeypatch.setattr(blockwise, "run_blocks", lambda f, blocks, *a: seen.append(blocks) or run_blocks(f, blocks, *a))
    memory = Recording({"h": states}, metadata={"label": label})
    for generalize in (False, True):
        got = decode(chunked, "h", "label", generalize=generalize, progress=False)
        expected = decode(memory, "h", "label", generalize=generalize, progress=False)
        np.testing.assert_allclose(got.fold_scores, expected.fold_scores, rtol=0, atol=1e-10)
    assert len(seen) == 3  # over time; the two passes of the generalization matrix
    for blocks in seen:
        assert [list(b) for b in blocks] == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("with_client", [True, False])
def test_memory_decay_of_a_dask_backed_recording_fits_ridge_from_sums_and_equals_the_whole(
    client, tmp_path, monkeypatch, with_client
):
    """Ridge decoders from per-fold sums over blocks of stimuli: the same scores, chance and scoring as the
    in-memory pooled decoders (classes, 3 classes, regression; two scorings), the layer never read whole;
    logistic regression (2 and 3 classes) a task per lag, by passes over blocks of stimuli: the same scores."""
    from rnnprobe.analysis import blockwise, memory_decay, memory_decay_blockwise, timescales

    rng = np.random.default_rng(8)
    n, t = 90, 8
    memory_of = {"2 classes": rng.integers(0, 2, (n, t)), "3 classes": rng.integers(0, 3, (n, t)),
                 "values": rng.normal(size=(n, t))}  # fmt: skip
    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 2**15)  # blocks of 20 stimuli (the chunks), lags in groups
    if not with_client:
        monkeypatch.setattr(blockwise, "active_client", lambda: None)
    for kind, u in memory_of.items():
        h = np.stack([u, np.roll(u, 1, axis=1), np.roll(u, 2, axis=1)], axis=-1).astype(float)
        h = np.concatenate([h, rng.normal(size=(n, t, 3))], axis=-1) + 0.8 * rng.normal(size=(n, t, 6)) + 3.0
        path = Recording({"h": h}).save(tmp_path / f"{kind}.zarr")
        chunked = Recording.load(path, chunks=20)
        other = "neg_mean_squared_error" if kind == "values" else "balanced_accuracy"
        for settings in ({}, {"scoring": other, "cv": 3, "seed": 2, "estimator": "ridge"}):
            expected = memory_decay(Recording({"h": h}), "h", u, lags=[0, 1, 2, 5], **settings)
            with monkeypatch.context() as patch:
                patch.setattr(timescales, "layer_states", None)  # the in-memory path would read the layer whole
                got = memory_decay(chunked, "h", u, lags=[0, 1, 2, 5], **settings)
            np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=1e-10)
            assert (got.chance, got.scoring, got.layer) == (expected.chance, expected.scoring, expected.layer)
            if kind == "values" and not settings:  # R²: u(t), u(t-1), u(t-2) are held, u(t-5) is not
                assert expected.scores[2] > 0.3 > 0.05 > expected.scores[3]
    reads = []
    read = memory_decay_blockwise._read
    for classes in (2, 3):  # logistic regression: a task per lag, its passes over blocks of stimuli
        u = rng.integers(0, classes, (n, t))
        h = np.stack([u, np.roll(u, 1, axis=1), np.roll(u, 2, axis=1)], axis=-1) + 0.8 * rng.normal(size=(n, t, 3))
        path = Recording({"h": h}).save(tmp_path / f"logistic{classes}.zarr")
        expected = memory_decay(Recording({"h": h}), "h", u, lags=[0, 2, 5], estimator="logistic")
        with monkeypatch.context() as patch:
            patch.setattr(timescales, "layer_states", None)
            patch.setattr(memory_decay_blockwise, "_read", lambda *a: reads.append(a[2]) or read(*a))
            got = memory_decay(Recording.load(path, chunks=20), "h", u, lags=[0, 2, 5], estimator="logistic")
        np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=1e-10)
        assert expected.scores[1] > 1 / classes + 0.2 > expected.scores[2]  # u(t - 2) is held, u(t - 5) is not
        if not with_client:  # blocks of 40 stimuli (2 chunks): per lag the centre's, the moments' pass (the later
            # passes read the spill), the decision values' pass
            assert {b.stop - b.start for b in reads} == {40, 10} and len(reads) == 3 * (1 + 3 + 3)
        reads.clear()
    wide = Recording({"h": rng.normal(size=(10, 3, 40))}).save(tmp_path / "wide.zarr")  # 30 samples, 40 units
    settings = {"estimator": "logistic", "cv": 5, "scoring": None, "seed": 0}
    u = np.arange(30).reshape(10, 3) % 2
    wide = Recording.load(wide, chunks=5)
    assert memory_decay_blockwise.memory_decay_blockwise(wide, "h", u, np.array([0]), settings) is None  # in memory


def test_memory_decay_of_a_dask_backed_recording_refuses_nonfinite_states(tmp_path):
    from rnnprobe.analysis import memory_decay

    h = np.random.default_rng(0).normal(size=(30, 5, 2))
    h[7, 3, 1] = np.inf
    chunked = Recording.load(Recording({"h": h}).save(tmp_path / "rec.zarr"), chunks=10)
    with pytest.raises(NonFiniteError):
        memory_decay(chunked, "h", np.zeros((30, 5), dtype=int) + np.arange(5) % 2, lags=[0])


@pytest.mark.parametrize("unit_chunks", [7, 3])
def test_symmetric_gram_equals_the_whole_product(unit_chunks):
    """The Gram matrices from the pairs of chunks i <= j (uneven chunks of rows and of time; units in one chunk:
    each diagonal block's own symmetric product, or in several: dask's product), weighted or not, equal numpy's
    product of the whole arrays, above and below the diagonal."""
    import dask.array as da

    from rnnprobe.analysis.blockwise import symmetric_gram

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 11, 7))
    a = rng.normal(size=(7, 7))
    precision = a @ a.T
    lazy = da.from_array(x, chunks=((2, 1), (3, 5, 2, 1), unit_chunks))
    gram, total = symmetric_gram(lazy, lazy.sum())
    np.testing.assert_allclose(gram, x @ x.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    assert total == pytest.approx(x.sum())
    (weighted,) = symmetric_gram(lazy, weighted=lazy @ precision)
    np.testing.assert_allclose(weighted, x @ precision @ x.transpose(0, 2, 1), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("stored", [True, False])
def test_time_blocks_are_shared_by_the_clients_worker_threads(monkeypatch, stored):
    """Each block of steps is a task: with 2 worker threads, 4 steps with room for 3 a block are 2 blocks of 2 (one
    thread waited for the other with 3 and 1), 5 steps 3 and 2; steps stored as chunks of their own are read once
    either way."""
    from rnnprobe.analysis import blockwise

    class Client:  # the active client, as far as time_blocks asks
        def nthreads(self) -> dict:
            return {"tcp://a": 1, "tcp://b": 1}

    def sizes(n: int, client: bool) -> list[int]:
        monkeypatch.setattr(blockwise, "active_client", (lambda: Client()) if client else (lambda: None))
        steps = np.arange(n)
        return [len(b) for b in blockwise.time_blocks(1, 1, steps, budget=24, chunks=steps if stored else None)]

    assert (sizes(4, False), sizes(4, True)) == ([1, 3] if stored else [3, 1], [2, 2])
    assert sorted(sizes(5, False)) == sorted(sizes(5, True)) == [2, 3]


def test_a_gram_matrix_of_few_chunks_is_cut_for_the_clients_threads(client, monkeypatch):
    """Rows in 1 chunk on 2 worker threads: 4 chunks, 10 blocks (i <= j) shared by the workers, the Gram
    matrices equal numpy's; below SHARED_ROWS rows, or without a client, the chunks stay as they are."""
    import dask.array as da

    from rnnprobe.analysis import blockwise

    products = []
    block_product = blockwise._block_product
    monkeypatch.setattr(blockwise, "_block_product", lambda *a: products.append(a[1:3]) or block_product(*a))
    x = np.random.default_rng(4).normal(size=(2, 600, 9))
    (gram,) = blockwise.symmetric_gram(da.from_array(x, chunks=(1, 600, 9)))
    np.testing.assert_allclose(gram, x @ x.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    assert len(products) == 10
    products.clear()
    blockwise.symmetric_gram(da.from_array(x[:, :500], chunks=(1, 500, 9)))
    monkeypatch.setattr(blockwise, "active_client", lambda: None)
    blockwise.symmetric_gram(da.from_array(x, chunks=(1, 300, 9)))
    assert products == [(0, 0), (0, 0), (0, 1), (1, 1)]
