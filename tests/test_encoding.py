"""Encoding models against scikit-learn on the same folds, noise ceilings against a brute-force loop and
the analytic value of a planted data set, and bad input."""

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Lasso, Ridge, RidgeCV
from sklearn.model_selection import GroupKFold, KFold

from rnnprobe import Recording
from rnnprobe.analysis import fit_encoding, split_half_reliability
from rnnprobe.errors import ArgumentError, NonFiniteError, RnnprobeError, ShapeError, UnknownNameError

ALPHAS = np.logspace(-2, 5, 15)


def _pearson(a, b):
    return np.array([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])])


def _reference(x, y, folds, make):
    """Mean over folds of the held-out Pearson r and R^2 per target, fitted by a scikit-learn model."""
    r, r2 = [], []
    for train, test in folds:
        prediction = make().fit(x[train], y[train]).predict(x[test]).reshape(len(test), -1)
        r.append(_pearson(prediction, y[test]))
        r2.append(1 - ((y[test] - prediction) ** 2).sum(0) / ((y[test] - y[test].mean(0)) ** 2).sum(0))
    return np.mean(r, axis=0), np.mean(r2, axis=0)


def _data(rng, n, p, targets, noise=2.0):
    x = rng.normal(size=(n, p)) * np.linspace(0.2, 2, p) + 3
    y = x @ rng.normal(size=(p, targets)) * rng.uniform(0.1, 1, targets) + rng.normal(size=(n, targets)) * noise
    return x, y


@pytest.mark.parametrize(("n", "p", "rows"), [(90, 20, None), (90, 20, 7), (60, 150, None)])
def test_ridge_equals_scikit_learn_ridgecv_per_target(rng, monkeypatch, n, p, rows):
    """Primal (from each fold's sums over blocks of rows: one block, or blocks of 7) and dual (units > training
    stimuli)."""
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis.encoding import tall

    if rows:  # (and room for the sums, which would be fitted per fold from 4 blocks)
        monkeypatch.setattr(blockwise, "BLOCK_BYTES", 32 * p * rows)
        monkeypatch.setattr(tall, "SUMS_BLOCKS", 100)
    x, y = _data(rng, n, p, 12)
    folds = list(KFold(4, shuffle=True, random_state=3).split(x))
    result = fit_encoding(x, y, alphas=ALPHAS, cv=folds, ceiling=False)
    r, r2 = _reference(x, y, folds, lambda: RidgeCV(alphas=ALPHAS, alpha_per_target=True))
    np.testing.assert_allclose(result.scores["features"][0, 0], r, atol=1e-8)
    np.testing.assert_allclose(result.r2["features"][0, 0], r2, atol=1e-8)


def test_pls_equals_scikit_learn_pls_regression(rng):
    x, y = _data(rng, 100, 30, 9)
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    result = fit_encoding(x, y, estimator="pls", n_components=6, cv=folds, ceiling=False)
    # scikit-learn's NIPALS converged tightly: its default tol=1e-6 stops early where the first two singular
    # values of X'Y are close (predictions then differ by up to 0.3%); rnnprobe computes the limit exactly
    r, r2 = _reference(x, y, folds, lambda: PLSRegression(6, scale=False, tol=1e-15, max_iter=100_000))
    np.testing.assert_allclose(result.scores["features"][0, 0], r, atol=1e-6)
    np.testing.assert_allclose(result.r2["features"][0, 0], r2, atol=1e-6)


@pytest.mark.parametrize(("estimator", "n_targets"), [("pls", 6), ("pls", 70), ("pls_nipals", 6), ("pls_nipals", 70)])
def test_pls_of_more_units_than_stimuli_from_the_gram_matrix_equals_scikit_learn(rng, estimator, n_targets):
    """More units than training stimuli: PLS from the Gram matrix across stimuli alone (its dual form, which a step
    larger than a block gives; more targets than stimuli through U S of their SVD) is scikit-learn's PLSRegression,
    converged ("pls", to 1e-6) or with its default iterations ("pls_nipals", to 1e-10), and the units' form of the
    same model (fit_pls or fit_pls_nipals, to 1e-9)."""
    from rnnprobe.analysis.encoding.fit import PLS_SOLVERS, Estimator, _pls_gram_predictions
    from rnnprobe.analysis.encoding.pls import predict_pls

    x, y = _data(rng, 50, 120, n_targets)
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    result = fit_encoding(x, y, estimator=estimator, n_components=6, cv=folds, ceiling=False)
    converged = {"tol": 1e-15, "max_iter": 100_000} if estimator == "pls" else {}
    r, r2 = _reference(x, y, folds, lambda: PLSRegression(6, scale=False, **converged))
    atol = 1e-6 if estimator == "pls" else 1e-10
    np.testing.assert_allclose(result.scores["features"][0, 0], r, atol=atol)
    np.testing.assert_allclose(result.r2["features"][0, 0], r2, atol=atol)
    assert np.median(r) > 0.3  # a fit that predicts
    dual = _pls_gram_predictions(x, y, folds, Estimator(estimator, n_components=6))
    for (train, test), predicted in zip(folds, dual, strict=True):
        units = predict_pls(PLS_SOLVERS[estimator](x[train], y[train], 6), x[test])
        np.testing.assert_allclose(predicted, units, rtol=0, atol=1e-9 * np.abs(units).max())


def test_pls_weights_of_large_cross_products_from_the_first_eigenvector_alone(rng, monkeypatch):
    """PLS whose X'Y (or dual Y'KY) has both sides from 128 on: each weight from the first eigenvector alone
    (counted), the same predictions (to 1e-10 of their scale) as from every eigenvector by numpy's eigh; the
    units' form and the dual form agree."""
    from rnnprobe.analysis import _lapack
    from rnnprobe.analysis.encoding import pls

    x, y = _data(rng, 160, 200, 140, noise=0.5)
    train, test = np.arange(130), np.arange(130, 160)
    leading, calls = _lapack.leading_eigh, []
    monkeypatch.setattr(_lapack, "leading_eigh", lambda a, k: calls.append((len(a), k)) or leading(a, k))
    units = pls.predict_pls(pls.fit_pls(x[train], y[train], 5), x[test])
    assert calls == [(140, 1)] * 5  # X'Y: 200 x 140, its Gram matrix of the targets
    xc = x - x[train].mean(axis=0)
    kernel = xc[train] @ xc[train].T
    dual, y_mean = pls.fit_pls_gram(kernel, y[train], 5)
    assert calls[5:] == [(130, 1)] * 5  # Y'K Y of the stimuli's basis (140 targets > 130 stimuli: U S)
    np.testing.assert_allclose(xc[test] @ xc[train].T @ dual + y_mean, units, rtol=0, atol=1e-9 * np.abs(units).max())
    monkeypatch.setattr(_lapack, "leading_eigh", lambda a, k: np.linalg.eigh(a))  # every eigenvector
    every = pls.predict_pls(pls.fit_pls(x[train], y[train], 5), x[test])
    np.testing.assert_allclose(units, every, rtol=0, atol=1e-10 * np.abs(units).max())


def test_pls_nipals_equals_scikit_learn_defaults_where_the_exact_solution_does_not(rng):
    x, y = _data(np.random.default_rng(2), 100, 30, 9)  # a draw where NIPALS' early stop moves predictions by 0.5%
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    r, r2 = _reference(x, y, folds, lambda: PLSRegression(6, scale=False))  # tol=1e-6, max_iter=500
    nipals = fit_encoding(x, y, estimator="pls_nipals", n_components=6, cv=folds, ceiling=False)
    np.testing.assert_allclose(nipals.scores["features"][0, 0], r, atol=1e-12)
    np.testing.assert_allclose(nipals.r2["features"][0, 0], r2, atol=1e-12)
    exact = fit_encoding(x, y, estimator="pls", n_components=6, cv=folds, ceiling=False)
    assert np.abs(exact.r2["features"][0, 0] - r2).max() > 1e-6  # the limit differs from the iterations here


@pytest.mark.parametrize("rank", [30, 4])  # full rank, and X exhausted after 4 of 8 components
def test_pls_from_the_features_covariances_equals_scikit_learn(rank):
    """PLS from Xc'Xc and Xc'Yc alone (and Yc'Yc for NIPALS; the form a tall step read in blocks of stimuli gives)
    is scikit-learn's PLSRegression, converged ("pls", to 1e-6) or with its default iterations ("pls_nipals", on a
    draw where they stop short of the limit, to 1e-9), and the data forms fit_pls and fit_pls_nipals (to 1e-9)."""
    from rnnprobe.analysis.encoding.pls import (
        fit_pls,
        fit_pls_covariance,
        fit_pls_nipals,
        fit_pls_nipals_covariance,
        predict_pls,
    )

    x, y = _data(np.random.default_rng(2), 100, 30, 9)
    if rank < 30:  # training features of rank 4; the test stimuli also off their span, where no component reaches
        x = x[:, :rank] @ np.random.default_rng(2).normal(size=(rank, 30)) + 3  # (t't 9e-18 ||Xc||^2 at the 5th)
        x[80:] += np.random.default_rng(3).normal(0, 0.1, size=(20, 30))
    train, test = np.arange(80), np.arange(80, 100)
    xc, yc = x[train] - x[train].mean(0), y[train] - y[train].mean(0)
    gram, cross = xc.T @ xc, xc.T @ yc
    n_components = 6 if rank == 30 else 8
    forms = [(fit_pls_covariance(gram, cross, n_components), fit_pls, {"tol": 1e-15, "max_iter": 100_000})]
    if rank == 30:  # (NIPALS on an exhausted X iterates on rounding in either form)
        forms.append((fit_pls_nipals_covariance(gram, cross, yc.T @ yc, n_components), fit_pls_nipals, {}))
    for coef, data, reference in forms:
        predicted = (x[test] - x[train].mean(0)) @ coef + y[train].mean(0)
        scale = np.abs(predicted).max()
        units = predict_pls(data(x[train], y[train], n_components), x[test])
        np.testing.assert_allclose(predicted, units, rtol=0, atol=1e-9 * scale)
        if rank == 30:  # (scikit-learn's deflation of an exhausted X divides rounding by rounding)
            sklearn = PLSRegression(n_components, scale=False, **reference).fit(x[train], y[train]).predict(x[test])
            np.testing.assert_allclose(predicted, sklearn, rtol=0, atol=(1e-6 if reference else 1e-9) * scale)
    if rank == 30:  # NIPALS' iterations stop short of the limit on this draw: the two forms are told apart
        exact, nipals = (x[test] @ form[0] for form in forms)
        assert np.abs(exact - nipals).max() > 1e-4 * scale


def test_any_regressor_on_the_same_folds(rng):
    x, y = _data(rng, 80, 10, 4)
    folds = list(KFold(4, shuffle=True, random_state=1).split(x))
    result = fit_encoding(x, y, estimator=Lasso(alpha=0.1), cv=folds, ceiling=False)
    r, _ = _reference(x, y, folds, lambda: Lasso(alpha=0.1))
    np.testing.assert_allclose(result.scores["features"][0, 0], r, atol=1e-12)
    assert result.estimator == "Lasso"


def test_ceiling_equals_a_brute_force_loop_and_the_analytic_value(rng):
    n, reps, targets = 300, 8, 6
    signal_sd = np.linspace(0.5, 2, targets)
    trials = rng.normal(size=(n, 1, targets)) * signal_sd + rng.normal(size=(n, reps, targets))
    result = split_half_reliability(trials, n_splits=25, seed=4)
    order_rng, total = np.random.default_rng(4), np.zeros(targets)
    for _ in range(25):
        order = order_rng.permutation(reps)
        a, b = trials[:, order[:4]].mean(1), trials[:, order[4:]].mean(1)
        total += _pearson(a, b)
    split = total / 25
    np.testing.assert_allclose(result.split_half, split, atol=1e-12)
    np.testing.assert_allclose(result.reliability, 2 * split / (1 + split), atol=1e-12)
    analytic = signal_sd**2 / (signal_sd**2 + 1 / reps)  # reliability of an average of 8 repetitions
    np.testing.assert_allclose(result.reliability, analytic, atol=0.03)
    fewer = split_half_reliability(trials, n_splits=25, seed=4, n_repetitions=4)  # the ceiling for 4-trial averages
    np.testing.assert_allclose(fewer.reliability, split, atol=1e-12)


def test_a_neuron_constant_at_a_value_no_mean_equals_has_no_reliability(rng):
    """A target of 0.1 on every trial (half-averages that keep about 1e-17 of spread once centred) had a
    reliability of 1 from correlated rounding; refused as a constant target is. A target constant in some splits'
    halves only leaves those splits out."""
    trials = rng.normal(size=(30, 10, 3))
    trials[..., 2] = 0.1
    assert ((trials[:, :5, 2].mean(1) - trials[:, :5, 2].mean()) ** 2).sum() > 0
    with pytest.raises(ArgumentError, match=r"first at \[\(2,\)\]\) have a half-average that is the same"):
        split_half_reliability(trials)
    trials[..., 2] = rng.normal(size=(30, 10))
    trials[:, :8, 2] = 0.1  # a half of 5 of these 8 repetitions is constant (a split in 4.5)
    expected = split_half_reliability(trials, n_splits=40, seed=1)
    order_rng, total, count = np.random.default_rng(1), 0.0, 0
    for _ in range(40):
        order = order_rng.permutation(10)
        halves = [trials[:, order[:5], 2].mean(1), trials[:, order[5:], 2].mean(1)]
        if all(len(np.unique(h)) > 1 for h in halves):
            total, count = total + np.corrcoef(*halves)[0, 1], count + 1
    assert count < 40
    np.testing.assert_allclose(expected.split_half[2], total / count, atol=1e-12)


def test_a_target_constant_on_a_held_out_fold_has_no_score(rng):
    """A target of 0.1 on every stimulus of one held-out fold: no correlation and no R^2 there (NaN; its R^2 was
    -inf for an exact constant, a number of rounding for 0.1), so its mean over folds is NaN; the other targets'
    scores as scikit-learn's Ridge gives, fold by fold."""
    x = rng.normal(size=(60, 8))
    y = x[:, :3] @ rng.normal(size=(3, 3)) + rng.normal(size=(60, 3))
    folds = list(KFold(3).split(x))
    for value in (0.1, 1.0):
        y[folds[0][1], 1] = value
        result = fit_encoding(x, y, cv=folds, alphas=[2.0], ceiling=False, progress=False)
        assert np.isnan(result.scores["features"][0, 0, 1]) and np.isnan(result.r2["features"][0, 0, 1])
        expected_r, expected_r2 = _reference(x, y[:, [0, 2]], folds, lambda: Ridge(alpha=2.0))
        np.testing.assert_allclose(result.scores["features"][0, 0, [0, 2]], expected_r, rtol=1e-9)
        np.testing.assert_allclose(result.r2["features"][0, 0, [0, 2]], expected_r2, rtol=1e-9)


def test_a_planted_encoding_model_reaches_its_ceiling_and_noise_does_not(rng):
    n, reps, p, targets = 400, 6, 20, 30
    x = rng.normal(size=(n, p))
    signal = x @ rng.normal(size=(p, targets)) / np.sqrt(p)
    trials = signal[:, None, None] + rng.normal(0, 1.5, size=(n, reps, 1, targets))
    result = fit_encoding(x, trials, cv=5)
    analytic = np.sqrt(1 / (1 + 1.5**2 / reps))  # the correlation of the true signal with a 6-trial mean
    assert np.nanmedian(result.ceiling.ceiling) == pytest.approx(analytic, abs=0.02)
    assert result.median(ceiled=True)[0, 0] == pytest.approx(1.0, abs=0.04)
    noise = fit_encoding(rng.normal(size=(n, p)), trials, cv=5)
    assert abs(noise.median()[0, 0]) < 0.05


def test_time_resolved_layers_share_folds_and_find_the_matching_step(rng):
    n, p = 150, 12
    h = rng.normal(size=(n, 4, p))
    responses = np.stack(
        [h[:, 2] @ rng.normal(size=(p, 5)), rng.normal(size=(n, 5))], axis=1
    )  # (stimulus, time, target)
    rec = Recording({"a": h, "b": rng.normal(size=(n, 4, 3))})
    result = fit_encoding(rec, responses + 0.3 * rng.normal(size=responses.shape), cv=3)
    assert result.scores["a"].shape == (4, 2, 5) and result.scores["b"].shape == (4, 2, 5)
    median = result.median("a")
    assert np.unravel_index(np.argmax(median), median.shape) == (2, 0)
    best = result.best()
    assert (best["layer"][0] == "a").all() and (best["model_time"][0] == 2).all()
    alone = fit_encoding(rec, responses + 0.3 * np.random.default_rng(0).normal(size=responses.shape), layers="a",
                         cv=3)  # fmt: skip
    assert alone.scores["a"].shape == (4, 2, 5)
    assert result.summary()["a: at model time"] == 2


def test_trials_grouped_by_a_descriptor_match_the_stimuli(rng):
    conditions, reps, p = 30, 4, 8
    x = rng.normal(size=(conditions, 1, p))
    signal = x[:, 0] @ rng.normal(size=(p, 6))
    labels = np.repeat(np.arange(conditions), reps)
    shuffle = rng.permutation(labels.size)
    trials = (signal[labels] + 0.5 * rng.normal(size=(labels.size, 6)))[shuffle]
    neural = Recording({"IT": trials[:, None]}, metadata={"condition": labels[shuffle]})
    model = Recording({"h": x[::-1]}, metadata={"condition": np.arange(conditions)[::-1]})
    grouped = fit_encoding(model, neural, descriptor="condition", cv=3)
    ordered = trials[np.argsort(labels[shuffle], kind="stable")].reshape(conditions, reps, 1, 6)
    direct = fit_encoding(x, ordered, cv=3)
    np.testing.assert_allclose(grouped.scores["h"], direct.scores["features"], atol=1e-12)
    np.testing.assert_allclose(grouped.ceiling.reliability, direct.ceiling.reliability, atol=1e-12)


def test_bad_input_is_one_clear_error(rng):
    x, y = _data(rng, 40, 5, 3)
    constant = y.copy()
    constant[:, 1] = 2.0
    cases = [
        (lambda: fit_encoding(x, y[:30]), ShapeError, "40 and 30 stimuli"),
        (lambda: fit_encoding(x[:8], y[:8], cv=5), ArgumentError, "cv: got 5"),
        (lambda: fit_encoding(x, constant), ArgumentError, "are the same for every stimulus"),
        (lambda: fit_encoding(x, np.where(y > 2, np.nan, y)), NonFiniteError, "non-finite"),
        (lambda: fit_encoding(x, y, estimator="svm"), UnknownNameError, "estimator: got 'svm'"),
        (lambda: fit_encoding(x, y, alphas=[1, -1]), ArgumentError, "alphas"),
        (lambda: fit_encoding(x, y, estimator=3), RnnprobeError, "estimator"),
        (lambda: fit_encoding(x, y, cv="five"), RnnprobeError, "cv: got 'five'"),
        (lambda: split_half_reliability(y[:, None]), ShapeError, "1 repetition per stimulus"),
        (lambda: split_half_reliability(np.full((5, 2, 3), np.nan)), NonFiniteError, "non-finite"),
        (lambda: fit_encoding(x, y, descriptor="condition"), ArgumentError, "no columns"),
        (lambda: fit_encoding(x, y).ceiled("features"), ArgumentError, "no ceiling"),
        (lambda: fit_encoding(x, y, stratify=np.arange(3)), ShapeError, "one value per stimulus"),
        (lambda: fit_encoding(x, y, cv=[(np.arange(30), np.arange(25, 40))]), ShapeError, "both its training"),
        (lambda: fit_encoding(x, y, inner_cv=40), ArgumentError, "inner_cv: got 40, but the smallest training fold"),
        (lambda: fit_encoding(x, y, neural_time=5), ArgumentError, "time: index 5 is out of range"),
        (lambda: fit_encoding(x[:1], y[:1], cv=2), ArgumentError, r"cv: KFold\(.*\) cannot split these 1 samples"),
        (
            lambda: fit_encoding(x, y, cv=GroupKFold(3), groups=np.arange(len(x)) % 2),
            ArgumentError,
            "cannot split these .* samples: Cannot have number of splits",
        ),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize(("n", "p", "rows"), [(80, 12, None), (80, 12, 5), (50, 90, None)])
def test_inner_kfold_selection_equals_a_brute_force_loop_over_ridge(rng, monkeypatch, n, p, rows):
    """Primal (from the inner folds' sums over blocks of rows: one block, or blocks of 5 with one fold's inner
    Gram matrices a pass) and dual."""
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis.encoding import tall

    if rows:
        monkeypatch.setattr(blockwise, "BLOCK_BYTES", 32 * p * rows)
        monkeypatch.setattr(tall, "SUMS_BLOCKS", 100)
    x, y = _data(rng, n, p, 5)
    folds = list(KFold(3, shuffle=True, random_state=2).split(x))
    result = fit_encoding(x, y, alphas=ALPHAS, cv=folds, inner_cv=4, seed=7, ceiling=False)
    np.testing.assert_allclose(result.scores["features"][0, 0], _inner_kfold_reference(x, y, folds), atol=1e-8)
    with pytest.raises(ArgumentError, match="inner_cv: got 4, but it selects ridge penalties"):
        fit_encoding(x, y, estimator="pls", inner_cv=4)


def _inner_kfold_reference(x, y, folds, *, inner=4, seed=7):
    """Mean held-out Pearson r per target of ridge with each target's penalty chosen by a brute-force loop of
    scikit-learn's Ridge over ``inner`` shuffled inner folds of each training set.
    """
    r = []
    for train, test in folds:
        errors = np.zeros((ALPHAS.size, y.shape[1]))
        for inner_train, inner_test in KFold(inner, shuffle=True, random_state=seed).split(train):
            fit_on, held = train[inner_train], train[inner_test]
            for i, alpha in enumerate(ALPHAS):
                errors[i] += ((y[held] - Ridge(alpha=alpha).fit(x[fit_on], y[fit_on]).predict(x[held])) ** 2).sum(0)
        chosen = ALPHAS[np.argmin(errors, axis=0)]
        prediction = np.column_stack([Ridge(alpha=a).fit(x[train], y[train, j]).predict(x[test])
                                      for j, a in enumerate(chosen)])  # fmt: skip
        r.append(_pearson(prediction, y[test]))
    return np.mean(r, axis=0)


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not __import__("torch").cuda.is_available(),
                                                      reason="needs a CUDA GPU (none on CI)"))  # fmt: skip


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize(("n", "p"), [(90, 20), (60, 150)])
def test_ridge_on_a_torch_device_equals_scikit_learn(rng, monkeypatch, device, n, p):
    """Primal and dual, penalties by leave-one-out (RidgeCV) and by inner k-fold (a loop of Ridge), on the
    device's path (counted), and the same numbers as numpy's path.
    """
    from rnnprobe.analysis.encoding import fit as encoding_fit

    calls = []
    real = encoding_fit._device_ridge_predictions
    monkeypatch.setattr(encoding_fit, "_device_ridge_predictions", lambda *args: calls.append(1) or real(*args))
    x, y = _data(rng, n, p, 6)
    folds = list(KFold(3, shuffle=True, random_state=2).split(x))
    # (a GPU's products round otherwise: where two penalties' leave-one-out errors tie to rounding, far below the
    # kernel's eigenvalues, it may choose the other, which moves the scores by about 1e-8)
    tol = 1e-8 if device == "cpu" else 1e-6
    result = fit_encoding(x, y, alphas=ALPHAS, cv=folds, ceiling=False, device=device)
    r, r2 = _reference(x, y, folds, lambda: RidgeCV(alphas=ALPHAS, alpha_per_target=True))
    np.testing.assert_allclose(result.scores["features"][0, 0], r, atol=tol)
    np.testing.assert_allclose(result.r2["features"][0, 0], r2, atol=tol)
    inner = fit_encoding(x, y, alphas=ALPHAS, cv=folds, inner_cv=4, seed=7, ceiling=False, device=device)
    np.testing.assert_allclose(inner.scores["features"][0, 0], _inner_kfold_reference(x, y, folds), atol=tol)
    on_cpu = fit_encoding(x, y, alphas=ALPHAS, cv=folds, ceiling=False)
    np.testing.assert_allclose(result.scores["features"], on_cpu.scores["features"], atol=tol / 100)
    assert result.edge_share == pytest.approx(on_cpu.edge_share, abs=0 if device == "cpu" else 0.1)
    assert len(calls) == 2


def test_ridge_on_a_device_reads_each_step_of_a_layer_on_disk_whole(rng, tmp_path, monkeypatch):
    """Also a step larger than a block (which the CPU's dual form reads in blocks of stimuli)."""
    pytest.importorskip("dask")
    from rnnprobe.analysis import blockwise

    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 8 * 150 * 10)  # (a step: 60 stimuli x 150 units)
    x, y = _data(rng, 60, 150, 4)
    states = np.stack([x, x[:, ::-1]], axis=1)  # (stimulus, time, unit)
    Recording({"h": states}).save(tmp_path / "f.zarr")
    on_disk = Recording.load(tmp_path / "f.zarr", chunks={"stimuli": 16})
    assert on_disk.is_dask
    result = fit_encoding(on_disk, y, alphas=ALPHAS, ceiling=False, device="cpu")
    np.testing.assert_allclose(result.scores["h"], fit_encoding(states, y, alphas=ALPHAS, ceiling=False).scores[
        "features"], atol=1e-10)  # fmt: skip


def test_ridge_on_a_device_refuses_other_estimators_and_non_finite_features(rng):
    x, y = _data(rng, 40, 8, 3)
    for estimator in ("pls", Ridge(alpha=1.0)):
        with pytest.raises(ArgumentError, match=r"device: got 'cpu' with estimator .*only ridge runs on a torch"):
            fit_encoding(x, y, estimator=estimator, device="cpu", ceiling=False)
    with pytest.raises(ArgumentError, match=r"device: got 'nonsense'\. Pass a torch device"):
        fit_encoding(x, y, device="nonsense", ceiling=False)
    x[3, 2] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        fit_encoding(x, y, device="cpu", ceiling=False)


def test_plot_of_one_time_step_shows_every_target_and_its_ceiling(rng):
    """One model time and one neural time: the targets' scores per layer, and r against the ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    signal = rng.normal(size=(30, 1, 1, 8))
    responses = signal + 0.5 * rng.normal(size=(30, 4, 1, 8))  # stimulus x repetition x time x target
    features = Recording({"a": signal[:, 0] + rng.normal(size=(30, 1, 8)), "b": rng.normal(size=(30, 1, 5))})
    result = fit_encoding(features, responses, cv=5)
    fig = result.plot()
    left, right = fig.axes[:2]
    assert [c.get_offsets().shape[0] for c in left.collections if c.get_offsets().shape[0] > 1] == [8, 8]
    np.testing.assert_allclose(left.collections[0].get_offsets()[:, 1], result.scores["a"][0, 0])
    points = right.collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], result.ceiling.ceiling[0])
    np.testing.assert_allclose(points[:, 1], result.scores["a"][0, 0])  # "a" predicts better than noise "b"


def test_a_layer_without_any_score_is_reported_as_such_not_a_crash():
    """Features at 1e-12 (every penalty of the grid far too large: every prediction the mean, every score NaN):
    summary() raised numpy's 'All-NaN slice' ValueError after its warning, and the plot indexed the scores with
    None. The peak is now NaN at no time, without warnings, and the figure is drawn; the edge share says why."""
    import warnings

    rng = np.random.default_rng(0)
    neural = Recording({"n": rng.normal(size=(60, 2, 5))})
    for steps in (8, 1):
        result = fit_encoding(Recording({"h": 1e-12 * rng.normal(size=(60, steps, 12))}), neural, progress=False)
        assert np.isnan(result.scores["h"]).all()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            summary = result.summary()
            result.plot()
        assert summary["h: at model time"] is None and np.isnan(summary["h: best median r"])
        assert summary["penalties at the grid's edge"] == 1.0


def test_best_per_target_is_the_highest_defined_score_of_any_layer(rng):
    """EncodingResult.best(): a layer without a score for a target (NaN) made that target's best score NaN
    (the maximum over layers propagated it) while naming another layer; a target without any score was given
    a layer. Against a loop over layers and steps; a target no layer scores has no layer, no time, NaN."""
    import dataclasses

    n = 90
    h = rng.normal(size=(n, 3, 6))
    neural = Recording({"n": np.stack([h[:, 1] @ rng.normal(size=(6, 4)) + rng.normal(size=(n, 4))] * 2, axis=1)})
    result = fit_encoding(Recording({"a": h, "b": rng.normal(size=(n, 3, 6)) + h}), neural, cv=3, progress=False)
    scores = {layer: result.scores[layer].copy() for layer in ("a", "b")}  # (model time, neural time, target)
    scores["a"][:, :, 0] = np.nan  # target 0: only b scores it
    scores["b"][1:, 1, 2] = np.nan  # target 2 at neural time 1: b at step 0 only
    scores["a"][:, :, 3] = scores["b"][:, :, 3] = np.nan  # target 3: no layer scores it
    best = dataclasses.replace(result, scores=scores).best()
    for j, k in np.ndindex(2, 4):
        found = [(scores[layer][t, j, k], layer, t) for layer in ("a", "b") for t in range(3)]
        found = [entry for entry in found if not np.isnan(entry[0])]
        if not found:
            assert np.isnan(best["score"][j, k]) and best["layer"][j, k] is None and best["model_time"][j, k] is None
            continue
        score, layer, t = max(found, key=lambda entry: entry[0])
        assert best["score"][j, k] == score and best["layer"][j, k] == layer
        assert best["model_time"][j, k] == result.model_times[layer][t]


def test_best_penalties_are_the_first_of_the_smallest_errors_never_a_nan_one(rng, monkeypatch):
    """Each target's penalty: the first of its smallest leave-one-out errors over the grid, NaN errors never
    chosen, the first penalty where every error is NaN (as a loop keeping strictly smaller errors)."""
    from rnnprobe.analysis.encoding import ridge

    table = np.array([[3.0, np.nan, 1.0, np.nan], [2.0, 5.0, 1.0, np.nan], [2.0, np.nan, 0.5, np.nan]])
    alphas = np.array([0.1, 1.0, 10.0])
    monkeypatch.setattr(ridge.RidgePath, "loo_errors", lambda self, alpha, **_: table[list(alphas).index(alpha)])
    path = ridge.ridge_path(rng.normal(size=(6, 2)), np.ones(2), rng.normal(size=(6, 4)))
    assert path.best_alphas(alphas).tolist() == [1, 1, 2, 0]
