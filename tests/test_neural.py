from pathlib import Path

import numpy as np
import pytest
import rsatoolbox

from rnnprobe.analysis.rsa import compare_rdms, compute_rdms
from rnnprobe.errors import ArgumentError, ShapeError, UnknownNameError
from rnnprobe.neural import load_rdms, rdms_from_responses
from rnnprobe.recording import Recording

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "92imageData"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"the 92-image data is not at {DATA} (../shared absent)")


@needs_data
def test_92_image_monkey_vs_human_it_reference_values():
    rdms = load_rdms(DATA / "Kriegeskorte_Neuron2008_supplementalData.mat", variable="RDMs_mIT_hIT_fig1")
    assert rdms.n_rdms == 2 and rdms.n_conditions == 92
    assert list(rdms.rdm_descriptors["name"]) == ["mIT_674neurons", "hITvisStim_316vx"]
    monkey, human = rdms.dissimilarities[:1], rdms.dissimilarities[1:]
    expected = {"corr": 0.4912, "spearman": 0.4389, "tau-a": 0.3040}  # rsatoolbox 0.3.2, measured by the issue
    for method, value in expected.items():
        assert round(float(compare_rdms(monkey, human, comparison=method)[0, 0]), 4) == value, method


@needs_data
def test_92_image_subject_rdms_and_models():
    subjects = load_rdms(DATA / "92_brainRDMs.mat")
    assert subjects.n_rdms == 8 and subjects.n_conditions == 92
    assert subjects.rdm_descriptors["name"][0] == "hIT | BE | Session: 1"
    models = load_rdms(DATA / "92_modelRDMs.mat")
    assert list(models.rdm_descriptors["name"][:3]) == ["animacy", "FaceBodyManmadeNatobj", "monkeyIT"]
    # the mean of the single-session RDMs matches the hIT RDM of the supplemental file (Spearman 1.0, DATA.md)
    hit = load_rdms(DATA / "Kriegeskorte_Neuron2008_supplementalData.mat", variable="RDMs_mIT_hIT_fig1")
    mean = subjects.dissimilarities.mean(axis=0, keepdims=True)
    assert compare_rdms(mean, hit.dissimilarities[1:], comparison="spearman")[0, 0] > 0.999
    # mean pairwise Spearman between single-session RDMs is 0.181 (DATA.md)
    sims = compare_rdms(subjects, subjects, comparison="spearman")
    assert round(float(sims[np.triu_indices(8, 1)].mean()), 3) == 0.181
    alone = load_rdms(DATA / "Kriegeskorte_Neuron2008_supplementalData.mat")  # the only RDM struct array
    np.testing.assert_array_equal(alone.dissimilarities, hit.dissimilarities)
    with pytest.raises(UnknownNameError, match="'stimuli_92objs' is not an RDM struct array"):
        load_rdms(DATA / "Kriegeskorte_Neuron2008_supplementalData.mat", variable="stimuli_92objs")


def test_mat_file_with_several_rdm_variables(tmp_path, rng):
    import scipy.io

    square = rng.random((4, 4))
    square = square + square.T
    np.fill_diagonal(square, 0)
    scipy.io.savemat(tmp_path / "two.mat", {"a": {"RDM": square, "name": "first"}, "b": {"RDM": 2 * square}})
    with pytest.raises(ArgumentError, match="holds 2 RDM struct arrays \\('a', 'b'\\)"):
        load_rdms(tmp_path / "two.mat")
    loaded = load_rdms(tmp_path / "two.mat", variable="a")
    np.testing.assert_allclose(loaded.matrices()[0], square)
    assert loaded.rdm_descriptors["name"][0] == "first"


def test_npy_and_rsatoolbox_inputs(tmp_path, rng):
    square = rng.random((5, 5))
    square = square + square.T
    np.fill_diagonal(square, 0)
    np.save(tmp_path / "one.npy", square)
    np.testing.assert_array_equal(load_rdms(tmp_path / "one.npy").matrices()[0], square)
    np.save(tmp_path / "stack.npy", np.stack([square, 2 * square]))
    assert load_rdms(tmp_path / "stack.npy").n_rdms == 2
    np.save(tmp_path / "vectors.npy", rng.random((3, 10)))
    assert load_rdms(tmp_path / "vectors.npy").n_conditions == 5
    converted = load_rdms(rsatoolbox.rdm.RDMs(rng.random((2, 10))))
    assert converted.n_rdms == 2
    np.save(tmp_path / "similarity.npy", np.eye(4))
    with pytest.raises(ShapeError, match=r"zero diagonal\. Pass dissimilarities"):
        load_rdms(tmp_path / "similarity.npy")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ArgumentError, match=r"is not \.mat, \.npy or \.npz"):
        load_rdms(tmp_path / "x.csv")


def test_responses_to_rdms_equal_the_recording_path(rng):
    meg = rng.normal(size=(12, 8, 5))  # stimuli x channels x time points
    rdms = rdms_from_responses(meg, metadata={"image": np.arange(12) % 6}, descriptor="image")
    assert rdms.n_rdms == 5 and rdms.n_conditions == 6
    expected = compute_rdms(Recording({"x": np.moveaxis(meg, 2, 1)}, metadata={"image": np.arange(12) % 6}),
                            distance="correlation", descriptor="image")  # fmt: skip
    np.testing.assert_array_equal(rdms.dissimilarities, expected.dissimilarities)
    assert rdms_from_responses(meg[:, :, 0]).n_rdms == 1
    with pytest.raises(ShapeError, match=r"\(stimulus, channel\) or \(stimulus, channel, time\)"):
        rdms_from_responses(np.zeros(5))


from rnnprobe.analysis.rsa import compare_model_to_data, noise_ceiling, pool_rdms  # noqa: E402


@pytest.mark.filterwarnings("ignore:Noise ceiling for tau based on averaged ranks:UserWarning")  # (rsatoolbox's)
@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a", "tau-a"])
def test_noise_ceiling_equals_rsatoolbox(rng, method):
    from rsatoolbox.inference import boot_noise_ceiling

    truth = rng.random(36)
    subjects = truth + rng.normal(0, 0.4, size=(6, 36))
    expected = boot_noise_ceiling(rsatoolbox.rdm.RDMs(subjects), method=method)
    np.testing.assert_allclose(noise_ceiling(subjects, comparison=method), expected, rtol=1e-6)
    pooled = pool_rdms(subjects, comparison=method)
    from rsatoolbox.util.inference_util import pool_rdm

    np.testing.assert_allclose(pooled, pool_rdm(rsatoolbox.rdm.RDMs(subjects), method=method).get_vectors()[0])


def test_ranks_ignoring_nan_equal_scipy_row_by_row(rng):
    """The pooled RDMs' ranks (the noise ceiling ranks each subject once) equal scipy's rankdata of each row's
    values that are not NaN: rows without NaN, rows NaN at the same pairs (a bootstrap sample's), rows NaN at
    different pairs; ties among the values."""
    from scipy.stats import rankdata

    from rnnprobe.analysis.rsa.compare import _nan_ranks

    v = rng.integers(0, 5, (4, 30)).astype(float)
    same, different = v.copy(), v.copy()
    same[:, [2, 7, 8]] = np.nan
    different[0, 1], different[2, [5, 9]] = np.nan, np.nan
    for rows in (v, same, different):
        expected = np.full(rows.shape, np.nan)
        for i, row in enumerate(rows):
            expected[i, ~np.isnan(row)] = rankdata(row[~np.isnan(row)])
        np.testing.assert_array_equal(_nan_ranks(rows), expected)


def test_a_constant_rdm_adds_nothing_to_a_pooled_correlation_rdm(rng):
    """Under corr, an RDM constant over its pairs has no normalised form (no correlation with any RDM): it adds
    nothing, exactly constant (1.0) or at 0.1 (a spread of rounding once centred); the pooled RDM is
    rsatoolbox's of the others (rsatoolbox's own pools NaN everywhere with it)."""
    from rsatoolbox.util.inference_util import pool_rdm

    rdms = rng.random((4, 36))
    others = np.delete(rdms, 2, axis=0)
    without = pool_rdms(others, comparison="corr")
    np.testing.assert_allclose(without, pool_rdm(rsatoolbox.rdm.RDMs(others), method="corr").get_vectors()[0])
    for value in (1.0, 0.1):
        rdms[2] = value
        np.testing.assert_allclose(pool_rdms(rdms, comparison="corr"), without, rtol=1e-12)
    assert ((rdms[2] - rdms[2].mean()) ** 2).sum() > 0


@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a", "tau-a"])
def test_noise_ceiling_skips_pairs_missing_everywhere_and_refuses_undefined_subjects(rng, method):
    import warnings

    subjects = rng.random((5, 21))
    missing = subjects.copy()
    missing[:, :4] = np.nan  # pairs no subject has: the same ceiling as without them, and no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(noise_ceiling(missing, comparison=method), noise_ceiling(subjects[:, 4:],
                                   comparison=method), rtol=1e-12)  # fmt: skip
    constant = np.full(21, 0.0 if method == "cosine" else 0.3)
    for row, why in ((constant, "only zeros|the same value"), (np.r_[0.5, np.full(20, np.nan)], "fewer than 2 "
                     "dissimilarities")):  # fmt: skip
        bad = subjects.copy()
        bad[3] = row
        if method in ("rho-a", "tau-a") and row is constant:
            continue  # defined: see test_a_constant_subject_has_similarity_zero_under_rho_a_and_tau_a
        with pytest.raises(ArgumentError, match=rf"subject_rdms: RDM 3 \(1 in all\) has ({why})"):
            noise_ceiling(bad, comparison=method)


@pytest.mark.parametrize("method", ["rho-a", "tau-a"])
def test_a_constant_subject_has_similarity_zero_under_rho_a_and_tau_a(rng, method):
    """All of a constant RDM's values tie: its rho-a and tau-a with any RDM are 0, so the noise ceiling is defined
    (and equals rsatoolbox's, which warns that tau-a's pooled RDM averages ranks); the correlations refuse it."""
    import warnings

    import rsatoolbox
    from rsatoolbox.inference import boot_noise_ceiling

    subjects = rng.random((5, 21))
    subjects[3] = 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = noise_ceiling(subjects, comparison=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = boot_noise_ceiling(rsatoolbox.rdm.RDMs(subjects), method=method)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    others = noise_ceiling(np.delete(subjects, 3, axis=0), comparison=method)
    assert got[0] < others[0] and got[1] < others[1]  # the constant subject adds a 0 to each mean
    assert noise_ceiling(np.full((3, 21), 0.3), comparison=method) == (0.0, 0.0)


@needs_data
def test_92_image_noise_ceiling_and_models():
    subjects = load_rdms(DATA / "92_brainRDMs.mat")
    from rsatoolbox.inference import boot_noise_ceiling

    low, high = noise_ceiling(subjects, comparison="spearman")
    np.testing.assert_allclose((low, high), boot_noise_ceiling(subjects.to_rsatoolbox(), method="spearman"))
    assert 0 < low < high < 1
    models = load_rdms(DATA / "92_modelRDMs.mat")
    result = compare_model_to_data(models, None, subjects=subjects, comparison="spearman")
    assert result.similarity.shape == (8, 1) and result.noise_ceiling == (low, high)
    names = list(models.rdm_descriptors["name"])
    # the monkey IT RDM explains human IT better than low-level models (Kriegeskorte et al. 2008)
    assert result.similarity[names.index("monkeyIT"), 0] > result.similarity[names.index("V1"), 0]


def test_model_time_by_data_time_and_plots(rng):
    import matplotlib

    matplotlib.use("Agg")
    model = compute_rdms(Recording({"h": rng.normal(size=(8, 5, 6))}), distance="correlation")
    data = rdms_from_responses(rng.normal(size=(8, 10, 7)))
    result = compare_model_to_data(model, data, comparison="spearman")
    assert result.similarity.shape == (5, 7)
    np.testing.assert_array_equal(result.model_times, np.arange(5))
    best = result.best()
    assert best["similarity"] == pytest.approx(result.similarity.max())
    assert len(result.plot().axes) == 2  # matrix + colour bar
    # no defined similarity anywhere: no best time, not numpy's All-NaN ValueError
    import dataclasses

    empty = dataclasses.replace(result, similarity=np.full_like(result.similarity, np.nan))
    assert empty.best()["model_time"] is None and np.isnan(empty.summary()["best similarity"])
    single = compare_model_to_data(model, None, subjects=rng.random((4, 28)))
    assert single.plot().axes[0].get_xlabel() == "model time step"
    with pytest.raises(ArgumentError, match="without subjects"):
        compare_model_to_data(model, None)
    with pytest.raises(ArgumentError, match="at least 2 subjects"):
        noise_ceiling(rng.random((1, 28)))
