"""The one thread policy of rnnprobe's worker pools: library threads limited while a pool runs, restored after."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from rnnprobe.analysis import compare_representations, pairwise_distances  # (imported before any pool is counted)
from rnnprobe.analysis.parallel import threads_per_worker, worker_pool


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.fixture
def pools(monkeypatch):
    """The sizes of the worker pools opened (task_pool's among them), in order."""
    import rnnprobe.analysis.parallel as parallel

    opened = []
    real_pool = parallel.worker_pool
    monkeypatch.setattr(parallel, "worker_pool", lambda n, **kw: opened.append(n) or real_pool(n, **kw))
    return opened


def test_threads_per_worker_share_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert [threads_per_worker(n) for n in (1, 2, 3, 16, 64)] == [16, 8, 5, 1, 1]
    assert [threads_per_worker(n, threads=4) for n in (1, 2, 4, 8)] == [4, 2, 1, 1]  # a budget the user set


def test_a_pool_limits_blas_and_torch_threads_and_restores_them(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    seen = []

    def work(i):
        seen.append((torch.get_num_threads(), _blas_threads()))
        return float(np.linalg.norm(np.eye(3) * i))

    with worker_pool(4) as pmap:
        assert list(pmap(work, range(6))) == pytest.approx([float(np.sqrt(3) * i) for i in range(6)])
    assert all(t == 2 and all(b == 2 for b in blas) for t, blas in seen)  # 8 cores / 4 workers
    assert torch.get_num_threads() == torch_before and _blas_threads() == blas_before
    with pytest.raises(ZeroDivisionError), worker_pool(2) as pmap:
        list(pmap(lambda x: 1 / x, [1, 0]))
    assert torch.get_num_threads() == torch_before and _blas_threads() == blas_before


def test_one_job_limits_nothing():
    with worker_pool(1) as pmap:
        assert pmap is map


def test_pairwise_results_do_not_depend_on_n_jobs():
    from rnnprobe import Recording
    from rnnprobe.analysis import pairwise_distances

    rng = np.random.default_rng(0)
    recs = {f"net{i}": Recording({"h": rng.normal(size=(40, 1, 6))}) for i in range(4)}
    one = pairwise_distances(recs, n_jobs=1).distances
    np.testing.assert_array_equal(pairwise_distances(recs, n_jobs=3).distances, one)


@pytest.mark.parametrize(("metric", "cv"), [("cca", None), ("shape", 3), ("debiased_cka", None)])
def test_alignment_spends_the_libraries_threads_on_steps_and_pairs_with_equal_results(pools, metric, cv):
    """With torch allowed 2 threads, compare_representations prepares the time steps and computes the pairs
    on 2 workers of 1 thread each (they were one by one: a shape metric held out, dominated by the pairs'
    SVDs, ran 1.05x faster on 2 threads than on 1), pairwise_distances too by default; n_jobs=1 keeps one by
    one. The values equal the 1-thread run's, and every setting is back afterwards."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 4, 10))
    b = np.tanh(a @ rng.normal(size=(10, 8))) + rng.normal(size=(60, 4, 8))
    nets = {f"net{i}": a[:, i] for i in range(4)}
    torch_before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compare_representations(a, b, metric=metric, cv=cv).values
        one_pairwise = pairwise_distances(nets, metric=metric, cv=cv).distances
        assert set(pools) == {1}
        blas_before = _blas_threads()
        pools.clear()
        torch.set_num_threads(2)
        two = compare_representations(a, b, metric=metric, cv=cv).values
        assert pools == [2]  # one pool for the steps and pairs of every fold
        pools.clear()
        two_pairwise = pairwise_distances(nets, metric=metric, cv=cv).distances
        serial = pairwise_distances(nets, metric=metric, cv=cv, n_jobs=1).distances
        assert pools == [2]  # (n_jobs=1: one by one, no pool)
        assert torch.get_num_threads() == 2 and _blas_threads() == blas_before
    finally:
        torch.set_num_threads(torch_before)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-12)
    np.testing.assert_allclose(two_pairwise, one_pairwise, rtol=0, atol=1e-12)
    np.testing.assert_allclose(serial, one_pairwise, rtol=0, atol=1e-12)


@pytest.mark.parametrize("units", [12, 150])
def test_decoding_spends_the_libraries_threads_on_time_blocks_and_permutations_with_equal_results(monkeypatch, units):
    """With torch allowed 2 threads, ridge decoding fits blocks of time steps (and permutation passes) and scores
    its folds on 2 workers of 1 thread each and BLAS stays on 1 thread (small_blas); the numbers equal the
    1-thread run's, and every setting is back afterwards. Narrow (the primal form) and wide (more units than
    training samples: the dual form, whose steps were one block on one thread)."""
    import rnnprobe.analysis.parallel as parallel
    from rnnprobe import Recording
    from rnnprobe.analysis import decode

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    rec = Recording({"h": rng.normal(size=(90, 7, units)) + 0.4 * y[:, None, None]}, metadata={"label": y})
    pools = []
    real_pool = parallel.worker_pool

    def counting_pool(n_jobs, **kwargs):
        pools.append(n_jobs)
        assert kwargs == {"threads": torch.get_num_threads()}  # workers share the libraries' budget
        return real_pool(n_jobs, **kwargs)

    monkeypatch.setattr(parallel, "worker_pool", counting_pool)  # (task_pool's pools)
    torch_before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode(rec, "h", "label", generalize=True, n_permutations=70, progress=False)
        assert set(pools) == {1}
        blas_before = _blas_threads()  # (the first call may load more BLAS libraries: scipy's)
        pools.clear()
        torch.set_num_threads(2)
        two = decode(rec, "h", "label", generalize=True, n_permutations=70, progress=False)
        # ridge: one pass of the 71 target sets (they share the Gram matrices and their factors), its time
        # steps in 2 blocks on 2 workers, its folds' tests on 2; the wide layer's sets through the kernel
        # matrices: one pool for the tasks of every fold and block of steps
        assert pools == ([1, 2, 2] if units == 12 else [2])
        assert torch.get_num_threads() == 2 and _blas_threads() == blas_before
        pools.clear()
        decode(rec, "h", "label", progress=False)  # one pass: its time steps in 2 blocks, its folds' tests on 2
        assert pools == [1, 2, 2]
    finally:
        torch.set_num_threads(torch_before)
    np.testing.assert_allclose(two.scores, one.scores, rtol=0, atol=1e-12)
    np.testing.assert_allclose(two.p_values, one.p_values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("generalize", [False, True])
def test_one_target_sets_tests_split_their_test_steps_across_threads_with_equal_scores(
    generalize, monkeypatch, torch_threads
):
    """Without permutations (one target set) the folds' tests on 2 threads are (fold, half of the test steps)
    tasks: 5 folds make 10, not 5 (3 against 2); cross-validated, cross-decoded (``test=``) and regression
    scores equal the 1-thread run's."""
    import rnnprobe.analysis.decoding as decoding
    from rnnprobe import Recording

    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 80)
    states = rng.normal(size=(80, 9, 10)) + 0.4 * y[:, None, None]
    rec = Recording({"h": states}, metadata={"label": y, "value": states[:, 0, 0] + rng.normal(size=80)})
    other = Recording({"h": rng.normal(size=(30, 9, 10))}, metadata={"label": rng.integers(0, 3, 30)})
    tasks, real_decisions = [], decoding._decisions
    monkeypatch.setattr(decoding, "_decisions", lambda *a, **kw: tasks.append(1) or real_decisions(*a, **kw))
    runs = {}
    for threads in (1, 2):
        torch_threads(threads)
        runs[threads] = []
        for target, test in (("label", None), ("label", other), ("value", None)):
            tasks.clear()
            runs[threads].append(decoding.decode(rec, "h", target, generalize=generalize, test=test,
                                                 progress=False).scores)  # fmt: skip
            assert len(tasks) == (1 if test is not None else 5) * threads  # cross-decoding: one fold
    for two, one in zip(runs[2], runs[1], strict=True):
        np.testing.assert_allclose(two, one, rtol=0, atol=1e-12)


def test_ridge_permutation_passes_run_side_by_side_where_one_pass_cannot_hold_them(monkeypatch, pools, torch_threads):
    """Ridge puts every target set in one pass where PASS_BYTES holds them; where it cannot, the passes run
    side by side on the threads (a multiple of them, of equal size); the numbers equal the 1-thread run's."""
    import rnnprobe.analysis.decoding as decoding
    from rnnprobe import Recording

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    rec = Recording({"h": rng.normal(size=(60, 5, 8)) + 0.4 * y[:, None, None]}, metadata={"label": y})
    monkeypatch.setattr(decoding, "PASS_BYTES", 30_000)  # a few target sets per pass at these sizes
    results = []
    for threads in (1, 2):
        torch_threads(threads)
        pools.clear()
        results.append(decoding.decode(rec, "h", "label", generalize=True, n_permutations=30, progress=False))
        passes = (len(pools) - 1) // 2  # each pass opens a pool to fit its time steps and one to test its folds
        assert passes >= 10 and pools == [threads] + [1] * (2 * passes)  # passes side by side on the threads
    np.testing.assert_allclose(results[1].null, results[0].null, rtol=0, atol=1e-12)
    np.testing.assert_allclose(results[1].p_values, results[0].p_values, rtol=0, atol=1e-12)


def test_rdm_movies_permutation_tests_and_bootstraps_on_two_threads_equal_one(pools, torch_threads):
    """Blocks of time steps (compute_rdms), chunks of permutations (permutation_test) and blocks of bootstrap
    samples (moments and ranks) run on the libraries' threads; every number equals the one-thread run's."""
    from rnnprobe import Recording
    from rnnprobe.analysis import bootstrap_conditions, compute_rdms, permutation_test

    rng = np.random.default_rng(1)
    movie = Recording({"x": rng.normal(size=(12, 9, 30))})
    models, data = rng.random((3, 66)), rng.random((4, 66))
    results = []
    for threads in (1, 2):
        torch_threads(threads)
        rdms = compute_rdms(movie, "x").dissimilarities
        null = permutation_test(models, data, n_permutations=600, progress=False).null
        boot = [bootstrap_conditions(models, data, n_bootstrap=40, comparison=c) for c in ("corr", "spearman")]
        results.append([rdms, null, *(b.evaluations for b in boot), *(b.noise_ceiling for b in boot)])
        assert pools == [threads] * 4  # the RDM blocks, the permutation chunks, the two bootstraps
        pools.clear()
    for two, one in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-13, atol=1e-15)


def test_an_error_in_a_dpca_split_stops_the_cross_validation(monkeypatch, torch_threads):
    """regularizer="auto" on two threads: an error in one split is raised, and no worker takes a split after it
    (here at most the one running beside it, of 12)."""
    import threading
    import time

    from rnnprobe import Recording
    from rnnprobe.analysis import fit_dpca
    from rnnprobe.analysis.dpca import fit

    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 10)
    trials = Recording({"h": rng.normal(size=(30, 4, 6))}, metadata={"label": labels})
    started, first, lock = [], threading.Event(), threading.Lock()

    def failing(*args):
        with lock:
            started.append(threading.current_thread().name)
            is_first = len(started) == 1
        if is_first:
            first.set()
            raise ValueError("split failed")
        time.sleep(0.05)  # (the other splits take longer than the failure takes to reach its worker)
        return {"m": 0.0}

    monkeypatch.setattr(fit, "held_out_error", failing)
    torch_threads(2)
    with pytest.raises(ValueError, match="split failed"):
        fit_dpca(trials, parameters="label", regularizer="auto", n_splits=12, regularizers=[1e-3])
    assert first.is_set() and len(started) <= 3


def test_bootstraps_of_subjects_on_two_threads_equal_one(pools, torch_threads):
    """Bootstraps whose samples are evaluated one by one (subjects under tau-a) run blocks of samples on the
    threads, four a thread, in order; conditions and subjects under corr go in the pattern bootstrap's blocks,
    subjects under spearman in the rank bootstrap's (a part a thread), subjects under corr all at once. Every
    number equals the one-thread run's (1e-13)."""
    from rnnprobe.analysis import bootstrap_conditions_and_subjects, bootstrap_subjects

    rng = np.random.default_rng(3)
    truth = rng.random(66)
    models, data = truth + rng.normal(0, 1, (3, 66)), truth + rng.normal(0, 0.5, (5, 66))
    calls = {
        "subjects spearman": lambda: bootstrap_subjects(models, data, n_bootstrap=30, comparison="spearman"),
        "both corr": lambda: bootstrap_conditions_and_subjects(models, data, n_bootstrap=30, comparison="corr"),
        "subjects tau-a": lambda: bootstrap_subjects(models, data, n_bootstrap=9, comparison="tau-a"),
        "subjects corr": lambda: bootstrap_subjects(models, data, n_bootstrap=30, comparison="corr"),
    }
    results = {}
    for threads in (1, 2):
        torch_threads(threads)
        for name, call in calls.items():
            pools.clear()
            result = call()
            results.setdefault(name, []).append((result.evaluations, result.noise_ceiling))
            one_by_one = [] if threads == 1 else [2]  # blocks of samples; all at once: the pattern bootstrap's
            expected = {"both corr": [threads], "subjects spearman": [threads], "subjects corr": []}  # blocks, none
            assert pools == expected.get(name, one_by_one), name
    for name, (one, two) in results.items():  # (the pattern bootstrap's blocks of another size round differently)
        for a, b in zip(one, two, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15, err_msg=name)
        assert np.isfinite(one[0]).all() and np.isfinite(one[1]).all(), name


def test_dpca_significance_and_its_sums_on_two_threads_equal_one(pools, torch_threads):
    """dpca_significance's shuffles' condition sums split their columns over the threads (the same sums as one
    product: the same bits with OpenBLAS's Haswell kernel, within 1e-14 with its SkylakeX one), its designs' fits
    go in blocks to the threads, and regularizer="auto" cross-validates its splits side by side: the significance
    and the cross-validation scores equal the one-thread run's."""
    from rnnprobe import Recording
    from rnnprobe.analysis import dpca_significance, fit_dpca
    from rnnprobe.analysis.conditions import sum_group_sets

    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 20)
    trials = Recording({"h": rng.normal(size=(60, 5, 40)) + 0.5 * labels[:, None, None]}, metadata={"label": labels})
    states, sets = rng.normal(size=(300, 2, 100)), rng.integers(0, 4, (6, 300))
    results = []
    for threads in (1, 2):
        torch_threads(threads)
        pools.clear()
        auto = fit_dpca(trials, parameters="label", n_components=2, regularizer="auto", n_splits=5,
                        regularizers=[1e-6, 1e-3, 1e-1])  # fmt: skip
        assert pools == [threads, threads]  # the sums' columns, the cross-validation's splits
        fitted = fit_dpca(trials, parameters="label", n_components=2)
        pools.clear()
        significance = dpca_significance(trials, fitted, n_shuffles=6, n_splits=3, seed=1).significance
        assert pools == [threads, threads]  # the sums' columns, the designs' blocks
        results.append((sum_group_sets(states, sets, 4), significance, auto.cv_scores))
    np.testing.assert_array_equal(results[1][2], results[0][2])
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-13, atol=1e-13)
    assert results[1][1].keys() == results[0][1].keys()
    for name, flags in results[0][1].items():
        np.testing.assert_array_equal(results[1][1][name], flags)
    assert any(flags.any() for flags in results[0][1].values())


@pytest.mark.parametrize("solver", ["dense", "matrix-free"])
def test_fixed_point_search_on_two_threads_equals_one(solver, monkeypatch, pools, torch_threads):
    """A dense search splits its candidates (both damping levels and the deflated pass) across the threads,
    dealt out in turn; the matrix-free one cannot (forward mode's dual levels are global) and stays whole.
    Points and counts equal the one-thread search's (not each point's iterations: which of its candidates
    represents a point depends on q's last bits, and torch's reductions on 2 threads round differently)."""
    import rnnprobe.analysis.fixed_points as fixed_points
    from rnnprobe.analysis import find_fixed_points
    from rnnprobe.analysis._state_map import StateMap
    from rnnprobe.models import shipped

    monkeypatch.setattr(fixed_points, "SPLIT", 1)  # split this small search too
    model = shipped.load("flipflop-gru")
    starts = np.random.default_rng(0).normal(scale=0.5, size=(24, 16))
    inputs = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, -0.5]])  # the pieces must keep each end point's input
    found = []
    for threads in (1, 2):
        torch_threads(threads)
        found.append(find_fixed_points(model, inputs=inputs, initial_states=starts, solver=solver))
        assert pools == [threads if solver == "dense" else 1] * 2  # the ladder's search, the deflated one
        pools.clear()
    one, two = found
    assert len(one) >= 9 and one.n_deflated >= 1  # (the flip-flop GRU: 27 points from 512 starts)
    order = [np.lexsort(np.hstack([fp.inputs, fp.states]).T) for fp in found]
    np.testing.assert_allclose(two.states[order[1]], one.states[order[0]], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(two.inputs[order[1]], one.inputs[order[0]])
    with torch.no_grad():  # each a fixed point at its own input
        step = StateMap(model)(torch.as_tensor(two.states), torch.as_tensor(two.inputs))
    np.testing.assert_allclose(step.numpy(), two.states, rtol=0, atol=1e-9)
    counts = ("n_candidates", "n_unconverged", "n_outliers", "n_duplicates", "n_deflated")
    assert [getattr(two, c) for c in counts] == [getattr(one, c) for c in counts]


@pytest.mark.parametrize(("distance", "n_units"), [("correlation", 400), ("cosine", 400), ("euclidean", 40)])
def test_one_large_rdm_splits_its_gram_matrix_across_threads(distance, n_units, pools, torch_threads):
    """A single step of 600 conditions: its Gram matrix from products of pairs of row blocks on the threads
    (the normalised path for wide patterns, the centred one otherwise); equal to scipy's pdist and to the
    one-thread RDM."""
    from scipy.spatial.distance import pdist

    from rnnprobe import Recording
    from rnnprobe.analysis import compute_rdms

    x = np.random.default_rng(2).normal(size=(600, 1, n_units)) + 0.5
    rdms = []
    for threads in (1, 2):
        torch_threads(threads)
        rdms.append(compute_rdms(Recording({"x": x}), "x", distance=distance).dissimilarities[0])
    assert pools == [1, 1, 2]  # one thread: one block of steps; two: the block, then its 10 block pairs on 2
    expected = pdist(x[:, 0], "sqeuclidean") / n_units if distance == "euclidean" else pdist(x[:, 0], distance)
    np.testing.assert_allclose(rdms[0], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rdms[1], rdms[0], rtol=0, atol=1e-13)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's 0 / 0 of the zero and constant patterns
@pytest.mark.filterwarnings("ignore::rnnprobe.errors.RnnprobeWarning")  # (rnnprobe's note about their NaN)
@pytest.mark.parametrize("n_units", [100, 30])  # wide: raw Gram matrices corrected; narrow: unit patterns
@pytest.mark.parametrize("distance", ["correlation", "cosine", "euclidean", "euclidean_plain", "mahalanobis"])
def test_rdms_of_many_conditions_by_blocks_of_rows_equal_scipy(distance, n_units, monkeypatch, torch_threads):
    """150 conditions taken by blocks of rows (as larger RDMs are; 7 rows a block, so that blocks end inside
    each thread's share), a zero and a constant pattern among them: equal to scipy's pdist on 1 and 3 threads,
    NaN where it is."""
    from scipy.spatial.distance import pdist

    import rnnprobe.analysis.rsa.compute as compute
    import rnnprobe.analysis.rsa.triangles as triangles
    from rnnprobe import Recording
    from rnnprobe.analysis import compute_rdms

    rows = compute.upper_triangle_rows
    monkeypatch.setattr(triangles, "BLOCK_BYTES", 7 * 8 * 150)
    monkeypatch.setattr(triangles, "ROWS_BYTES", 150**2 * 8)
    monkeypatch.setattr(compute, "SPLIT_ROWS", 64)  # (3 threads, one step a block: products by rows on them)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(150, 2, n_units)) + 0.5
    x[7], x[90] = 0.0, 2.0
    precision = np.diag(rng.uniform(0.5, 2, n_units))
    kwargs = {"noise": precision} if distance == "mahalanobis" else {}
    metric = {"euclidean": "sqeuclidean", "euclidean_plain": "euclidean"}.get(distance, distance)
    scale = n_units if distance in ("euclidean", "mahalanobis") else 1
    power = 2 if distance == "mahalanobis" else 1
    expected = [pdist(x[:, t], metric, **({"VI": precision} if kwargs else {})) ** power / scale for t in (0, 1)]
    assert np.isnan(expected[0]).any() == (distance in ("correlation", "cosine"))
    taken = []  # (the rows' function of each call: this path is taken)
    monkeypatch.setattr(compute, "upper_triangle_rows", lambda *a, **k: taken.append(a[1]) or rows(*a, **k))
    for threads in (1, 3):
        torch_threads(threads)
        got = compute_rdms(Recording({"x": x}), "x", distance=distance, **kwargs).dissimilarities
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert len(taken) == 3  # one thread: both steps in one block; three: a block a step


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_products_by_blocks_of_rows_on_threads_equal_numpy(threads, monkeypatch):
    import rnnprobe.analysis.rsa.compute as compute

    monkeypatch.setattr(compute, "SPLIT_ROWS", 8)
    rng = np.random.default_rng(3)
    backend = compute._Backend(None, "float64")
    a, weights, b = rng.normal(size=(3, 20, 7)), rng.normal(size=(7, 7)), rng.normal(size=(3, 7, 11))
    np.testing.assert_allclose(backend.product(a, weights, threads=threads), a @ weights, rtol=1e-14)
    into = np.full((3, 20, 11), np.nan)
    assert backend.product(a, b, out=into, threads=threads) is into
    np.testing.assert_allclose(into, a @ b, rtol=1e-14)
    np.testing.assert_allclose(backend.product(a[:, :7], b, threads=threads), a[:, :7] @ b, rtol=1e-14)  # (whole)
    np.testing.assert_allclose(backend.gram(a, a @ weights, threads=threads), a @ weights @ a.transpose(0, 2, 1),
                               rtol=1e-13)  # fmt: skip


def test_rdms_by_rows_from_gram_matrices_of_8_mib():
    from rnnprobe.analysis.rsa.triangles import by_rows

    assert by_rows(np.empty((1, 1024, 1024))) and not by_rows(np.empty((3, 1023, 1023)))
    assert by_rows(np.empty((1, 1449, 1449), np.float32)) and not by_rows(np.empty((1, 1448, 1448), np.float32))
    assert not by_rows(torch.empty(1, 2000, 2000, dtype=torch.float64))  # (torch's, on a device: whole matrices)


@pytest.mark.parametrize("whole_rows", [False, True])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n", [2, 3, 131])
def test_upper_triangle_rows_equal_the_triu_gather_and_compute_each_row_once(n, threads, whole_rows, monkeypatch):
    """Rows from the diagonal on (blocks of at most 5 x n values, growing as the rows shorten) or whole rows (5 a
    block): the triangles as numpy's gather, each row computed once."""
    import rnnprobe.analysis.rsa.triangles as triangles

    monkeypatch.setattr(triangles, "BLOCK_BYTES", 5 * 8 * n)
    full = np.random.default_rng(0).normal(size=(2, n, n))
    seen = []

    def rows(t, part):
        seen.append((t, part))
        return full[t, part, 0 if whole_rows else part.start :] * 3 - 1

    out = np.full((3, n * (n - 1) // 2), np.nan)
    got = triangles.upper_triangle_rows((2, n), rows, out[1:], threads=threads, whole_rows=whole_rows)
    assert got.base is out
    i, j = np.triu_indices(n, 1)
    np.testing.assert_array_equal(out[1:], (full * 3 - 1)[:, i, j])
    assert np.isnan(out[0]).all()
    for t in (0, 1):  # every row that has pairs, once
        computed = [r for step, part in seen if step == t for r in range(part.start, part.stop)]
        assert sorted(computed) == list(range(n - 1))
    width = (lambda part: n) if whole_rows else (lambda part: n - part.start)
    assert all((part.stop - part.start) * width(part) <= 5 * n or part.stop - part.start == 1 for _, part in seen)
    if n == 131:  # from the diagonal on, the rows shorten and the blocks grow
        assert (max(part.stop - part.start for _, part in seen) > 5) != whole_rows
    made = triangles.upper_triangle_rows((1, n), lambda t, part: full[t, part, part.start :], dtype=np.float32)
    assert made.dtype == np.float32 and made.shape == (1, n * (n - 1) // 2)


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 2001])
def test_shares_of_rows_hold_about_equal_pair_counts(n, parts):
    from rnnprobe.analysis.rsa.triangles import _pair_shares

    starts = np.concatenate(([0], np.cumsum(np.arange(n - 1, 0, -1))))
    shares = _pair_shares(starts, parts)
    assert len(shares) == parts and shares[0].start == 0 and shares[-1].stop == n - 1
    assert all(a.stop == b.start for a, b in itertools.pairwise(shares))  # contiguous, in order
    counts = [starts[share.stop] - starts[share.start] for share in shares]
    assert max(counts) - min(counts) <= 2 * n  # (each edge at most a row's pairs from the equal split)


def test_symmetric_product_in_blocks_of_rows_equals_the_whole_product():
    from rnnprobe.analysis.rsa.compute import symmetric_product

    x = np.random.default_rng(3).normal(size=(601, 30))  # blocks of unequal size
    for threads in (1, 2, 3):
        out = np.full((601, 601), np.nan)
        symmetric_product(x, out, threads)
        np.testing.assert_allclose(out, x @ x.T, rtol=1e-13, atol=1e-13)  # both triangles


def test_an_error_in_a_pool_drops_the_work_not_yet_started():
    import threading
    import time

    ran, lock = [], threading.Lock()

    def work(i):
        if i == 1:
            raise ValueError("stop")
        time.sleep(0.01)
        with lock:
            ran.append(i)

    torch_before = torch.get_num_threads()
    with pytest.raises(ValueError, match="stop"), worker_pool(2) as pmap:
        list(pmap(work, range(200)))
    assert len(ran) < 20 and torch.get_num_threads() == torch_before  # not the 199 others


def test_the_library_lookup_is_found_again_when_modules_are_imported(monkeypatch, tmp_path):
    import sys

    from rnnprobe.analysis.parallel import thread_controller

    first = thread_controller()
    assert thread_controller() is first  # nothing imported since: the same lookup
    (tmp_path / "freshly_imported_module.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import freshly_imported_module  # noqa: F401

    try:
        again = thread_controller()
        assert again is not first and {lib.filepath for lib in again.lib_controllers} >= {
            lib.filepath for lib in first.lib_controllers
        }
    finally:
        sys.modules.pop("freshly_imported_module")
    # a pool still limits the libraries it finds, through the cached lookup
    with worker_pool(2, threads=2) as pmap:
        assert list(pmap(lambda _: _blas_threads(), range(2))) == [[1] * len(_blas_threads())] * 2


@pytest.mark.parametrize("last", ["first", "second"])
def test_pools_opened_at_once_by_two_threads_restore_the_settings_whatever_order_they_end(last, torch_threads):
    """Two threads each open a pool (as the tasks of a multi-threaded dask worker may): BLAS's thread count,
    the process's, stays limited while either is open and comes back whichever ends last (before, the pool
    that ended last restored what it had found: the other's limit, leaving BLAS on one thread); torch's,
    each thread's own, comes back in each thread."""
    import threading

    from threadpoolctl import threadpool_limits

    torch_threads(2)
    entered, released = threading.Barrier(3, timeout=30), {name: threading.Event() for name in ("first", "second")}
    seen = {}

    ready = threading.Barrier(2, timeout=30)

    def open_pool(name):
        torch.set_num_threads(2)
        assert torch.get_num_threads() == 2  # torch reads its setting for this thread lazily, on first use
        ready.wait()  # before either thread limits
        with worker_pool(2, threads=2) as pmap:
            inside = list(pmap(lambda _: (torch.get_num_threads(), set(_blas_threads())), range(2)))
            entered.wait()
            released[name].wait(timeout=30)
        seen[name] = (inside, torch.get_num_threads())

    first_to_end = "second" if last == "first" else "first"
    with threadpool_limits(limits=2, user_api="blas"):
        threads = {name: threading.Thread(target=open_pool, args=(name,), daemon=True) for name in released}
        try:
            for thread in threads.values():
                thread.start()
            entered.wait()  # both pools open
            released[first_to_end].set()
            threads[first_to_end].join(timeout=30)
            still_limited = set(_blas_threads())
        finally:
            for event in released.values():
                event.set()
            for thread in threads.values():
                thread.join(timeout=30)
        assert still_limited == {1}  # the other pool is still open
        assert set(_blas_threads()) == {2} and torch.get_num_threads() == 2
    assert seen == {name: ([(1, {1})] * 2, 2) for name in released}


def test_a_pool_inside_small_blas_gives_back_torch_and_keeps_blas_limited(torch_threads):
    """Limits nested in one thread: after a pool inside small_blas ends, torch has its threads again and BLAS
    stays on small_blas's one thread; after small_blas, BLAS has its threads again."""
    from threadpoolctl import threadpool_limits

    from rnnprobe.analysis.parallel import small_blas

    torch_threads(2)
    with threadpool_limits(limits=2, user_api="blas"):
        with small_blas():
            assert set(_blas_threads()) == {1} and torch.get_num_threads() == 2
            with worker_pool(2, threads=2) as pmap:
                assert list(pmap(lambda _: torch.get_num_threads(), range(2))) == [1, 1]
            assert set(_blas_threads()) == {1} and torch.get_num_threads() == 2
        assert set(_blas_threads()) == {2} and torch.get_num_threads() == 2


def test_one_blas_thread_limits_blas_only_where_a_library_has_more(monkeypatch):
    """one_blas_thread: BLAS on one thread inside where a library had two, its threads back after; no limit entered
    (65 us) where every library has one."""
    from threadpoolctl import threadpool_limits

    import rnnprobe.analysis.parallel as parallel

    entered, real = [], parallel.small_blas
    monkeypatch.setattr(parallel, "small_blas", lambda: entered.append(1) or real())
    with threadpool_limits(limits=2, user_api="blas"):
        assert parallel.blas_threads() == 2
        with parallel.one_blas_thread():
            assert set(_blas_threads()) == {1} and parallel.blas_threads() == 1
        assert set(_blas_threads()) == {2}
    with threadpool_limits(limits=1, user_api="blas"), parallel.one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert entered == [1]


def test_scipys_lapack_runs_on_one_blas_thread_with_the_same_numbers():
    """The solves and eigenpairs rnnprobe asks of scipy's LAPACK, which calls scipy's own OpenBLAS, run with BLAS
    on one thread where the libraries have two: each library's woken threads spin, and by turns they had three or
    four busy threads on two cores (a ridge of one time step: 4.6-7.3 ms on one thread, 120-156 ms on two). The
    numbers are those of one thread."""
    import scipy.linalg
    from threadpoolctl import threadpool_limits

    from rnnprobe.analysis import _lapack, decoding_steps, tdr
    from rnnprobe.analysis.parallel import blas_threads

    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 40))
    kernel, codes = x @ x.T, rng.normal(size=(60, 2))
    systems = np.stack([x[i : i + 50].T @ x[i : i + 50] + np.eye(40) for i in range(3)])
    design, rhs = np.column_stack([rng.normal(size=(60, 3)), np.ones(60)]), rng.normal(size=(3, 40, 2))
    calls = {
        "posv_batch": lambda: _lapack.posv_batch(systems, rhs)[0],
        "leading_eigh": lambda: _lapack.leading_eigh(kernel, 5)[1],
        "dual_of": lambda: decoding_steps.dual_of(kernel, np.arange(10, 60), codes, 2.0)[0],
        "tdr's least squares": lambda: tdr._least_squares(design)(x),
    }
    seen, results = [], {}
    real = {name: getattr(scipy.linalg, name) for name in ("cho_factor", "solve_triangular")}
    real_routine = _lapack._c_routine

    def recorded(name, fn):
        return lambda *args, **kwargs: seen.append((name, blas_threads())) or fn(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for name, fn in real.items():
            patch.setattr(scipy.linalg, name, recorded(name, fn))
        patch.setattr(_lapack, "_c_routine", lambda name, *rest: recorded(name, real_routine(name, *rest)))
        for threads in (1, 2):
            with threadpool_limits(limits=threads, user_api="blas"):
                assert blas_threads() == threads
                results[threads] = {name: call() for name, call in calls.items()}
    assert {name for name, _ in seen} == {"dposv", "dsyevr", "cho_factor", "solve_triangular"}
    assert {threads for _, threads in seen} == {1}, seen
    for name in calls:
        assert np.array_equal(results[1][name], results[2][name]), name


def test_pools_keep_their_threads_and_set_each_workers_torch_threads_per_pool(torch_threads):
    """A pool's threads are kept for the next pool of that size (starting threads costs a tenth of a small
    analysis); a kept worker takes the torch thread count of the pool it serves now, not the one it had."""
    import threading

    torch_threads(4)
    both = threading.Barrier(2, timeout=30)  # every task waits for one on the other worker: both threads serve

    def seen(_):
        both.wait()
        return threading.get_ident(), torch.get_num_threads()

    with worker_pool(2, threads=4) as pmap:
        first = list(pmap(seen, range(8)))
    with worker_pool(2, threads=2) as pmap:
        second = list(pmap(seen, range(8)))
    assert {t for _, t in first} == {2} and {t for _, t in second} == {1}
    assert len({i for i, _ in first}) == 2 and {i for i, _ in second} == {i for i, _ in first}  # the same threads
    assert torch.get_num_threads() == 4


def test_a_pool_opened_inside_a_pools_task_gets_its_own_threads():
    """Nested pools of one size: the inner one cannot be lent the outer's busy workers (that would wait
    forever); it gets threads of its own, and the results come back in order."""
    import threading

    def outer(i):
        with worker_pool(2, threads=2) as pmap:
            inner = list(pmap(lambda j: (threading.get_ident(), 10 * i + j), range(3)))
        return threading.get_ident(), inner

    with worker_pool(2, threads=2) as pmap:
        list(pmap(abs, range(2)))  # a pool of 2 kept, to be lent to the outer pool
    done = []

    def run():
        with worker_pool(2, threads=2) as pmap:
            done.append(list(pmap(outer, range(4))))

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "a nested pool waited for its own workers"
    (results,) = done
    assert [[v for _, v in inner] for _, inner in results] == [[10 * i + j for j in range(3)] for i in range(4)]
    outer_threads = {t for t, _ in results}
    assert all(t not in outer_threads for _, inner in results for t, _ in inner)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # Python >= 3.12
def test_a_forked_child_opens_pools_of_its_own():
    """A child forked after pools were kept has none of their threads: its pools start new ones, also when
    the pools' lock was held at the fork (its holder does not exist in the child)."""
    import multiprocessing

    import rnnprobe.analysis.parallel as parallel

    with worker_pool(2, threads=2) as pmap:
        list(pmap(abs, range(4)))  # a pool of 2 kept in this process
    context = multiprocessing.get_context("fork")
    with parallel._POOLS.lock:  # held while the child is forked
        child = context.Pool(1)
    with child:
        result = child.apply_async(_pool_sum, (list(range(10)),))
        assert result.get(timeout=60) == 45


def _pool_sum(values):
    with worker_pool(2, threads=2) as pmap:
        return sum(pmap(abs, values))


def test_pools_run_while_another_thread_is_still_importing_torch(monkeypatch):
    """A worker that imports torch for the first time (the rank bootstrap's running sums) leaves it half
    initialised in ``sys.modules`` while it runs: the pools' torch thread settings skip such a module (they
    failed with AttributeError). A bare module stands for torch half imported."""
    import sys
    import types

    from threadpoolctl import threadpool_limits

    from rnnprobe.analysis.parallel import library_threads, task_pool

    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    with threadpool_limits(limits=1, user_api="blas"):
        assert library_threads() == 1  # (BLAS's count, as without torch)
    with task_pool(2, threads=2) as pmap:  # (the pool's limits and each worker's torch setting)
        assert list(pmap(abs, [-1, -2])) == [1, 2]


def test_a_rank_bootstrap_in_a_process_without_torch_runs_on_two_threads():
    """The rank bootstrap imports torch before its threads start: in a process without torch, a worker importing
    it while the other started had the other fail (2 runs in 3). Three fresh processes, two BLAS threads."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from threadpoolctl import threadpool_limits\n"
        "from rnnprobe.analysis import bootstrap_conditions\n"
        "assert 'torch' not in sys.modules\n"
        "rng = np.random.default_rng(0)\n"
        "with threadpool_limits(limits=2, user_api='blas'):\n"
        "    result = bootstrap_conditions(rng.random((2, 45)), rng.random((3, 45)), comparison='spearman',\n"
        "                                  n_bootstrap=20, progress=False)\n"
        "assert np.isfinite(result.evaluations).all()\n"
    )
    for _ in range(3):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
