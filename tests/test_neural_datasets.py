"""Loaders of the shared neural data sets, checked against the raw files (brute force) and the reference
values of each folder's DATA.md. Skipped where ../shared/data is absent."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from rnnprobe import Recording
from rnnprobe.analysis import compare_rdms, noise_ceiling
from rnnprobe.errors import ArgumentError, NonFiniteError, ShapeError, StoreNotFoundError, UnknownNameError
from rnnprobe.neural import (
    data_folder,
    from_responses,
    load_churchland,
    load_cichy_fmri,
    load_kriegeskorte92,
    load_rdms,
    load_zhang_desimone,
    rdms_from_matrices,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent")


def test_from_responses_reorders_axes_and_refuses_bad_input(rng):
    tensor = rng.normal(size=(7, 5, 3))  # time x neuron x condition
    rec = from_responses(tensor, axes="time unit stimulus", layer="M1")
    assert isinstance(rec, Recording) and rec.shapes == {"M1": (3, 7, 5)}
    np.testing.assert_array_equal(rec.get("M1")[2, 4, 1], tensor[4, 1, 2])
    flat = from_responses(tensor[0], axes="unit stimulus")  # no time axis: one step
    assert flat.shapes == {"responses": (3, 1, 5)}
    with pytest.raises(ArgumentError, match="axes: got 'time neuron stimulus'"):
        from_responses(tensor, axes="time neuron stimulus")
    with pytest.raises(ShapeError, match="names 2 axes"):
        from_responses(tensor, axes="stimulus unit")
    bad = tensor.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"layer 'M1' holds 1 non-finite value\(s\).*first at \(0, 1, 2\)"):
        from_responses(bad, axes="time unit stimulus", layer="M1")


def test_rdms_from_matrices(rng):
    a = rng.random((4, 4))
    square = a + a.T
    np.fill_diagonal(square, 0)
    rows, cols = np.triu_indices(4, 1)
    np.testing.assert_array_equal(rdms_from_matrices(square).dissimilarities[0], square[rows, cols])
    assert rdms_from_matrices(np.stack([square, 2 * square])).n_rdms == 2
    with pytest.raises(ShapeError, match="symmetric with a zero diagonal"):
        rdms_from_matrices(square + np.eye(4))


def test_a_stack_of_k_rdms_of_k_pairs_is_never_read_as_one_square_rdm(tmp_path, rng):
    stack = rng.random((6, 6))  # six RDMs of 4 conditions (6 pairs each): (6, 6) like a square RDM of 6
    with pytest.raises(ShapeError, match=r"could be 6 RDMs of 6 pairs \(4 conditions\) each\. Pass layout=.vectors."):
        rdms_from_matrices(stack)
    np.save(tmp_path / "stack.npy", stack)
    for rdms in (rdms_from_matrices(stack, layout="vectors"), load_rdms(tmp_path / "stack.npy", layout="vectors")):
        np.testing.assert_array_equal(rdms.dissimilarities, stack)
        assert rdms.n_conditions == 4
    square = stack + stack.T
    np.fill_diagonal(square, 0)
    rows, cols = np.triu_indices(6, 1)
    np.testing.assert_array_equal(rdms_from_matrices(square).dissimilarities[0], square[rows, cols])
    with pytest.raises(ShapeError, match="symmetric with a zero diagonal"):
        rdms_from_matrices(stack, layout="square")
    with pytest.raises(UnknownNameError, match="layout: got 'rows'"):
        rdms_from_matrices(stack, layout="rows")


def test_data_folder_errors(tmp_path):
    with pytest.raises(StoreNotFoundError, match="does not exist"):
        data_folder("92imageData", tmp_path / "nope")


@needs_data
def test_zhang_desimone_pseudo_population_matches_the_rasters():
    rec = load_zhang_desimone(DATA / "zhang_desimone2011_it_7objects", bin_ms=50, start_ms=-100, stop_ms=400, seed=3)
    n_stim, n_bins, n_neurons = rec.shapes["IT"]
    assert n_neurons == 132 and n_bins == 10 and n_stim % 21 == 0
    reps = n_stim // 21
    assert reps == 19  # the fewest repetitions of a condition in any neuron
    np.testing.assert_array_equal(rec.times["IT"], np.arange(-100, 400, 50))
    assert sorted(set(rec.column("object"))) == ["car", "couch", "face", "flower", "guitar", "hand", "kiwi"]
    assert sorted(set(rec.column("position"))) == ["lower", "middle", "upper"]
    # brute force for two neurons: every pseudo-trial is one of the neuron's own trials of that condition
    # (spike counts of the raw 1 ms raster in the same windows), each used once
    files = sorted((DATA / "zhang_desimone2011_it_7objects" / "raster_mat").glob("*_raster_data.mat"))
    for j in (0, 77):
        raw = scipy.io.loadmat(files[j], simplify_cells=True)
        labels = raw["raster_labels"]["combined_ID_position"]
        counts = raw["raster_data"][:, 400:900].reshape(-1, 10, 50).sum(axis=2) * 20.0  # spikes/s
        for condition in ("face_upper", "kiwi_lower"):
            mine = rec.get("IT", where={"condition": condition})[:, :, j]
            theirs = counts[labels == condition]
            matches = [np.flatnonzero((theirs == row).all(axis=1)) for row in mine]
            assert all(m.size for m in matches)
            assert len({int(m[0]) for m in matches}) == reps or len(np.unique(theirs, axis=0)) < len(theirs)
    again = load_zhang_desimone(DATA / "zhang_desimone2011_it_7objects", bin_ms=50, start_ms=-100, stop_ms=400, seed=3)
    np.testing.assert_array_equal(again.get("IT"), rec.get("IT"))
    other = load_zhang_desimone(DATA / "zhang_desimone2011_it_7objects", bin_ms=50, start_ms=-100, stop_ms=400, seed=4)
    assert not np.array_equal(other.get("IT"), rec.get("IT"))
    # DATA.md: median split-half reliability of 7-object tuning (100-400 ms) is about 0.85
    window = rec.get("IT", time=slice(4, 10)).mean(axis=1)  # (trial, neuron)
    objects, repetition = rec.column("object"), rec.column("repetition")
    halves = [np.stack([window[(objects == o) & (repetition % 2 == h)].mean(axis=0) for o in np.unique(objects)])
              for h in (0, 1)]  # fmt: skip
    r = [np.corrcoef(halves[0][:, n], halves[1][:, n])[0, 1] for n in range(n_neurons)]
    assert 0.75 < np.nanmedian(r) < 0.95
    with pytest.raises(ArgumentError, match="start_ms, stop_ms"):
        load_zhang_desimone(DATA / "zhang_desimone2011_it_7objects", bin_ms=30, start_ms=0, stop_ms=100)


def test_rasters_that_do_not_line_up_are_refused(tmp_path):
    """Synthetic NeuroDecodeR rasters (no shared data needed): three neurons that line up load as a
    pseudo-population whose rates are the rasters' counts; a neuron aligned elsewhere, missing a condition or too
    short for the window is one clear error (its spikes were binned against the first neuron's onset)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "raster_mat"
    folder.mkdir()

    def write(name, *, onset=501, conditions=("a_up", "b_up"), length=1000):
        labels = np.repeat(np.array(conditions, dtype=object), 3)
        raster = (rng.random((len(labels), length)) < 0.05).astype(np.uint8)
        scipy.io.savemat(folder / f"{name}_raster_data.mat", {
            "raster_data": raster, "raster_labels": {"combined_ID_position": labels},
            "raster_site_info": {"alignment_event_time": onset}})  # fmt: skip
        return raster, labels

    rasters = [write(f"n{i}") for i in range(3)]
    rec = load_zhang_desimone(tmp_path, bin_ms=100, start_ms=-100, stop_ms=300, seed=1)
    assert rec.shapes["IT"] == (6, 4, 3)
    for j, (raster, labels) in enumerate(rasters):  # each pseudo-trial is one of the neuron's own trials
        counts = raster[:, 400:800].reshape(-1, 4, 100).sum(axis=2) * 10.0
        for row, condition in zip(rec.get("IT")[:, :, j], rec.column("condition"), strict=True):
            assert (counts[labels == condition] == row).all(axis=1).any()
    for bad in ({"onset": 401}, {"conditions": ("a_up", "c_up")}, {"length": 700}):
        (folder / "n3_raster_data.mat").unlink(missing_ok=True)
        write("n3", **bad)
        with pytest.raises(ShapeError, match=r"n3_raster_data\.mat does not line up"):
            load_zhang_desimone(tmp_path, bin_ms=100, start_ms=-100, stop_ms=300)


@needs_data
def test_churchland_tensor_and_its_rotational_structure():
    rec = load_churchland(DATA / "churchland2012_m1_tme_tensor")
    assert rec.shapes == {"M1": (10, 61, 50)}
    np.testing.assert_array_equal(rec.times["M1"], np.arange(-50, 551, 10))
    # DATA.md: top 6 PCs over -50..350 ms, cross-condition mean removed: ||skew(M)|| / ||M|| = 0.95
    x = rec.get("M1", time=rec.times["M1"] <= 350)
    x = x - x.mean(axis=0, keepdims=True)
    flat = x.reshape(-1, x.shape[2])
    _, _, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
    z = x @ vt[:6].T  # (condition, time, 6)
    dz = np.diff(z, axis=1).reshape(-1, 6)
    m = np.linalg.lstsq(z[:, :-1].reshape(-1, 6), dz, rcond=None)[0].T
    assert abs(np.linalg.norm((m - m.T) / 2) / np.linalg.norm(m) - 0.95) < 0.02


@needs_data
def test_cichy_fmri_rdms_and_their_noise_ceiling():
    it = load_cichy_fmri(DATA / "cichy2014_algonauts2019_fmri_rdms", region="IT", images=92)
    assert it.n_rdms == 15 and it.n_conditions == 92
    raw = np.load(DATA / "cichy2014_algonauts2019_fmri_rdms" / "92images_fmri_IT_RDMs.npz")["Net_RDM"]
    rows, cols = np.triu_indices(92, 1)
    np.testing.assert_array_equal(it.dissimilarities, raw[:, rows, cols])
    low, _ = noise_ceiling(it, comparison="spearman")
    assert abs(low - 0.45) < 0.02  # DATA.md: leave-one-subject-out lower bound 0.45
    assert load_cichy_fmri(DATA / "cichy2014_algonauts2019_fmri_rdms", region="EVC", images=78).n_conditions == 78
    kriegeskorte = load_kriegeskorte92(DATA / "92imageData")
    mean_it = it.dissimilarities.mean(axis=0)
    assert abs(compare_rdms(mean_it, kriegeskorte.human_it, comparison="spearman")[0, 0] - 0.56) < 0.02


@needs_data
def test_kriegeskorte92_reference_values():
    data = load_kriegeskorte92(DATA / "92imageData")
    assert data.sessions.n_rdms == 8 and data.subjects.n_rdms == 4 and data.models.n_rdms == 8
    assert data.images.shape == (92, 175, 175, 3) and data.category.shape == (92,)
    for comparison, expected in (("corr", 0.4912), ("spearman", 0.4389), ("tau-a", 0.3040)):  # rsatoolbox 0.3.2
        value = compare_rdms(data.monkey_it, data.human_it, comparison=comparison)[0, 0]
        assert abs(value - expected) < 5e-4, comparison
    mean = data.sessions.dissimilarities.mean(axis=0)
    assert compare_rdms(mean, data.human_it, comparison="spearman")[0, 0] > 0.99  # DATA.md: Spearman 1.0


def test_load_rdms_from_npz(tmp_path, rng):
    from rnnprobe.errors import UnknownNameError
    from rnnprobe.neural import load_rdms

    vectors = rng.random((3, 10))
    np.savez(tmp_path / "one.npz", vectors)
    np.testing.assert_array_equal(load_rdms(tmp_path / "one.npz").dissimilarities, vectors)
    np.savez(tmp_path / "two.npz", it=vectors, evc=2 * vectors)
    with pytest.raises(ArgumentError, match="holds 2 arrays"):
        load_rdms(tmp_path / "two.npz")
    np.testing.assert_array_equal(load_rdms(tmp_path / "two.npz", variable="evc").dissimilarities, 2 * vectors)
    with pytest.raises(UnknownNameError, match="'v1' is not in"):
        load_rdms(tmp_path / "two.npz", variable="v1")
