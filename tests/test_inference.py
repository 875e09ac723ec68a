import warnings

import numpy as np
import pytest
import rsatoolbox

from rnnprobe.analysis.inference import bootstrap_conditions, resample_pairs
from rnnprobe.analysis.rsa import RDMs
from rnnprobe.errors import ArgumentError, ShapeError


def _replay_rsatoolbox(evaluate, models, data, method, n_boot, n_draw, *, seed):
    """Run an rsatoolbox bootstrap evaluation and return (its draws, its result).

    rsatoolbox draws with numpy's legacy global RNG (np.random.randint(0, n, size=n) per sample);
    seeding it twice replays those draws. The global state is restored afterwards."""
    from rsatoolbox.model import ModelFixed

    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(seed)  # noqa: NPY002
        draws = np.stack([np.random.randint(0, n_draw, size=n_draw) for _ in range(n_boot)])  # noqa: NPY002
        np.random.seed(seed)  # noqa: NPY002
        rsa_models = [ModelFixed(f"m{i}", rsatoolbox.rdm.RDMs(m[None])) for i, m in enumerate(models)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return draws, evaluate(rsa_models, rsatoolbox.rdm.RDMs(data), method=method, N=n_boot)
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def test_resample_pairs_equals_rsatoolbox_subsample_pattern(rng):
    vector = rng.random(15)  # 6 conditions
    drawn = np.array([4, 0, 0, 2, 5, 2])
    sub = rsatoolbox.rdm.RDMs(vector[None]).subsample_pattern("index", drawn).get_vectors()[0]
    np.testing.assert_array_equal(vector[resample_pairs(drawn, 6)], sub[~np.isnan(sub)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a"])
def test_equals_rsatoolbox_eval_bootstrap_pattern_on_the_same_draws(rng, method):
    from rsatoolbox.inference import eval_bootstrap_pattern

    n_cond, n_boot = 8, 12
    truth = rng.random(n_cond * (n_cond - 1) // 2)
    data = truth + rng.normal(0, 0.3, size=(4, truth.size))
    models = np.stack([truth, rng.random(truth.size), 0.5 * truth + rng.random(truth.size)])
    draws, ref = _replay_rsatoolbox(eval_bootstrap_pattern, models, data, method, n_boot, n_cond, seed=7)
    ours = bootstrap_conditions(models, data, comparison=method, indices=draws)
    np.testing.assert_allclose(ours.evaluations, ref.evaluations, rtol=1e-6, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ours.noise_ceiling, ref.noise_ceiling, rtol=1e-6, atol=1e-9, equal_nan=True)


def test_deterministic_intervals_and_plot(rng):
    import matplotlib

    matplotlib.use("Agg")
    truth = rng.random(45)
    data = truth + rng.normal(0, 0.3, size=(5, 45))
    models = RDMs(np.stack([truth, rng.random(45)]), "correlation", rdm_descriptors={"name": np.array(["good", "bad"])})
    a = bootstrap_conditions(models, data, n_bootstrap=40, seed=3)
    b = bootstrap_conditions(models, data, n_bootstrap=40, seed=3)
    np.testing.assert_array_equal(a.evaluations, b.evaluations)
    low, high = a.confidence_interval()
    assert (low <= a.mean()).all() and (a.mean() <= high).all() and low[0] > high[1]  # good beats bad
    assert a.model_names == ["good", "bad"]
    from matplotlib.container import BarContainer

    bars = [c for c in a.plot().axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == 1 and len(bars[0]) == 2


def test_bad_input(rng):
    with pytest.raises(ArgumentError, match="whitens with the full RDM structure"):
        bootstrap_conditions(rng.random(10), rng.random((2, 10)), comparison="corr_cov")
    with pytest.raises(ShapeError, match="not over the same conditions"):
        bootstrap_conditions(rng.random(10), rng.random((2, 15)))
    with pytest.raises(ShapeError, match=r"condition indices in \[0, 5\)"):
        bootstrap_conditions(rng.random(10), rng.random((2, 10)), indices=np.array([[0, 9, 1, 2, 3]]))
    with pytest.raises(ArgumentError, match="at least 2 data RDMs"):
        bootstrap_conditions(rng.random(10), rng.random((1, 10)), n_bootstrap=3)


from rnnprobe.analysis.inference import bootstrap_subjects  # noqa: E402
from rnnprobe.analysis.rsa import noise_ceiling  # noqa: E402


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a", "tau-a"])
def test_bootstrap_subjects_equals_rsatoolbox_eval_bootstrap_rdm(rng, method):
    from rsatoolbox.inference import eval_bootstrap_rdm

    n_subjects, n_boot = 5, 10
    truth = rng.random(28)
    data = truth + rng.normal(0, 0.4, size=(n_subjects, 28))
    models = np.stack([truth, rng.random(28)])
    draws, ref = _replay_rsatoolbox(eval_bootstrap_rdm, models, data, method, n_boot, n_subjects, seed=3)
    ours = bootstrap_subjects(models, data, comparison=method, indices=draws)
    np.testing.assert_allclose(ours.evaluations, ref.evaluations, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.noise_ceiling, ref.noise_ceiling, rtol=1e-6, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a"])
def test_subject_samples_at_once_equal_sample_by_sample(rng, method):
    """Samples of subjects under corr and cosine, all at once from the subjects' products, against the sample
    loop (itself tested against rsatoolbox): a sample of one subject (no ceiling) and one of a subject drawn
    five times among them."""
    from rnnprobe.analysis.inference import _bootstrap_loop

    truth = rng.random(36)
    data, models = truth + rng.normal(0, 0.5, (6, 36)), truth + rng.normal(0, 1, (3, 36))
    draws = rng.integers(0, 6, (40, 6))
    draws[3], draws[4] = 2, [1, 1, 1, 1, 1, 4]
    fast = bootstrap_subjects(models, data, comparison=method, indices=draws)
    evaluations, ceiling = _bootstrap_loop(models, data, None, draws, method, True)
    np.testing.assert_allclose(fast.evaluations, evaluations, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.noise_ceiling, ceiling, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert np.isnan(fast.noise_ceiling[:, 3]).all() and np.isfinite(np.delete(fast.noise_ceiling, 3, axis=1)).all()


def test_rank_bootstrap_blocks_grow_where_the_samples_share_threads(rng, monkeypatch):
    """Blocks of 1 MiB of centred ranks on one thread, 4 MiB where the samples are split over threads (a quarter of
    the calls that take the interpreter lock); the same numbers either way."""
    import torch

    import rnnprobe.analysis._rank_bootstrap as rank_bootstrap

    blocks = []

    class Recorded(rank_bootstrap.RankBootstrap):
        def evaluate(self, *args, **kwargs):
            blocks.append(self.block)
            return super().evaluate(*args, **kwargs)

    monkeypatch.setattr(rank_bootstrap, "RankBootstrap", Recorded)
    models, data = rng.random((3, 45)), rng.random((5, 45))
    before, results = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(bootstrap_subjects(models, data, comparison="spearman", n_bootstrap=8).evaluations)
    finally:
        torch.set_num_threads(before)
    assert blocks == [2**20 // (8 * 8 * 45)] + [2**22 // (8 * 8 * 45)] * 2
    np.testing.assert_array_equal(results[0], results[1])


def test_tau_a_samples_of_subjects_compare_every_pair_once(rng, monkeypatch):
    """Samples of subjects under tau-a, complete RDMs: every model against every subject once (one comparison
    for all samples) and each ceiling's RDMs sorted once (the pooled RDM of all subjects against every subject
    at once), equal to the bit to the same RDMs with a NaN pair (compared sample by sample and pair by pair, the
    NaN pair left out), with a subject drawn five times and a sample of one subject (no ceiling)."""
    import rnnprobe.analysis.inference as inference

    truth = rng.random(36)
    data, models = truth + rng.normal(0, 0.5, (6, 36)), truth + rng.normal(0, 1, (3, 36))
    data[0, :4] = data[0, 4]  # (ties in one subject)
    draws = rng.integers(0, 6, (20, 6))
    draws[3], draws[4] = 2, [1, 1, 1, 1, 1, 4]
    calls = []
    compare = inference.compare_rdms
    monkeypatch.setattr(inference, "compare_rdms", lambda a, b, **kw: calls.append(a.shape) or compare(a, b, **kw))
    fast = bootstrap_subjects(models, data, comparison="tau-a", indices=draws)
    assert calls == [models.shape]
    gap = np.full((len(models) + len(data), 1), np.nan)
    slow = bootstrap_subjects(*np.split(np.hstack([gap, np.vstack([models, data])]), [len(models)]),
                              comparison="tau-a", indices=draws)  # fmt: skip
    assert len(calls) == 1 + len(draws)
    np.testing.assert_array_equal(fast.evaluations, slow.evaluations)
    np.testing.assert_array_equal(fast.noise_ceiling, slow.noise_ceiling)
    assert np.isnan(fast.noise_ceiling[:, 3]).all() and np.isfinite(np.delete(fast.noise_ceiling, 3, axis=1)).all()


def test_rows_taken_keep_their_sorts(rng, monkeypatch):
    """Rows taken from sorted rows (a noise ceiling's subjects) are not sorted again, and give the same tau-a."""
    import rnnprobe.analysis.rsa.kendall as kendall

    sorts = []
    runs = kendall._sorted_runs
    monkeypatch.setattr(kendall, "_sorted_runs", lambda rows: sorts.append(len(rows)) or runs(rows))
    rows, other = rng.random((4, 50)), rng.random((1, 50))
    kept = kendall.Rows(rows)
    whole = kendall.tau_a(other, kept)
    assert sorts == [1, 4]
    for k in range(4):
        assert kendall.tau_a(other, kept.take([k]))[0, 0] == whole[0, k]
    assert sorts == [1, 4, 1, 1, 1, 1]  # (the other row, given as an array, each time)
    assert (kept.kinds == kendall.MANY).all() and (kept.take([1, 2]).kinds == kendall.MANY).all()


def test_grouped_noise_ceiling_counts_copies_once(rng):
    data = rng.random((3, 15))
    with_copies = data[[0, 0, 1, 2]]
    low, high = noise_ceiling(with_copies, comparison="corr", groups=np.array([0, 0, 1, 2]))
    # leave-one-subject-out: subject 0's copies leave together; each subject counts once
    from rnnprobe.analysis.rsa import compare_rdms, pool_rdms

    expected_low = np.mean([compare_rdms(pool_rdms(with_copies[[2, 3]]), data[0])[0, 0],
                            compare_rdms(pool_rdms(with_copies[[0, 1, 3]]), data[1])[0, 0],
                            compare_rdms(pool_rdms(with_copies[[0, 1, 2]]), data[2])[0, 0]])  # fmt: skip
    assert low == pytest.approx(expected_low)
    assert high > low
    with pytest.raises(ShapeError, match="one subject id per RDM"):
        noise_ceiling(data, groups=np.array([0, 1]))


from rnnprobe.analysis.inference import permutation_test  # noqa: E402
from rnnprobe.analysis.rsa import compare_rdms  # noqa: E402


@pytest.mark.parametrize("method", ["corr", "spearman", "rho-a", "cosine", "tau-a"])
@pytest.mark.parametrize("chunks", ["one", "many"])
def test_permutation_null_equals_brute_force(rng, method, chunks, monkeypatch):
    """Every permutation's similarities equal the permuted model's compared directly: in one chunk, and in chunks
    of 7 (groups of 3) on two threads, whose buffers each thread reuses from chunk to chunk (the last chunk
    shorter), and in a dask task's block of several chunks."""
    import torch

    import rnnprobe.analysis.inference as inference

    n_cond, n_permutations = 7, 20 if chunks == "one" else 47
    if chunks == "many":
        monkeypatch.setattr(inference, "PERMUTATION_CHUNK", 7)
        monkeypatch.setattr(inference, "GATHER_ROWS", 3)
    model, data = rng.random((2, 21)), rng.random((3, 21))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = permutation_test(model, data, comparison=method, n_permutations=n_permutations, seed=4)
    finally:
        torch.set_num_threads(before)
    perms = np.argsort(np.random.default_rng(4).random((n_permutations, n_cond)), axis=1)
    full = RDMs(model, "x").matrices()
    rows, cols = np.triu_indices(n_cond, 1)
    for k, perm in enumerate(perms):
        permuted = np.stack([m[np.ix_(perm, perm)][rows, cols] for m in full])  # M[perm[i], perm[j]]
        np.testing.assert_allclose(result.null[k], compare_rdms(permuted, data, comparison=method).mean(axis=1),
                                   rtol=1e-9, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(result.observed, compare_rdms(model, data, comparison=method).mean(axis=1), rtol=1e-9)
    if chunks == "many":  # a task's block, as dask runs it: rows 3 to 40 (chunks of 7 from row 3)
        models, data_side, similarity, (scale, shift) = inference.permutation_sides(model, data, method)
        keys = inference._Keys.draw(4, (n_permutations, n_cond))
        block = inference._permuted_similarities(slice(3, 40), keys, models, data_side, similarity)
        np.testing.assert_allclose(block * scale + shift, result.null[3:40], rtol=1e-12, atol=1e-15)


def test_tau_a_permutations_of_categorical_models_are_dot_products_of_midranks(rng):
    """Two-valued (categorical) models under tau-a: every permutation's similarities, gathered as dot products
    of the models' 0/1 indicators with the data's mean midranks, equal scipy's tau-a of the permuted model
    (pair by pair) to 1e-14, and the observed values compare_rdms's; a continuous model among them keeps the
    pair-by-pair path for all."""
    import rnnprobe.analysis.inference as inference
    from rnnprobe.analysis.rsa.kendall import _scipy_tau

    n_cond, n_permutations = 9, 30
    truth = rng.random(36)
    models = np.stack([truth > 0.5, rng.random(36) > 0.3]).astype(float) * 2 + 1
    data = truth + rng.normal(0, 0.3, (3, 36))
    data[0, :6] = data[0, 6]  # ties in the data
    assert inference.permutation_sides(models, data, "tau-a")[2] is None
    assert inference.permutation_sides(np.vstack([models, truth]), data, "tau-a")[2] == "tau-a"
    result = permutation_test(models, data, comparison="tau-a", n_permutations=n_permutations, seed=2)
    perms = np.argsort(np.random.default_rng(2).random((n_permutations, n_cond)), axis=1)
    full = RDMs(models, "x").matrices()
    rows, cols = np.triu_indices(n_cond, 1)
    for k, perm in enumerate(perms):
        permuted = np.stack([m[np.ix_(perm, perm)][rows, cols] for m in full])
        np.testing.assert_allclose(result.null[k], _scipy_tau(permuted, data).mean(axis=1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.observed, compare_rdms(models, data, comparison="tau-a").mean(axis=1),
                               rtol=0, atol=1e-15)  # fmt: skip
    assert result.p_values[0] < result.p_values[1]


@pytest.mark.parametrize("models", ["continuous", "mixed"])
def test_tau_a_permutations_of_continuous_models_count_every_pair(rng, monkeypatch, models):
    """Continuous models under tau-a (all at once through each data RDM's order) and a continuous model beside one
    of three values (one permutation at a time), in chunks of 5 on two threads: every permutation's similarities
    equal the count over every pair of entries of the permuted model and the data (ties in one data RDM), to the
    bit for one data RDM, to 1e-15 for the mean of two."""
    import torch

    import rnnprobe.analysis.inference as inference

    monkeypatch.setattr(inference, "PERMUTATION_CHUNK", 5)
    n_cond, n_permutations = 10, 13
    pairs = n_cond * (n_cond - 1) // 2
    model = rng.random((2, pairs))
    if models == "mixed":
        model[1] = rng.integers(0, 3, pairs)
    data = rng.random((2, pairs))
    data[1, :9] = data[1, 9]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = [permutation_test(model, d, comparison="tau-a", n_permutations=n_permutations, seed=5)
                   for d in (data[:1], data)]  # fmt: skip
    finally:
        torch.set_num_threads(before)
    perms = np.argsort(np.random.default_rng(5).random((n_permutations, n_cond)), axis=1)
    full = RDMs(model, "x").matrices()
    rows, cols = np.triu_indices(n_cond, 1)
    i, j = np.triu_indices(pairs, 1)
    for k, perm in enumerate(perms):
        permuted = np.stack([m[np.ix_(perm, perm)][rows, cols] for m in full])
        brute = np.sign(permuted[:, None, i] - permuted[:, None, j]) * np.sign(data[None, :, i] - data[None, :, j])
        brute = brute.sum(axis=2) / len(i)
        np.testing.assert_array_equal(results[0].null[k], brute[:, 0])
        np.testing.assert_allclose(results[1].null[k], brute.mean(axis=1), rtol=0, atol=1e-15)


def test_permutation_p_values_are_uniform_under_the_null_and_small_for_a_planted_model():
    from scipy.stats import kstest

    rng = np.random.default_rng(12)
    p_values = [
        permutation_test(rng.random(45), rng.random((2, 45)), comparison="spearman", n_permutations=199,
                         seed=int(rng.integers(1 << 30))).p_values[0]
        for _ in range(200)
    ]  # fmt: skip
    assert kstest(p_values, "uniform").pvalue > 0.01
    truth = rng.random(45)
    planted = permutation_test(truth, truth + rng.normal(0, 0.5, size=(3, 45)), n_permutations=999)
    assert planted.p_values[0] == pytest.approx(0.001)


def test_permutation_bad_input(rng):
    with pytest.raises(ArgumentError, match="not supported by permutation_test"):
        permutation_test(rng.random(10), rng.random(10), comparison="corr_cov")
    nan = rng.random(10)
    nan[3] = np.nan
    with pytest.raises(ArgumentError, match="complete RDMs"):
        permutation_test(nan, rng.random(10))
    with pytest.raises(ArgumentError, match="n_permutations: got 0"):
        permutation_test(rng.random(10), rng.random(10), n_permutations=0)


from rnnprobe.analysis.inference import bootstrap_conditions_and_subjects  # noqa: E402


def _replay_joint(models, data, method, n_boot, *, seed):
    """rsatoolbox's eval_bootstrap draws subjects, then conditions, per sample from the global RNG."""
    from rsatoolbox.inference import eval_bootstrap
    from rsatoolbox.model import ModelFixed

    n_subjects, n_cond = data.shape[0], round((1 + np.sqrt(1 + 8 * data.shape[1])) / 2)
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(seed)  # noqa: NPY002
        subjects, conditions = [], []
        for _ in range(n_boot):
            subjects.append(np.random.randint(0, n_subjects, size=n_subjects))  # noqa: NPY002
            conditions.append(np.random.randint(0, n_cond, size=n_cond))  # noqa: NPY002
        np.random.seed(seed)  # noqa: NPY002
        rsa_models = [ModelFixed(f"m{i}", rsatoolbox.rdm.RDMs(m[None])) for i, m in enumerate(models)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = eval_bootstrap(rsa_models, rsatoolbox.rdm.RDMs(data), method=method, N=n_boot)
        return (np.stack(conditions), np.stack(subjects)), ref
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def _data(rng, n_cond=9, n_subjects=5):
    truth = rng.random(n_cond * (n_cond - 1) // 2)
    data = truth + rng.normal(0, 0.4, size=(n_subjects, truth.size))
    models = np.stack([truth, rng.random(truth.size), 0.6 * truth + rng.random(truth.size)])
    return models, data


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", ["corr", "spearman", "rho-a", "tau-a"])
def test_joint_bootstrap_equals_rsatoolbox_eval_bootstrap(rng, method):
    models, data = _data(rng)
    draws, ref = _replay_joint(models, data, method, 15, seed=5)
    ours = bootstrap_conditions_and_subjects(models, data, comparison=method, indices=draws)
    assert ours.over == ("conditions", "subjects")
    np.testing.assert_allclose(ours.evaluations, ref.evaluations, rtol=1e-6, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ours.noise_ceiling, ref.noise_ceiling, rtol=1e-6, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(ours.standard_error() ** 2, ref.model_var, rtol=1e-6)
    np.testing.assert_allclose(ours.pairwise_p_values(), ref.test_pairwise(), rtol=1e-6, atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("factor", ["conditions", "subjects"])
def test_variances_and_pairwise_tests_equal_rsatoolbox_result(rng, factor):
    from rsatoolbox.inference import eval_bootstrap_pattern, eval_bootstrap_rdm

    models, data = _data(rng, n_cond=10, n_subjects=6)
    evaluate, ours_fn, n_draw = {
        "conditions": (eval_bootstrap_pattern, bootstrap_conditions, 10),
        "subjects": (eval_bootstrap_rdm, bootstrap_subjects, 6),
    }[factor]
    draws, ref = _replay_rsatoolbox(evaluate, models, data, "corr", 30, n_draw, seed=2)
    ours = ours_fn(models, data, indices=draws)
    np.testing.assert_allclose(ours.standard_error() ** 2, ref.model_var, rtol=1e-6)
    p = ours.pairwise_p_values()
    np.testing.assert_allclose(p, ref.test_pairwise(), rtol=1e-6, atol=1e-12)
    assert np.all(np.diag(p) == 1) and np.allclose(p, p.T)


def test_joint_bootstrap_is_seeded_and_checks_its_indices(rng):
    models, data = _data(rng)
    a = bootstrap_conditions_and_subjects(models, data, n_bootstrap=20, seed=1)
    b = bootstrap_conditions_and_subjects(models, data, n_bootstrap=20, seed=1)
    np.testing.assert_array_equal(a.evaluations, b.evaluations)
    assert a.indices.shape == (20, 9) and a.subject_indices.shape == (20, 5)
    assert not np.array_equal(a.indices[:, :5], a.subject_indices)  # independent streams
    with pytest.raises(ArgumentError, match="a pair"):
        bootstrap_conditions_and_subjects(models, data, indices=a.indices)
    with pytest.raises(ShapeError, match="3 condition draws but 20 subject draws"):
        bootstrap_conditions_and_subjects(models, data, indices=(a.indices[:3], a.subject_indices))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a"])
def test_all_samples_at_once_equals_sample_by_sample_with_ties(rng, method):
    """The weighted all-samples path against the per-sample loop (itself tested against rsatoolbox),
    on RDMs full of tied values and with draws of fewer than 3 distinct conditions."""
    from rnnprobe.analysis.inference import _bootstrap_loop

    n_cond = 9
    models = rng.integers(0, 4, size=(3, 36)).astype(float)
    data = rng.integers(0, 3, size=(4, 36)).astype(float) + models[0]
    draws = rng.integers(0, n_cond, size=(25, n_cond))
    draws[3] = [1, 1, 1, 2, 2, 2, 1, 2, 1]  # 2 distinct conditions: NaN
    draws[4] = [5, 5, 5, 5, 5, 5, 0, 0, 7]  # 3 distinct: some RDMs constant over its pairs
    fast = bootstrap_conditions(models, data, comparison=method, indices=draws)
    ev, ceiling = _bootstrap_loop(models, data, draws, None, method, True)
    assert np.isnan(fast.evaluations[3]).all()
    sample = data[:, resample_pairs(draws[4], n_cond)]
    assert np.ptp(sample, axis=1).min() == 0  # a data RDM constant over sample 4's pairs: rho-a 0 with any RDM
    assert np.isfinite(ceiling[:, 4]).all() == (method in ("cosine", "rho-a"))  # (undefined: the correlations)
    np.testing.assert_allclose(fast.evaluations, ev, rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fast.noise_ceiling, ceiling, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", ["spearman", "rho-a"])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("drawn", ["conditions", "subjects", "both"])
def test_rank_samples_in_blocks_give_the_same_bits_whatever_the_blocks(rng, method, tied, drawn):
    """Samples ranked in blocks in integers (:mod:`._rank_bootstrap`): blocks of 1 (each sample's own pairs
    alone), 4 (the last of 3) or every sample, and 64-bit integers in place of 32-bit ones, give the same bits,
    with and without the noise ceiling; and equal the sample loop (itself tested against rsatoolbox), on
    continuous or tied RDMs (a model of two values: most pairs tied), samples of conditions (one of 3 distinct
    conditions), of subjects (one of a single subject: no ceiling; one of a subject drawn 4 times) or of both."""
    from rnnprobe.analysis._draws import distinct_conditions, draw_counts
    from rnnprobe.analysis._rank_bootstrap import RankBootstrap
    from rnnprobe.analysis.inference import _bootstrap_loop

    models, data = rng.random((3, 45)), rng.random((5, 45))
    if tied:
        models, data = rng.integers(0, 4, (3, 45)).astype(float), rng.integers(0, 3, (5, 45)) + models[0]
        models[1] = rng.integers(0, 2, 45)
    draws, subjects = rng.integers(0, 10, (23, 10)), rng.integers(0, 5, (23, 5))
    draws[5], subjects[6], subjects[7] = [2, 2, 2, 2, 7, 7, 7, 7, 7, 4], 3, [1, 1, 1, 1, 4]
    assert (distinct_conditions(draws) >= 3).all() and len(draws) % 4 == 3
    draws, subjects = (None if drawn == "subjects" else draws), (None if drawn == "conditions" else subjects)

    def evaluate(block, integers=None, ceiling=True, conditions=draws):
        plan = RankBootstrap(models, data, method, ceiling, subject_draws=0 if subjects is None else 5)
        plan.block, plan.compact = block, block == 1  # (a sample a block: its own pairs alone, as large RDMs)
        if integers is not None:
            plan.int = plan.key = integers
        return plan.evaluate(conditions, None if subjects is None else draw_counts(subjects, 5))

    evaluations, ceiling = evaluate(23)
    others = [evaluate(1), evaluate(4), evaluate(4, np.int64)]
    if draws is None:  # subjects alone (every pair weighs 1, ranked as such) as samples that draw each condition once
        others += [evaluate(block, conditions=np.tile(np.arange(10), (23, 1))) for block in (1, 4)]
    for other in others:
        np.testing.assert_array_equal(other[0], evaluations)
        np.testing.assert_array_equal(other[1], ceiling)
    alone, none = evaluate(4, ceiling=False)
    np.testing.assert_array_equal(alone, evaluations)
    assert none is None
    loop_evaluations, loop_ceiling = _bootstrap_loop(models, data, draws, subjects, method, True)
    np.testing.assert_allclose(evaluations, loop_evaluations, rtol=1e-12, atol=1e-14, equal_nan=True)
    np.testing.assert_allclose(ceiling, loop_ceiling, rtol=1e-12, atol=1e-14, equal_nan=True)
    if subjects is not None:
        assert np.isnan(ceiling[:, 6]).all() and np.isfinite(np.delete(ceiling, 6, axis=1)).all()


def test_rank_bootstrap_integers_hold_every_value_they_may_take():
    """The ranks' and the sort keys' integer types hold the largest values a sample can give (its copies n at
    most n_cond (n_cond - 1) / 2, with every condition drawn once), 32-bit where these fit; beyond 64 bits, one
    clear error."""
    from rnnprobe.analysis._rank_bootstrap import integer_types

    assert integer_types(92, 10) == (np.int32, np.int32)
    for n_cond, n_data in [(3, 1), (92, 10), (300, 4), (1200, 2), (3000, 50), (46_341, 1), (12_000, 20)]:
        pairs = n_cond * (n_cond - 1) // 2
        ranks, keys = integer_types(n_cond, n_data)
        assert np.iinfo(ranks).max >= 2 * pairs + 1
        assert np.iinfo(keys).max >= ((2 * n_data * pairs + 1) << int(pairs - 1).bit_length()) + pairs - 1
    assert integer_types(46_340, 1)[0] is np.int32 and integer_types(46_341, 1)[0] is np.int64
    with pytest.raises(ArgumentError, match=r"got 100 RDMs of 20000 conditions.*overflow 64-bit"):
        integer_types(20_000, 100)
    # a pooled RDM sums as many data RDMs as a sample draws (indices may draw more subjects than there are)
    from rnnprobe.analysis._rank_bootstrap import RankBootstrap

    rdms = np.random.default_rng(0).random((5, 45))
    assert RankBootstrap(rdms[:2], rdms[2:], "spearman", True, subject_draws=3).key is np.int32
    assert RankBootstrap(rdms[:2], rdms[2:], "spearman", True, subject_draws=400_000).key is np.int64


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", ["corr", "cosine", "spearman", "rho-a"])
def test_conditions_and_subjects_at_once_equal_sample_by_sample_with_ties(rng, method):
    """Conditions and subjects drawn together under corr and cosine, all samples at once (the pattern bootstrap's
    weighted moments, the subjects entering as counts), against the sample loop (itself tested against
    rsatoolbox): tied values, a sample of 2 distinct conditions (NaN), one of 3 where some RDMs are constant
    over its pairs, one of a single subject (no ceiling) and one of a subject drawn five times."""
    from rnnprobe.analysis.inference import _bootstrap_loop

    n_cond = 9
    models = rng.integers(0, 4, size=(3, 36)).astype(float) + 1
    data = rng.integers(0, 3, size=(6, 36)).astype(float) + models[0]
    draws = rng.integers(0, n_cond, size=(30, n_cond))
    draws[3] = [1, 1, 1, 2, 2, 2, 1, 2, 1]
    draws[4] = [5, 5, 5, 5, 5, 5, 0, 0, 7]
    subjects = rng.integers(0, 6, size=(30, 6))
    subjects[5], subjects[6] = 2, [1, 1, 1, 1, 1, 4]
    fast = bootstrap_conditions_and_subjects(models, data, comparison=method, indices=(draws, subjects))
    evaluations, ceiling = _bootstrap_loop(models, data, draws, subjects, method, True)
    assert np.isnan(fast.evaluations[3]).all() and np.isnan(fast.noise_ceiling[:, 5]).all()
    np.testing.assert_allclose(fast.evaluations, evaluations, rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(fast.noise_ceiling, ceiling, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isfinite(fast.noise_ceiling[:, 6]).all()


def test_resampling_conditions_needs_whole_rdms():
    """Two dissimilarities are no RDM's upper triangle (1, 3, 6, ...): one clear error, not an IndexError."""
    vectors = np.array([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ShapeError, match="not the upper triangle"):
        bootstrap_conditions(vectors, vectors, n_bootstrap=5, progress=False)


def test_permutation_keys_drawn_by_block_are_the_whole_draw():
    """Each block of the permutation test's keys, drawn where it is used (a PCG64 advanced past the rows before
    it), equals those rows of one draw of every key: the same permutations on any number of threads or tasks."""
    import pickle

    from rnnprobe.analysis.inference import _Keys

    whole = np.random.default_rng(11).random((1000, 37))
    keys = pickle.loads(pickle.dumps(_Keys.draw(11, (1000, 37))))  # (as a dask task receives them)
    assert len(keys) == 1000
    for block in (slice(0, 256), slice(256, 512), slice(999, 1000), slice(500, 500), slice(700, 2000)):
        np.testing.assert_array_equal(keys[block], whole[block])
    with pytest.raises(IndexError, match="consecutive rows"):
        keys[0:10:2]
    fresh = _Keys.draw(None, (10, 5))
    np.testing.assert_array_equal(np.concatenate([fresh[0:3], fresh[3:10]]), fresh[0:10])


def test_draw_counts_equal_a_scatter_add():
    from rnnprobe.analysis._draws import draw_counts

    draws = np.random.default_rng(3).integers(0, 7, size=(50, 9))
    expected = np.zeros((50, 8))  # index 7 never drawn: a column of zeros
    np.add.at(expected, (np.arange(50)[:, None], draws), 1.0)
    np.testing.assert_array_equal(draw_counts(draws, 8), expected)
    assert draw_counts(np.zeros((4, 0), dtype=int), 3).shape == (4, 3)
