"""decode() against scikit-learn, on planted signals and under the null; bad inputs."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.model_selection import (
    KFold,
    PredefinedSplit,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rnnprobe import Recording
from rnnprobe.analysis import _scores
from rnnprobe.analysis.decoding import decode
from rnnprobe.errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError
from rnnprobe.testing import make_recording


def _recording(rng, n=120, steps=6, units=12, classes=3, onset=3, strength=1.5):
    base = make_recording(n, steps, units, n_classes=classes, onset=onset, signal=strength, seed=rng)
    x, label = base.get("h"), base.column("label")
    value = x[:, 2, 1] * 2 + rng.normal(size=n)
    return Recording({"h": x}, metadata={"label": label, "value": value, "image": np.arange(n) // 4}), x, label


def _sklearn_generalization(estimator, x, y, cv, scoring="accuracy"):
    from sklearn.base import clone
    from sklearn.metrics import check_scoring

    steps = x.shape[1]
    out = np.zeros((steps, steps))
    splits = list(cv.split(x[:, 0], y))
    for train, test in splits:
        for t in range(steps):
            model = clone(estimator).fit(x[train, t], y[train])
            scorer = check_scoring(model, scoring=scoring)
            out[t] += [scorer(model, x[test, s], y[test]) / len(splits) for s in range(steps)]
    return out


@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy"])
def test_fast_ridge_equals_sklearn_pipeline_per_step(rng, scoring):
    rec, x, label = _recording(rng)
    result = decode(rec, "h", "label", scoring=scoring)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier())
    expected = [cross_val_score(pipe, x[:, t], label, cv=cv, scoring=scoring).mean() for t in range(x.shape[1])]
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)
    assert result.fold_scores.shape == (5, 6) and result.estimator == "ridge"


def test_fast_ridge_generalization_matrix_equals_sklearn(rng):
    rec, x, label = _recording(rng, steps=5)
    cv = StratifiedKFold(4, shuffle=True, random_state=3)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))
    result = decode(rec, "h", "label", estimator=pipe, cv=cv, generalize=True)
    np.testing.assert_allclose(result.scores, _sklearn_generalization(pipe, x, label, cv), atol=1e-12)
    np.testing.assert_allclose(result.diagonal(), np.diagonal(result.scores))


@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc"])
def test_binary_ridge_without_scaler_equals_sklearn(rng, scoring):
    rec, x, label = _recording(rng, classes=2)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    result = decode(rec, "h", "label", estimator=RidgeClassifier(alpha=0.5), scoring=scoring)
    expected = [
        cross_val_score(RidgeClassifier(alpha=0.5), x[:, t], label, cv=cv, scoring=scoring).mean()
        for t in range(x.shape[1])
    ]
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)
    assert result.estimator == "RidgeClassifier"


@pytest.mark.parametrize("scoring", ["r2", "neg_mean_squared_error"])
def test_ridge_regression_equals_sklearn_and_generic_path(rng, scoring):
    rec, x, _ = _recording(rng)
    value = rec.column("value")
    cv = KFold(5, shuffle=True, random_state=0)
    expected = [cross_val_score(Ridge(alpha=3.0), x[:, t], value, cv=cv, scoring=scoring).mean() for t in range(6)]
    fast = decode(rec, "h", "value", estimator=Ridge(alpha=3.0), scoring=scoring)
    slow = decode(rec, "h", "value", estimator=Ridge(alpha=3.0), scoring=scoring, fast=False)
    np.testing.assert_allclose(fast.scores, expected, atol=1e-10)
    np.testing.assert_allclose(slow.scores, expected, atol=1e-12)
    assert np.argmax(fast.scores) == 2  # the value was built from step 2


@pytest.mark.parametrize("scale", [False, True])
def test_wide_layers_solve_ridge_in_the_dual_with_sklearns_coefficients(rng, scale):
    """More units than training samples (a conv layer): the dual form gives sklearn's Ridge
    coefficients and intercepts for every fold and step (one unit constant, as StandardScaler sees; training sets
    of 20 and 21 samples, in work arrays kept for the largest)."""
    from rnnprobe.analysis._ridge import fit_ridge

    n, steps, p = 31, 2, 80
    x = rng.normal(size=(n, steps, p)) * rng.uniform(0.5, 5, size=p) + 2.0
    x[:, :, 7] = 3.0
    y = rng.normal(size=(n, 2))
    folds = [np.arange(n) % 3 != k for k in range(3)]
    fit = fit_ridge(x, y, folds, alpha=2.0, scale=scale)
    for f, train in enumerate(folds):
        for t in range(steps):
            model = make_pipeline(StandardScaler(), Ridge(alpha=2.0)) if scale else Ridge(alpha=2.0)
            model.fit(x[train, t], y[train])
            np.testing.assert_allclose(x[~train, t] @ fit.coef[f, t] + fit.intercept[f, t],
                                       model.predict(x[~train, t]), rtol=1e-9, atol=1e-9)  # fmt: skip


def test_wide_layer_generalization_equals_sklearn(rng):
    rec, x, label = _recording(rng, n=60, steps=3, units=150)
    cv = StratifiedKFold(4, shuffle=True, random_state=3)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))
    result = decode(rec, "h", "label", estimator=pipe, cv=cv, generalize=True)
    np.testing.assert_allclose(result.scores, _sklearn_generalization(pipe, x, label, cv), atol=1e-12)


@pytest.mark.parametrize("estimator", ["ridge", "logistic"])
def test_a_single_step_float64_recording_is_left_untouched_and_decoded_right(rng, estimator):
    """Regression: one time step of float64 states was centred in place through a shared buffer, which
    changed the user's Recording and, within the call, mixed centred and raw data (0.70 for 1.00)."""
    label = rng.integers(0, 2, size=300)
    x = np.stack([label, rng.integers(0, 2, size=300)], axis=-1)[:, None] + 0.1 * rng.normal(size=(300, 1, 2)) + 5.0
    rec = Recording({"h": x.copy()}, metadata={"label": label})
    result = decode(rec, "h", "label", estimator=estimator, progress=False)
    np.testing.assert_array_equal(rec.get("h"), x)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    sk = RidgeClassifier() if estimator == "ridge" else LogisticRegression()
    expected = cross_val_score(make_pipeline(StandardScaler(), sk), x[:, 0], label, cv=cv).mean()
    assert result.scores[0] == pytest.approx(expected, abs=1e-12) and expected > 0.99


@pytest.mark.parametrize("block", [slice(2, 3), slice(0, 4)])
def test_time_major_blocks_are_contiguous_copies(rng, block):
    """The batched solvers' time blocks: contiguous (a strided block made every product copy it again)
    and a copy (they are centred in place), also for a single step of a one-step float64 layer."""
    import torch

    from rnnprobe.analysis._linear import time_major

    for x in (rng.normal(size=(7, 5, 3)), rng.normal(size=(7, 1, 3))):
        step = slice(0, 1) if x.shape[1] == 1 else block
        xb = time_major(x, step, torch.device("cpu"))
        assert xb.is_contiguous() and xb.dtype == torch.float64
        np.testing.assert_array_equal(xb.numpy(), x[:, step].transpose(1, 0, 2))
        xb += 1.0
        assert not np.shares_memory(xb.numpy(), x)


@pytest.mark.parametrize("split", ["kfold", "shuffle"])
def test_fold_moments_equal_each_training_set_of_a_partition_or_not(rng, split):
    """TimeBlock's training Gram matrices: from the test sets' own when they partition the samples
    (k-fold), else from one product per fold (shuffled, overlapping test sets); brute force per fold."""
    import torch

    from rnnprobe.analysis._linear import TimeBlock

    x = rng.normal(size=(50, 3, 6)) + 2.0
    splitter = (
        KFold(5, shuffle=True, random_state=0) if split == "kfold" else ShuffleSplit(4, test_size=0.3, random_state=0)
    )
    folds = []
    for train, _ in splitter.split(x[:, 0]):
        mask = np.zeros(len(x), dtype=bool)
        mask[train] = True
        folds.append(mask)
    block = TimeBlock(x, slice(0, 3), torch.device("cpu"), folds)
    assert (block._test_grams is not None) == (split == "kfold")
    for f, train in enumerate(folds):
        moments = block.fold(f, scale=True)
        xt = x[train].transpose(1, 0, 2)
        z = (xt - xt.mean(axis=1, keepdims=True)) / xt.std(axis=1, keepdims=True)
        np.testing.assert_allclose(moments.gram.numpy(), z.transpose(0, 2, 1) @ z, rtol=1e-10, atol=1e-10)


def test_shuffled_splits_decode_as_sklearn(rng):
    rec, x, label = _recording(rng, steps=3)
    cv = ShuffleSplit(4, test_size=0.25, random_state=2)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=2.0))
    result = decode(rec, "h", "label", estimator=pipe, cv=cv, progress=False)
    expected = [cross_val_score(pipe, x[:, t], label, cv=cv).mean() for t in range(3)]
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)


def test_any_sklearn_estimator_is_cloned_per_step(rng):
    rec, x, label = _recording(rng, steps=4)
    cv = StratifiedKFold(3, shuffle=True, random_state=1)
    knn = KNeighborsClassifier(5)
    result = decode(rec, "h", "label", estimator=knn, cv=cv, generalize=True)
    np.testing.assert_allclose(result.scores, _sklearn_generalization(knn, x, label, cv), atol=1e-12)
    logistic = make_pipeline(StandardScaler(), LogisticRegression())
    result = decode(rec, "h", "label", estimator=logistic, cv=cv, fast=False)
    expected = [cross_val_score(logistic, x[:, t], label, cv=cv).mean() for t in range(4)]
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)


@pytest.mark.parametrize(("classes", "scale"), [(2, True), (2, False), (4, True), (3, False)])
def test_batched_logistic_fits_equal_sklearn_at_its_optimum(rng, classes, scale):
    """Decision values of every (fold, step) fit against sklearn's Newton solver at a tight
    tolerance (multinomial logits compared up to their common shift), on offset, badly scaled
    features."""
    from rnnprobe.analysis._logistic import fit_logistic

    n, steps = 150, 3
    label = rng.integers(0, classes, n)
    x = rng.normal(size=(n, steps, 10)) + 3.0
    x[:, :, :2] += 0.7 * label[:, None, None]
    x[:, :, 5] *= 10
    folds = [np.arange(n) % 3 != k for k in range(3)]
    fit = fit_logistic(x, label[:, None], folds, n_classes=classes, penalty=0.5, scale=scale, tol=1e-10)
    _assert_sklearn_optimum(fit, x, label, folds, penalty=0.5, scale=scale)


@pytest.mark.parametrize(("classes", "scale"), [(2, True), (3, False)])
def test_the_logistic_preconditioner_is_one_per_step_from_all_samples(rng, classes, scale):
    """(c n_f / n D X'X D + penalty I)^-1 from every sample of the block, by hand (X centred over all samples,
    D their inverse standard deviations, n_f the mean training count), shared by the folds. (Before 0.2.0
    every fold's was the last fold's own, by accident: the folds' Gram matrices share a buffer.)"""
    import torch

    from rnnprobe.analysis._linear import TimeBlock
    from rnnprobe.analysis._logistic import _Problems, classes_present

    n, steps, p = 61, 2, 5
    label = rng.integers(0, classes, n)
    x = rng.normal(size=(n, steps, p)) * np.array([1.0, 2.0, 5.0, 0.5, 1.0]) + 1.0
    x[:, :, 3] = 4.0  # constant: scaled by 1
    folds = [np.arange(n) % 3 != k for k in range(3)]  # 40, 41 and 41 training samples
    data = TimeBlock(x, slice(0, steps), torch.device("cpu"), folds)
    present = torch.as_tensor(classes_present(label[:, None], folds, classes))
    problems = _Problems(data, folds, torch.as_tensor(label[:, None]), present, 0.5, scale)
    c = 0.25 if classes == 2 else 0.5
    for t in range(steps):
        z = x[:, t] - x[:, t].mean(axis=0)
        if scale:
            std = z.std(axis=0)
            z = z / np.where(std == 0, 1.0, std)
        expected = np.linalg.inv(c * (122 / 3) / n * z.T @ z + 0.5 * np.eye(p))
        got = problems.data[torch.float64]["precond"][t].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("classes", "scale"), [(2, True), (3, False), (4, True)])
def test_logistic_read_in_blocks_of_stimuli_equals_sklearn_at_its_optimum(rng, classes, scale, monkeypatch):
    """fit_logistic_rows, the Newton solver with its products summed over blocks of stimuli (7 blocks of 161 offset,
    badly scaled stimuli): every fold's fit (k-fold masks and an overlapping random one) against sklearn's Newton
    solver at a tight tolerance; the moments of its first pass (every stimulus's centred Gram matrix, each fold's
    training mean and standard deviation) against numpy's, to 1e-10."""
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis._logistic_rows import fit_logistic_rows
    from rnnprobe.analysis._stimulus_sums import ArrayRows

    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 4 * 8 * 10 * 25)  # blocks of 25 stimuli (a quarter of a block)
    n = 161
    label = rng.integers(0, classes, n)
    x = rng.normal(size=(n, 10)) + 30.0  # (far from 0: the first block's mean is not the centre)
    x[:, :2] += 0.7 * label[:, None]
    x[:, 5] *= 10
    folds = [np.arange(n) % 3 != k for k in range(3)] + [rng.random(n) < 0.7]
    rows = ArrayRows(x)
    assert len(rows.blocks) == 7
    fit, data = fit_logistic_rows(rows, label[:, None], folds, n_classes=classes, penalty=0.5, scale=scale, tol=1e-10)
    _assert_sklearn_optimum(fit, x[:, None], label, folds, penalty=0.5, scale=scale)
    centred = x - x.mean(axis=0)
    np.testing.assert_allclose(data.gram_all[0].numpy(), centred.T @ centred, rtol=1e-10)
    for f, train in enumerate(folds):
        moments = data.fold(f, scale=True)
        np.testing.assert_allclose(moments.mean[0].numpy() + data.centre_values, x[train].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(1 / moments.inv[0].numpy(), x[train].std(axis=0), rtol=1e-10)


def test_logistic_read_in_blocks_fits_the_classes_each_training_set_holds_as_in_memory(rng, monkeypatch):
    """A class absent from one fold's training set (and a permuted target set): fit_logistic_rows fits the
    classes present as the in-memory solver does (the absent class's decision -inf in the same places), equal to
    1e-8."""
    from rnnprobe.analysis import blockwise
    from rnnprobe.analysis._logistic import fit_logistic
    from rnnprobe.analysis._logistic_rows import fit_logistic_rows
    from rnnprobe.analysis._stimulus_sums import ArrayRows

    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 4 * 8 * 8 * 25)  # blocks of 25 stimuli
    n = 120
    folds = [np.arange(n) % 3 != k for k in range(3)]
    label = rng.integers(0, 2, n)
    label[np.flatnonzero(~folds[0])[:5]] = 2  # class 2 only among fold 0's test stimuli
    y = np.column_stack([label, rng.permutation(label)])
    x = rng.normal(size=(n, 8)) + label[:, None] * 0.5
    expected = fit_logistic(x[:, None], y, folds, n_classes=3, penalty=1.0, scale=True)
    got, _ = fit_logistic_rows(ArrayRows(x), y, folds, n_classes=3, penalty=1.0, scale=True)
    finite = np.isfinite(expected.intercept)
    assert not finite.all()
    np.testing.assert_array_equal(np.isfinite(got.intercept), finite)
    np.testing.assert_allclose(got.coef, expected.coef, rtol=0, atol=1e-8)
    np.testing.assert_allclose(got.intercept[finite], expected.intercept[finite], rtol=0, atol=1e-8)


def test_logistic_read_in_blocks_spills_the_step_to_a_temporary_folder_with_the_same_fits(rng, tmp_path, monkeypatch):
    """spill=True: the passes after the first read the blocks from files of a temporary folder, the same values
    (the fits bit for bit the same as reading the rows every pass), the folder removed afterwards; where the disk
    has less free space than twice the files, nothing is written and the rows are read every pass."""
    import shutil
    import tempfile

    from rnnprobe.analysis import _spill, blockwise
    from rnnprobe.analysis._logistic_rows import fit_logistic_rows
    from rnnprobe.analysis._stimulus_sums import ArrayRows

    monkeypatch.setattr(blockwise, "BLOCK_BYTES", 4 * 8 * 6 * 20)  # blocks of 20 stimuli
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    label = np.arange(90) % 3
    x = rng.normal(size=(90, 6)) + label[:, None] * 0.5 + 7.0
    folds = [np.arange(90) % 3 != k for k in range(3)]
    reads = []
    read = _spill.Spill.read

    def files() -> dict:  # the files of the temporary folders, and their sizes
        return {f"{p.parent.name[:15]}/{p.name}": p.stat().st_size for d in tmp_path.iterdir() for p in d.iterdir()}

    monkeypatch.setattr(_spill.Spill, "read", lambda self, *a: reads.append(files()) or read(self, *a))
    settings = {"n_classes": 3, "penalty": 1.0, "scale": True}
    expected, _ = fit_logistic_rows(ArrayRows(x), label[:, None], folds, **settings)
    assert not reads
    got, _ = fit_logistic_rows(ArrayRows(x), label[:, None], folds, spill=True, **settings)
    np.testing.assert_array_equal(got.coef, expected.coef)
    np.testing.assert_array_equal(got.intercept, expected.intercept)
    kept = {"rnnprobe-spill-/values.f8": 8 * 90 * 6, "rnnprobe-spill-/centred.f4": 4 * 90 * 6}
    assert reads and all(seen == kept for seen in reads)  # while the passes read them
    assert not list(tmp_path.iterdir())  # removed
    reads.clear()
    full = shutil.disk_usage(tmp_path)._replace(free=2 * 12 * 90 * 6 - 1)
    monkeypatch.setattr(_spill.shutil, "disk_usage", lambda path: full)
    spilled, _ = fit_logistic_rows(ArrayRows(x), label[:, None], folds, spill=True, **settings)
    np.testing.assert_array_equal(spilled.coef, expected.coef)
    assert not reads and not list(tmp_path.iterdir())


def _assert_sklearn_optimum(fit, x, label, folds, *, penalty, scale):
    """Each (fold, step) fit's decision values on its test samples against sklearn's Newton solver at a
    tight tolerance (multinomial logits up to their common shift; ours sum to zero, as the optimum's)."""
    for f, train in enumerate(folds):
        for t in range(x.shape[1]):
            model = LogisticRegression(C=1 / penalty, solver="newton-cholesky", tol=1e-12, max_iter=1000)
            model = make_pipeline(StandardScaler(), model) if scale else model
            model.fit(x[train, t], label[train])
            expected = model.decision_function(x[~train, t]).reshape(int((~train).sum()), -1)
            ours = x[~train, t] @ fit.coef[f, t] + fit.intercept[f, t]
            if expected.shape[1] > 1:
                expected = expected - expected.mean(axis=1, keepdims=True)
                assert np.allclose(ours.sum(axis=1), 0, atol=1e-9)
            np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def _silent_on_training_sets(rng, n, folds, units=30):
    """States (n, 2, 8 + units): 8 units of spread and ``units`` units at 0 on every training sample of one fold
    and large on two of its test samples (a unit that only those stimuli drive: of one sign, as a ReLU's, or
    of both, their mean near 0); a label and a value."""
    label = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 2, 8)) + 0.8 * label[:, None, None]
    silent = np.zeros((n, 2, units))
    for k in range(units):
        test = np.flatnonzero(~folds[k % len(folds)])
        driven = rng.choice(test, size=2, replace=False)
        silent[driven, :, k] = rng.uniform(20, 200, size=2)[:, None] / 3 * ([[1], [1]] if k % 2 else [[1], [-0.99]])
    value = x[:, 0, 0] + rng.normal(size=n)
    return np.concatenate([x, silent], axis=2), label, value


@pytest.mark.parametrize("split", ["k-fold", "shuffled"])
def test_units_silent_on_a_training_set_are_constant_there_as_in_sklearn(rng, split):
    """A unit at 0 on every training sample of a fold but not on its test samples: its training variance,
    every sample's squares less the test samples', is rounding of the test samples' squares (about 1e-16 of
    them), not 0, and the batched fits took it for a unit of spread 1e-8 and scaled it by 1e8 (the shipped
    BLT-style layer's decoding of 2000 images with OpenBLAS's Haswell kernel: weights 200 off, a score 0.0005).
    Ridge's and logistic regression's decision values on the test samples equal scikit-learn's pipelines with
    a StandardScaler, for folds that partition the samples and for folds that do not, and without one; the unit's
    weight is 0 there, as scikit-learn's, whatever the penalty (it was rounding over the penalty: 3e-6 in the
    decision values at alpha 1e-6)."""
    from rnnprobe.analysis._logistic import fit_logistic
    from rnnprobe.analysis._ridge import fit_ridge

    n = 90
    if split == "k-fold":
        folds = [np.arange(n) % 3 != k for k in range(3)]
    else:
        folds = [~np.isin(np.arange(n), test) for _, test in ShuffleSplit(3, test_size=0.3, random_state=0).split(
            np.zeros(n))]  # fmt: skip
    x, label, value = _silent_on_training_sets(rng, n, folds)
    for alpha, scale in [(2.0, True), (1e-3, True), (1e-3, False)]:  # (a weight of rounding over a small penalty)
        ridge = fit_ridge(x, value[:, None], folds, alpha=alpha, scale=scale)
        for f, train in enumerate(folds):
            for t in range(2):
                model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)) if scale else Ridge(alpha=alpha)
                model.fit(x[train, t], value[train])
                tolerance = 1e-9 if alpha > 1 else 1e-7  # (units driven on 2 training samples: ill-conditioned)
                np.testing.assert_allclose(x[~train, t] @ ridge.coef[f, t, :, 0] + ridge.intercept[f, t, 0],
                                           model.predict(x[~train, t]), rtol=tolerance, atol=tolerance)  # fmt: skip
                silent = 8 + np.flatnonzero(np.arange(x.shape[2] - 8) % len(folds) == f)  # (silent on fold f)
                assert not ridge.coef[f, t, silent].any()  # a weight of 0, as scikit-learn's
    for scale in (True, False):
        logistic = fit_logistic(x, label[:, None], folds, n_classes=3, penalty=0.5, scale=scale, tol=1e-10)
        _assert_sklearn_optimum(logistic, x, label, folds, penalty=0.5, scale=scale)


def test_standard_deviations_call_a_feature_constant_by_sklearns_rule(rng):
    """inverse_std against StandardScaler's scale_: a constant value that no float64 mean equals (0.1, 1234.567)
    leaves a variance of rounding after centring, and is constant (scale 1) as an exact one (3.0) is; a feature
    of a small but real spread is not."""
    import torch

    from rnnprobe.analysis._linear import inverse_std

    n = 37
    x = rng.normal(size=(n, 6)) * np.array([1.0, 1.0, 1.0, 1e-6, 5.0, 1.0])
    x[:, 0], x[:, 1], x[:, 2] = 0.1, 1234.567, 3.0
    x[:, 3] += 1.0  # (spread 1e-6 about 1)
    mean = x.mean(axis=0)
    squares = ((x - mean) ** 2).mean(axis=0)
    assert squares[0] > 0 and squares[1] > 0  # (what the rule is for)
    got = inverse_std(torch.from_numpy(squares), torch.from_numpy(mean), n).numpy()
    np.testing.assert_allclose(1 / got, StandardScaler().fit(x).scale_, rtol=1e-12)
    np.testing.assert_array_equal(got[:3], 1.0)


@pytest.mark.parametrize("estimator", ["ridge", "logistic"])
@pytest.mark.parametrize("units", [8, 80])
def test_a_unit_constant_at_a_training_step_gets_no_weight_as_in_sklearn(rng, estimator, units):
    """A unit constant at 0.1 in every training set (its centred variance is rounding, about 1e-34): sklearn's
    StandardScaler leaves it unscaled and its weight is 0, in the raw units, with more samples than units (primal
    forms) or fewer (dual forms, principal coordinates). Divided by the root of that rounding it had weight 17 in
    the ridge's dual form, which moved every decision at a step where the unit varies."""
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    from rnnprobe.analysis._logistic import fit_logistic
    from rnnprobe.analysis._ridge import fit_ridge

    n, steps = 45, 2
    label = np.arange(n) % 2
    x = rng.normal(size=(n, steps, units)) + 1.0
    x[:, :, :3] += 0.8 * label[:, None, None]
    x[:, :, 5] = 0.1
    folds = [(np.arange(n) // 3) % 3 != k for k in range(3)]
    if estimator == "ridge":
        fit = fit_ridge(x, np.where(label == 1, 1.0, -1.0)[:, None], folds, alpha=2.0, scale=True)
    else:
        fit = fit_logistic(x, label[:, None], folds, n_classes=2, penalty=2.0, scale=True, tol=1e-10)
    assert np.abs(fit.coef[:, :, 5]).max() < 1e-12 < np.abs(fit.coef[:, :, 0]).min()
    sk = RidgeClassifier(alpha=2.0) if estimator == "ridge" else LogisticRegression(C=0.5, tol=1e-12)
    pipe = make_pipeline(StandardScaler(), sk)
    held = rng.normal(size=(n, steps, units)) + 1.0  # cross-decoding: the unit varies in the test recording
    result = decode(Recording({"h": x}, metadata={"label": label}), "h", "label", estimator=pipe, generalize=True,
                    scoring="roc_auc", test=Recording({"h": held}, metadata={"label": label}))  # fmt: skip
    expected = np.zeros((steps, steps))
    for t in range(steps):
        model = clone(pipe).fit(x[:, t], label)
        expected[t] = [roc_auc_score(label, model.decision_function(held[:, s])) for s in range(steps)]
    np.testing.assert_allclose(result.scores, expected, atol=1e-6 if estimator == "logistic" else 1e-12)


def test_blockwise_decoders_leave_a_constant_unit_unscaled_as_in_memory(rng):
    """The forms of steps larger than a block: the kernel's standardised blocks of units and the ridge decoders
    solved from sums over blocks of stimuli (about a point other than the mean) leave a unit constant at 0.1
    unscaled (its weight 0, as sklearn's)."""
    from rnnprobe.analysis._ridge_sums import FoldSums, solve_folds
    from rnnprobe.analysis.decoding_steps import standardised

    n, p = 61, 5
    x = rng.normal(size=(n, p)) + 2.0
    x[:, 3] = 0.1
    train = np.arange(n) % 3 != 0
    z, _, inv = standardised(x, train, True)
    assert inv[3] == 1.0 and np.abs(z[:, 3]).max() < 1e-15
    np.testing.assert_allclose(1 / inv, StandardScaler().fit(x[train]).scale_, rtol=1e-12)
    codes = np.where(np.arange(n) % 2 == 1, 1.0, -1.0)[:, None] + 0.3 * x[:, :1]
    folds = np.arange(n) % 3
    centre = x.mean(axis=0) + 0.3  # sums about any point (a block's mean): their difference keeps n eps 0.3^2 more
    sums = FoldSums.zeros(3, p, 1)
    for f in range(3):
        sums.add(f, x[folds == f] - centre, codes[folds == f])
    coef, intercept = solve_folds(sums, centre, penalty=2.0, scale=True)
    assert np.abs(coef[:, 3]).max() < 1e-12
    for f in range(3):
        model = make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(x[folds != f], codes[folds != f])
        np.testing.assert_allclose(x @ coef[f] + intercept[f], model.predict(x).reshape(n, 1), rtol=1e-9, atol=1e-9)


def _device_solvers(monkeypatch) -> None:
    """fit_logistic's solvers of wide problems on a device, run on the CPU."""
    from rnnprobe.analysis import _logistic

    monkeypatch.setattr(_logistic, "_coordinates_on", lambda device: False)


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize(("classes", "scale"), [(2, True), (2, False), (3, False), (3, True)])
def test_wide_logistic_fits_equal_sklearn_at_its_optimum(rng, classes, scale, on_device, monkeypatch):
    """More units than samples: on the CPU every problem is solved on each fold's principal coordinates; a
    device's solvers (run here on the CPU) take binary problems by Newton's method in the samples' space (exact
    (n + 1) x (n + 1) systems) and multinomial ones by conjugate gradients preconditioned through Woodbury's
    identity; the fits are sklearn's at a tight tolerance."""
    from rnnprobe.analysis._logistic import fit_logistic

    if on_device:
        _device_solvers(monkeypatch)

    n, steps, p = 45, 2, 70
    label = np.arange(n) % classes
    x = rng.normal(size=(n, steps, p)) + 1.0
    x[:, :, :3] += 0.8 * label[:, None, None]
    x[:, :, 7] *= 5
    folds = [(np.arange(n) // 3) % 3 != k for k in range(3)]  # every class in every training set
    fit = fit_logistic(x, label[:, None], folds, n_classes=classes, penalty=2.0, scale=scale, tol=1e-10)
    _assert_sklearn_optimum(fit, x, label, folds, penalty=2.0, scale=scale)


@pytest.mark.parametrize("scale", [True, False])
def test_wide_multinomial_in_principal_coordinates_of_rank_deficient_steps(rng, scale, monkeypatch):
    """Wide multinomial problems are solved on each fold's principal coordinates (rank r <= n_train - 1) and
    mapped back: steps of different ranks (a step of rank 4, a constant unit), in blocks of one step; the
    fits are sklearn's at a tight tolerance."""
    import rnnprobe.analysis._logistic_coordinates as coordinates
    from rnnprobe.analysis._logistic import fit_logistic

    n, p, classes = 45, 70, 3
    label = np.arange(n) % classes
    x = rng.normal(size=(n, 2, p)) + 1.0
    x[:, 1] = rng.normal(size=(n, 4)) @ rng.normal(size=(4, p))  # rank 4
    x[:, :, :2] += 0.8 * label[:, None, None]
    x[:, :, 9] = 3.0  # constant
    folds = [(np.arange(n) // 3) % 3 != k for k in range(3)]
    import rnnprobe.analysis._logistic as logistic

    calls = []
    real = coordinates._coordinates
    monkeypatch.setattr(coordinates, "_coordinates", lambda kernel: calls.append(kernel.shape) or real(kernel))
    monkeypatch.setattr(logistic, "time_blocks", lambda n_times, *_, **__: [slice(t, t + 1) for t in range(n_times)])
    fit = fit_logistic(x, label[:, None], folds, n_classes=classes, penalty=2.0, scale=scale, tol=1e-10)
    assert calls == [(1, 30, 30)] * 6  # every fold's kernel of its 30 training samples, one step at a time
    _assert_sklearn_optimum(fit, x, label, folds, penalty=2.0, scale=scale)


def test_wide_binary_target_sets_solved_in_groups_equal_one_batch(rng, monkeypatch):
    """The samples' space solver (a device's, run on the CPU) takes the target sets (true, permuted, one of a
    single class in a training set) in groups whose Newton systems fit its budget: the same fits as all at once."""
    from rnnprobe.analysis import _logistic_dual
    from rnnprobe.analysis._logistic import fit_logistic

    _device_solvers(monkeypatch)

    n, steps, p = 40, 2, 60
    label = np.arange(n) % 2
    x = rng.normal(size=(n, steps, p)) + 0.5 * label[:, None, None]
    folds = [np.arange(n) % 4 != k for k in range(4)]
    rare = np.where(np.arange(n) % 4 == 0, (np.arange(n) // 4) % 2, 0)  # class 1 only in fold 0's test set
    sets = np.stack([label, rng.permutation(label), rare], axis=1)
    together = fit_logistic(x, sets, folds, n_classes=2, penalty=1.0, scale=True, tol=1e-10)
    monkeypatch.setattr(_logistic_dual, "SYSTEM_BYTES", 1)  # one set per group
    grouped = fit_logistic(x, sets, folds, n_classes=2, penalty=1.0, scale=True, tol=1e-10)
    np.testing.assert_allclose(grouped.coef, together.coef, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.isinf(grouped.intercept), np.isinf(together.intercept))
    finite = np.isfinite(together.intercept)
    assert (~finite).sum() == steps  # the last set's fold 0 trains on class 0 alone: decision -inf
    np.testing.assert_allclose(grouped.intercept[finite], together.intercept[finite], rtol=0, atol=1e-9)


@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_wide_binary_fits_stop_where_the_gradient_norm_is_below_tol(rng, tol, monkeypatch):
    """The samples' space solver (a device's, run on the CPU) stops on the gradient of the mean loss in the
    units' space, sqrt(v'Kv) / n_train, from the kernel alone: at loose tolerances (where a Newton step does not
    overshoot far below them) the fit's gradient, brute force in the standardised units (Z'(p - y) + penalty w)
    / n_train, has Euclidean norm below ``tol``, and it is not the start's."""
    from rnnprobe.analysis._logistic import fit_logistic

    _device_solvers(monkeypatch)

    n, p, penalty = 40, 90, 0.5
    label = np.arange(n) % 2
    x = rng.normal(size=(n, 1, p)) * rng.uniform(0.5, 3, size=p) + 4 + 0.8 * label[:, None, None]
    fit = fit_logistic(x, label[:, None], [np.ones(n, dtype=bool)], n_classes=2, penalty=penalty, scale=True, tol=tol)
    mean, std = x[:, 0].mean(axis=0), x[:, 0].std(axis=0)
    z = (x[:, 0] - mean) / std
    w = fit.coef[0, 0, :, 0] * std  # the standardised units' weights
    prob = 1 / (1 + np.exp(-(x[:, 0] @ fit.coef[0, 0, :, 0] + fit.intercept[0, 0, 0])))
    gradient = np.append(z.T @ (prob - label) + penalty * w, (prob - label).sum()) / n
    assert np.linalg.norm(gradient[:-1]) <= tol and abs(gradient[-1]) <= tol
    assert np.linalg.norm(z.T @ (0.5 - label)) / n > 10 * tol  # the start's gradient


def test_binary_logistic_from_the_training_samples_kernel_equals_the_wide_fit(rng):
    """decode() of steps larger than a block fits binary logistic regression from the kernel of the standardised
    training samples alone (on its principal coordinates, as the in-memory fit of wide layers on the CPU): the
    decision values K A + b on every sample equal those of fit_logistic on the states (to the solver's precision,
    1e-6 of their range), a set of one class included (decisions -inf: it predicts class 0, as scikit-learn's
    classes present)."""
    from rnnprobe.analysis._logistic import fit_logistic
    from rnnprobe.analysis.decoding_steps import _Job, kernel_decoder

    n, p = 40, 90
    label = np.arange(n) % 2
    x = rng.normal(size=(n, 1, p)) * rng.uniform(0.5, 3, size=p) + 4 + 0.8 * label[:, None, None]
    sets = np.stack([label, rng.permutation(label), np.zeros(n, dtype=int)], axis=1)
    train = np.flatnonzero(np.arange(n) % 5 != 0)
    fit = fit_logistic(x, sets, [np.isin(np.arange(n), train)], n_classes=2, penalty=0.5, scale=True)
    expected = x[:, 0] @ fit.coef[0, 0] + fit.intercept[0, 0]
    z = (x[:, 0] - x[train, 0].mean(axis=0)) / x[train, 0].std(axis=0)
    job = _Job("logistic", "h", 0.5, True, "accuracy", 2, sets, [train], [], False, None)
    dual, offset = kernel_decoder(z @ z.T, train, slice(0, 3), job)
    got = (z @ z[train].T) @ dual + offset
    np.testing.assert_allclose(got[:, :2], expected[:, :2], rtol=0, atol=1e-6 * np.abs(expected[:, :2]).max())
    assert np.all(got[:, 2] == -np.inf) and np.all(expected[:, 2] == -np.inf)
    assert np.abs(expected[:, :2]).max() > 1  # decisions away from 0: a fit, not the start


@pytest.mark.parametrize("separable", [False, True])
def test_the_samples_space_newton_step_solves_the_primal_newton_system(rng, separable):
    """The dual solver's step (da, db) maps to the primal Newton step: (Z'WZ + penalty I) Z'da + Z'W 1 db =
    -(Z'r + penalty w) and 1'W Z Z'da + 1'W 1 db = -1'r, with w = Z'a (brute force in the units' space);
    also where some probabilities saturate (the curvature floor)."""
    import torch

    from rnnprobe.analysis._linear import TimeBlock
    from rnnprobe.analysis._logistic_dual import _Kernels, _newton_step

    n, p, penalty = 30, 50, 0.7
    x = rng.normal(size=(n, 1, p))
    label = np.arange(n) % 2
    folds = [np.arange(n) % 3 != 0]
    k = _Kernels(TimeBlock(x, slice(0, 1), torch.device("cpu"), folds, grams=False), folds,
                 torch.as_tensor(label[:, None]), scale=True)  # fmt: skip
    n_train = int(folds[0].sum())
    a = torch.as_tensor(rng.normal(size=(1, 1, n_train, 1))) * (40.0 if separable else 0.3)
    prob = torch.sigmoid(k.kernel @ a + 0.2)
    v = (prob - k.target) + penalty * a
    da, db = _newton_step(k, prob, v, a, penalty)
    z = (x[folds[0], 0] - x[folds[0], 0].mean(0)) / x[folds[0], 0].std(0)  # the scaled training samples
    w_curv = np.clip((prob * (1 - prob)).numpy()[0, 0, :, 0], 1e-12, None)
    r = (prob - k.target).numpy()[0, 0, :, 0]
    w = z.T @ a.numpy()[0, 0, :, 0]
    step_w = z.T @ da.numpy()[0, 0, :, 0]
    hessian_w = z.T @ (w_curv[:, None] * z) + penalty * np.eye(p)
    lhs = np.append(hessian_w @ step_w + z.T @ w_curv * float(db), w_curv @ z @ step_w + w_curv.sum() * float(db))
    rhs = -np.append(z.T @ r + penalty * w, r.sum())
    np.testing.assert_allclose(lhs, rhs, rtol=1e-8, atol=1e-8 * np.abs(rhs).max())


def test_wide_multinomial_preconditioner_is_the_inverse_of_the_weighted_hessian_bound(rng):
    """Woodbury's identity: the preconditioner is the inverse of Y_f' W Y_f + penalty I applied to a
    residual (Y: the samples centred and scaled over all of them, rows outside the fold's training set
    zero; W: Böhning's c, then the current curvature)."""
    import torch

    from rnnprobe.analysis._linear import TimeBlock
    from rnnprobe.analysis._logistic import _Problems

    n, steps, p, classes = 45, 2, 70, 3
    label = np.arange(n) % classes
    x = rng.normal(size=(n, steps, p)) + 1.0
    folds = [(np.arange(n) // 3) % 3 != k for k in range(3)]
    block = TimeBlock(x, slice(0, steps), torch.device("cpu"), folds, grams=False)
    present = torch.ones(len(folds), 1, classes, dtype=torch.bool)
    problems = _Problems(block, folds, torch.as_tensor(label[:, None]), present, 2.0, True)
    assert problems.wide
    r = torch.as_tensor(rng.normal(size=problems.shape))
    no_b = torch.zeros(problems.shape[:2] + problems.shape[3:], dtype=torch.float64)
    y = problems.data[torch.float64]["y"].numpy()
    bound = problems.c * np.ones((steps, len(folds), n))  # Böhning's bound
    z_bound, _ = problems.precondition(r, no_b)
    prob = torch.softmax(torch.as_tensor(rng.normal(size=(steps, n, len(folds), 1, classes))), dim=-1)
    problems.refresh(prob)  # multinomial: refreshed from the curvature, (1 - sum p^2) / m per sample
    z_curv, _ = problems.precondition(r, no_b)
    curvature = np.moveaxis((1 - (prob.numpy() ** 2).sum(axis=-1))[..., 0] / (classes - 1), 1, 2)
    for z, weights in ((z_bound, bound), (z_curv, curvature)):
        for f, train in enumerate(folds):
            for t in range(steps):
                yf = y[t] * train[:, None]
                hessian = yf.T @ (weights[t, f][:, None] * yf) + 2.0 * np.eye(p)
                dense = np.linalg.solve(hessian, r[t, f].numpy().reshape(p, -1))
                np.testing.assert_allclose(z[t, f].numpy().reshape(p, -1), dense, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("classes", [2, 3])
def test_orthogonal_features_precondition_by_the_curvatures_hessian_diagonal(rng, classes):
    """Multinomial problems on orthogonal features (principal coordinates): the preconditioner divides by the
    diagonal of Z_f' W Z_f + penalty I (Z_f centred on the fold's training mean and scaled, W the samples'
    curvature on its training rows, (1 - sum p^2) / m), and the intercept's residual by W's sum; a brute-force
    loop over folds, steps and units. Binary problems keep Böhning's bound."""
    import torch

    from rnnprobe.analysis._linear import TimeBlock
    from rnnprobe.analysis._logistic import _Problems

    n, steps, p = 40, 2, 6
    label = np.arange(n) % classes
    x = rng.normal(size=(n, steps, p)) * rng.uniform(0.5, 3, p) + 2.0
    folds = [(np.arange(n) // 2) % 4 != k for k in range(4)]
    block = TimeBlock(x, slice(0, steps), torch.device("cpu"), folds)
    present = torch.ones(len(folds), 2, classes, dtype=torch.bool)
    y = torch.as_tensor(np.stack([label, rng.permutation(label)], axis=1))
    problems = _Problems(block, folds, y, present, 2.0, True, orthogonal=True)
    if classes == 2:
        bound = _Problems(block, folds, y, present, 2.0, True)
        r = torch.as_tensor(rng.normal(size=problems.shape))
        rb = torch.as_tensor(rng.normal(size=problems.shape[:2] + problems.shape[3:]))
        problems.refresh(torch.full((steps, n, len(folds), 2, 1), 0.3, dtype=torch.float64))
        for got, expected in zip(problems.precondition(r, rb), bound.precondition(r, rb), strict=True):
            np.testing.assert_array_equal(got.numpy(), expected.numpy())
        return
    assert "precond" not in problems.data[torch.float64]  # (no p x p preconditioner formed)
    m = problems.m
    eta = torch.as_tensor(rng.normal(size=(steps, n, len(folds), 2, m)))
    prob = problems.probabilities(eta)
    problems.refresh(prob)
    r = torch.as_tensor(rng.normal(size=problems.shape))
    rb = torch.as_tensor(rng.normal(size=problems.shape[:2] + problems.shape[3:]))
    zw, zb = problems.precondition(r, rb)
    q = prob.numpy()
    curvature = (1 - (q**2).sum(axis=-1)) / m
    for f, train in enumerate(folds):
        for t in range(steps):
            weight = curvature[t, :, f].mean(axis=-1) * train  # (n,): the sets' mean, training rows
            z = x[:, t] - x[train, t].mean(axis=0)
            z /= x[train, t].std(axis=0)
            diagonal = (weight[:, None] * z**2).sum(axis=0) + 2.0
            np.testing.assert_allclose(zw[t, f].numpy(), r[t, f].numpy() / diagonal[:, None, None], rtol=1e-5)
            np.testing.assert_allclose(zb[t, f].numpy(), rb[t, f].numpy() / weight.sum(), rtol=1e-12)


def test_wide_layers_on_the_cpu_fit_their_coordinates_as_orthogonal_features(rng, monkeypatch):
    import rnnprobe.analysis._logistic as logistic

    made = []
    real = logistic._Problems.__init__

    def spy(self, *args, **kwargs):
        made.append(kwargs.get("orthogonal", False))
        real(self, *args, **kwargs)

    monkeypatch.setattr(logistic._Problems, "__init__", spy)
    label = np.arange(60) % 3
    wide = Recording({"h": rng.normal(size=(60, 2, 90)) + label[:, None, None]}, metadata={"label": label})
    decode(wide, "h", "label", estimator="logistic", progress=False)
    assert made and all(made)  # each fold's coordinates
    made.clear()
    narrow = Recording({"h": rng.normal(size=(60, 2, 8)) + label[:, None, None]}, metadata={"label": label})
    decode(narrow, "h", "label", estimator="logistic", progress=False)
    assert made == [False]


def test_wide_multinomial_preconditioner_falls_back_to_float64_where_float32_fails(rng):
    """The preconditioner's factors are float32; where a tiny penalty leaves penalty I + S K S positive
    definite only in float64 (a rank-deficient kernel), they are factored in float64: finite, and their
    product is the system."""
    import torch

    from rnnprobe.analysis._logistic import _Problems

    y = torch.as_tensor(rng.normal(size=(1, 30, 3)) * 100)  # 30 samples of rank 3
    problems = _Problems.__new__(_Problems)
    problems.kernel, problems.penalty = y @ y.mT, 1e-9
    rows = torch.ones(1, 2, 30)
    assert torch.linalg.cholesky_ex(problems.kernel.float() + 1e-9 * torch.eye(30))[1].any()  # float32 fails
    factor = problems._woodbury_factors(rows)
    assert factor.dtype == torch.float32 and torch.isfinite(factor).all()
    system = (y @ y.mT)[:, None] + 1e-9 * torch.eye(30, dtype=torch.float64)
    product = factor.double() @ factor.double().mT
    np.testing.assert_allclose(product.numpy(), system.expand(-1, 2, -1, -1).numpy(), rtol=0, atol=1e-5 * 1e6)


def _sets_missing_classes(n: int, classes: int) -> np.ndarray:
    """Target sets (n, S) over 3 folds (fold k tests the samples i % 3 == k) whose training sets miss
    classes: set 0 none; set 1 (multiclass) misses the last class in fold 0; set 2 holds only classes
    0 and 1 in fold 1's training set; the last set holds only class 0 in fold 2's training set."""
    i = np.arange(n)
    full = (i // 3) % classes
    sets = [full]
    if classes > 2:
        sets.append(np.where((full == classes - 1) & (i % 3 != 0), (i // 3) % (classes - 1), full))
        sets.append(np.where(i % 3 == 1, full, (i // 3) % 2))
    sets.append(np.where(i % 3 == 2, full, 0))
    return np.stack(sets, axis=1)


@pytest.mark.parametrize(("classes", "units"), [(4, 10), (4, 80), (2, 10), (2, 80)])
def test_training_sets_missing_classes_are_fitted_on_the_classes_present(rng, classes, units):
    """A training set that lacks classes (a rare class in a permuted label set) gets scikit-learn's fit on
    the classes present: multinomial on 3, binary on 2 (probabilities equal to sklearn's Newton solver),
    the absent classes never predicted; a training set of one class predicts it (sklearn refuses it).
    Ridge: RidgeClassifier's decisions. Dense and wide (more units than samples) logistic paths."""
    from scipy.special import expit, softmax

    from rnnprobe.analysis._logistic import fit_logistic
    from rnnprobe.analysis._ridge import fit_ridge
    from rnnprobe.analysis.decoding import _code

    n, steps = 72, 2
    y = _sets_missing_classes(n, classes)
    x = rng.normal(size=(n, steps, units)) + 1.0
    x[:, :, :3] += 0.6 * y[:, None, :3] if classes > 2 else 0.6 * y[:, None, :1]
    folds = [np.arange(n) % 3 != k for k in range(3)]
    logistic = fit_logistic(x, y, folds, n_classes=classes, penalty=2.0, scale=True, tol=1e-10)
    codes = _code(y, classes)  # every set's codes, each set's columns together
    ridge = fit_ridge(x, codes, folds, alpha=2.0, scale=True)  # an absent class's column: the constant -1
    out = 1 if classes == 2 else classes
    checked = 0
    for f, train in enumerate(folds):
        for s in range(y.shape[1]):
            present = np.unique(y[train, s])
            cols = slice(s * out, (s + 1) * out)
            for t in range(steps):
                xt = x[~train, t]
                ours = xt @ logistic.coef[f, t, :, cols] + logistic.intercept[f, t, cols]
                proba = np.hstack([1 - expit(ours), expit(ours)]) if classes == 2 else softmax(ours, axis=1)
                ridge_ours = xt @ ridge.coef[f, t, :, cols] + ridge.intercept[f, t, cols]
                ridge_pred = (ridge_ours[:, 0] > 0).astype(int) if classes == 2 else ridge_ours.argmax(axis=1)
                if present.size == 1:  # sklearn refuses a training set of one class; it is predicted
                    np.testing.assert_array_equal(proba.argmax(axis=1), present[0])
                    np.testing.assert_array_equal(ridge_pred, present[0])
                    checked += 1
                    continue
                model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, solver="newton-cholesky",
                                                                           tol=1e-12, max_iter=1000))  # fmt: skip
                model.fit(x[train, t], y[train, s])
                absent = np.setdiff1d(np.arange(classes), present)
                assert np.all(proba[:, absent] == 0)
                np.testing.assert_allclose(proba[:, present], model.predict_proba(xt), atol=1e-7)
                ridge_model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=2.0)).fit(x[train, t], y[train, s])
                np.testing.assert_array_equal(ridge_pred, ridge_model.predict(xt))
                checked += present.size < classes
    assert checked == steps * (y.shape[1] - 1)  # every set but the first has one fold missing classes


def test_a_rare_class_absent_from_a_training_fold_decodes_as_sklearn(rng):
    """Folds by class (each training set misses a class) and permutations: the fast path's scores and null
    equal scikit-learn's fits of the classes present."""
    label = np.arange(90) % 3
    x = rng.normal(size=(90, 2, 6))
    x[:, :, 0] += label[:, None]
    rec = Recording({"h": x}, metadata={"label": label})
    cv = PredefinedSplit(np.where(label == 2, 0, (np.arange(90) // 3) % 3))  # class 2 only in fold 0's test set
    sk = make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000))
    for estimator in ("logistic", "ridge"):
        fast = decode(rec, "h", "label", estimator=estimator, cv=cv, n_permutations=15, seed=1)
        generic = sk if estimator == "logistic" else make_pipeline(StandardScaler(), RidgeClassifier())
        reference = decode(rec, "h", "label", estimator=generic, cv=cv, n_permutations=15, seed=1, fast=False)
        np.testing.assert_allclose(fast.fold_scores, reference.fold_scores, atol=1e-12)
        np.testing.assert_allclose(fast.null, reference.null, atol=1e-12)
        assert fast.fold_scores[0].max() < 0.7  # fold 0 tests class 2, which its decoders never predict


def test_logistic_fast_path_scores_within_0_01_of_sklearn(rng):
    rec, x, label = _recording(rng, n=150, steps=5, units=20, strength=1.0)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    fast = decode(rec, "h", "label", estimator=pipe, cv=cv, generalize=True)
    assert fast.estimator == "Pipeline"
    reference = _sklearn_generalization(pipe, x, label, cv)
    assert np.abs(fast.scores - reference).max() <= 0.01
    assert fast.scores[4, 4] > 0.55 > 0.45 > fast.scores[0, 0]  # the signal from step 3 on (chance 1/3)
    # against sklearn run to its optimum the predictions agree exactly
    tight = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000))
    np.testing.assert_allclose(fast.scores, _sklearn_generalization(tight, x, label, cv), atol=1e-12)
    named = decode(rec, "h", "label", estimator="logistic", alpha=1.0, cv=cv, generalize=True)
    np.testing.assert_allclose(named.scores, fast.scores, atol=1e-12)
    assert named.estimator == "logistic"


def test_logistic_permutations_and_patterns(rng):
    label = np.repeat([0, 1], 50)
    x = rng.normal(size=(100, 8, 6))
    x[:, 4:, 0] += 1.2 * (2 * label[:, None] - 1)
    rec = Recording({"h": x}, metadata={"label": label})
    result = decode(rec, "h", "label", estimator="logistic", n_permutations=40, patterns=True, seed=3)
    assert result.null.shape == (40, 8)
    assert (result.p_values[4:] < 0.05).all() and (result.p_values[:4] > 0.05).all()
    t = 5
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-12)).fit(x[:, t], label)
    w = model[-1].coef_[0] / model[0].scale_  # in the original units
    xc = x[:, t] - x[:, t].mean(axis=0)
    s = xc @ w
    np.testing.assert_allclose(result.patterns[t][:, 0], np.cov(xc.T) @ w / np.var(s, ddof=1), rtol=1e-6)


@pytest.mark.parametrize("generalize", [False, True])
def test_ridge_permutations_in_passes_of_one_set_equal_one_pass(rng, monkeypatch, generalize):
    # ridge fits as many target sets per pass as PASS_BYTES holds (all 41 here); one set per pass (the memory
    # bound of a wide layer with many permutations) gives the same numbers
    import rnnprobe.analysis.decoding as decoding

    y = rng.integers(0, 3, 60)
    rec = Recording({"h": rng.normal(size=(60, 4, 6)) + 0.5 * y[:, None, None]}, metadata={"label": y})
    passes = []
    real = decoding._fast_scores
    monkeypatch.setattr(decoding, "_fast_scores", lambda *a, **k: passes.append(a[2].shape[1]) or real(*a, **k))
    one = decode(rec, "h", "label", n_permutations=40, generalize=generalize, progress=False)
    assert passes == [41]
    passes.clear()
    monkeypatch.setattr(decoding, "PASS_BYTES", 1)
    several = decode(rec, "h", "label", n_permutations=40, generalize=generalize, progress=False)
    assert passes == [1] * 41
    for name in ("scores", "fold_scores", "null", "p_values"):
        np.testing.assert_array_equal(getattr(several, name), getattr(one, name))


def test_logistic_convergence_failure_is_an_error(rng):
    from rnnprobe.analysis._logistic import fit_logistic
    from rnnprobe.errors import ConvergenceError

    x = rng.normal(size=(40, 2, 5))
    label = np.repeat([0, 1], 20)
    with pytest.raises(ConvergenceError, match="did not converge in 1 Newton"):
        fit_logistic(x, label[:, None], [np.ones(40, dtype=bool)], n_classes=2, penalty=1.0, scale=True, max_iter=1)
    wide = rng.normal(size=(40, 2, 60))  # more units than samples: Newton's method in the samples' space
    with pytest.raises(ConvergenceError, match="2 of 2 fits did not converge in 1 Newton"):
        fit_logistic(wide, label[:, None], [np.ones(40, dtype=bool)], n_classes=2, penalty=1.0, scale=True, max_iter=1)


def test_device_argument(rng):
    import torch

    rec, _, _ = _recording(rng, steps=3)
    on_cpu = decode(rec, "h", "label", device="cpu")
    np.testing.assert_allclose(on_cpu.scores, decode(rec, "h", "label").scores)
    with pytest.raises(ArgumentError, match="device: got 'gpu0'"):
        decode(rec, "h", "label", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="no CUDA device"):
            decode(rec, "h", "label", device="cuda")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_fast_path_on_gpu_equals_cpu(rng):
    rec, _, _ = _recording(rng, steps=4)
    for estimator in ("ridge", "logistic"):
        cpu = decode(rec, "h", "label", estimator=estimator, generalize=True)
        gpu = decode(rec, "h", "label", estimator=estimator, generalize=True, device="cuda")
        np.testing.assert_allclose(gpu.scores, cpu.scores, atol=1e-12)


def test_planted_signal_is_found_where_it_is_and_nowhere_else(rng):
    label = np.repeat([0, 1], 60)
    x = rng.normal(size=(120, 12, 10))
    x[:, 5:8, :3] += 0.9 * (2 * label[:, None, None] - 1)  # only at steps 5, 6, 7
    rec = Recording({"h": x}, metadata={"label": label})
    result = decode(rec, "h", "label", n_permutations=200, seed=1)
    significant = result.significant(0.05)
    assert significant[5:8].all() and not significant[:5].any() and not significant[8:].any()
    assert result.clusters[0].p_value < 0.01
    assert result.chance == 0.5 and result.null.shape == (200, 12)
    generalization = decode(rec, "h", "label", generalize=True, n_permutations=100, seed=1)
    sig = generalization.significant(0.05)
    assert sig[5:8, 5:8].all()
    assert not sig[:5, :5].any() and not sig[8:, 8:].any()  # neither step carries the signal


def test_permutation_p_values_are_uniform_under_the_null():
    from scipy.stats import kstest

    rng = np.random.default_rng(12)
    x = rng.normal(size=(80, 60, 8))  # no signal at any of 60 independent steps
    rec = Recording({"h": x}, metadata={"label": np.repeat([0, 1], 40)})
    result = decode(rec, "h", "label", n_permutations=199, seed=5)
    assert kstest(result.p_values, "uniform").pvalue > 0.05
    assert 0.2 < result.p_values.mean() < 0.8


def test_grouped_folds_equal_sklearn_stratified_group_kfold(rng):
    rec, x, label = _recording(rng, n=96)
    groups = rec.column("image")
    label = np.repeat(rng.integers(0, 2, 24), 4)  # one class per image
    rec = Recording({"h": x}, metadata={"label": label, "image": groups})
    result = decode(rec, "h", "label", groups="image", cv=4, seed=2)
    cv = StratifiedGroupKFold(4, shuffle=True, random_state=2)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier())
    expected = [cross_val_score(pipe, x[:, t], label, cv=cv, groups=groups).mean() for t in range(6)]
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)


def test_cross_decoding_trains_on_one_recording_and_tests_on_another(rng):
    rec, x, label = _recording(rng)
    shifted = x + rng.normal(0, 0.5, size=x.shape)
    other = Recording({"h": shifted}, metadata={"label": label})
    result = decode(rec, "h", "label", test=other, generalize=True)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier())
    expected = np.array([[pipe.fit(x[:, t], label).score(shifted[:, s], label) for s in range(6)] for t in range(6)])
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)
    assert result.fold_scores.shape == (1, 6, 6)


def test_cross_decoding_bad_test_sets_get_clear_errors(rng):
    rec, x, label = _recording(rng)
    with pytest.raises(ArgumentTypeError, match=r"test: got .*Pass a Recording to test on"):
        decode(rec, "h", "label", test=x)
    with pytest.raises(ShapeError, match="test: layer 'h' has 6 units, the training layer 12"):
        decode(rec, "h", "label", test=Recording({"h": x[:, :, :6]}, metadata={"label": label}))
    shorter = Recording({"h": x[:, :4]}, metadata={"label": label})
    with pytest.raises(ShapeError, match="test: 4 time steps against 6 for training; use generalize=True"):
        decode(rec, "h", "label", test=shorter)
    assert decode(rec, "h", "label", test=shorter, generalize=True).scores.shape == (6, 4)
    with pytest.raises(ArgumentError, match=r"test: classes \[7\] were never seen in training"):
        decode(rec, "h", "label", test=Recording({"h": x}, metadata={"label": np.where(label == 0, 7, label)}))


def test_haufe_patterns_equal_the_closed_form(rng):
    rec, x, label = _recording(rng, classes=2)
    result = decode(rec, "h", "label", estimator=RidgeClassifier(alpha=2.0), patterns=True)
    t = 4
    w = np.ravel(RidgeClassifier(alpha=2.0).fit(x[:, t], label).coef_)
    xc = x[:, t] - x[:, t].mean(axis=0)
    s = xc @ w
    expected = np.cov(xc.T) @ w / np.var(s, ddof=1)
    np.testing.assert_allclose(result.patterns[t][:, 0], expected, rtol=1e-8)
    assert np.argmax(np.abs(result.patterns[t][:, 0])) == 0  # the unit carrying the signal


@pytest.mark.parametrize("name", [*_scores.CLASSIFICATION, *_scores.REGRESSION])
def test_batched_scores_equal_sklearn_metrics(rng, name):
    from sklearn.metrics import get_scorer

    metric = get_scorer(name)._score_func
    sign = get_scorer(name)._sign
    if name in _scores.REGRESSION:
        y = rng.normal(size=30)
        decision = y + rng.normal(size=(4, 30, 1))
        expected = [sign * metric(y, d[:, 0]) for d in decision]
    else:
        y = rng.integers(0, 2, 30)
        decision = np.round(rng.normal(size=(4, 30, 1)), 1)  # ties in the decision values
        expected = [sign * metric(y, d[:, 0] if name == "roc_auc" else (d[:, 0] > 0).astype(int)) for d in decision]
    np.testing.assert_allclose(_scores.score(name, y, decision, 2), expected, atol=1e-12)


@pytest.mark.parametrize("name", [*_scores.CLASSIFICATION, *_scores.REGRESSION])
def test_batched_scores_with_each_sets_targets_equal_sklearn(rng, name):
    # decoding's permutations score every target set at once: targets (sets, 1, n) against decisions
    # (sets, time, n, cols); a class absent from one set's targets is left out of that set's balanced accuracy
    import warnings

    from sklearn.metrics import get_scorer

    metric, sign = get_scorer(name)._score_func, get_scorer(name)._sign
    n_classes = 2 if name == "roc_auc" or name in _scores.REGRESSION else 3
    y = rng.normal(size=(4, 1, 30)) if name in _scores.REGRESSION else rng.integers(0, n_classes, (4, 1, 30))
    if name not in _scores.REGRESSION:
        y[1] = rng.integers(0, 2, 30)  # class 2 absent from set 1's targets
    cols = n_classes if n_classes == 3 else 1
    decision = np.round(rng.normal(size=(4, 3, 30, cols)), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn: a predicted class not among y_true
        expected = [[sign * metric(y[s, 0], _reference_prediction(name, decision[s, t])) for t in range(3)]
                    for s in range(4)]  # fmt: skip
    got = _scores.score(name, y, decision, n_classes if cols > 1 else 2)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def _reference_prediction(name: str, decision: np.ndarray) -> np.ndarray:
    if name in _scores.REGRESSION or name == "roc_auc":
        return decision[:, 0]
    return (decision[:, 0] > 0).astype(int) if decision.shape[1] == 1 else decision.argmax(axis=1)


def test_plots(rng):
    import matplotlib

    matplotlib.use("Agg")
    rec, _, _ = _recording(rng, steps=5)
    over_time = decode(rec, "h", "label", n_permutations=30)
    assert len(over_time.plot().axes) == 1
    assert "scores over time" in repr(over_time)
    matrix = decode(rec, "h", "label", generalize=True)
    assert len(matrix.plot().axes) == 2  # matrix and colour bar


def test_bad_inputs_get_clear_errors(rng):
    rec, x, label = _recording(rng)
    from sklearn.model_selection import GroupKFold

    with pytest.raises(ArgumentError, match=r"cv: GroupKFold\(.*\) cannot split these 120 samples: Cannot have"):
        decode(rec, "h", "label", cv=GroupKFold(3), groups=np.arange(120) % 2)
    with pytest.raises(ArgumentError, match=r"cv: StratifiedKFold\(.*\) cannot split these 120 samples"):
        decode(rec, "h", "label", cv=StratifiedKFold(100))
    with pytest.raises(ShapeError, match=r"target: got .*120 stimuli"):
        decode(rec, "h", label[:50])
    with pytest.raises(UnknownNameError, match="'nope' is not a metadata column"):
        decode(rec, "h", "nope")
    one_class = Recording({"h": x}, metadata={"label": np.zeros(120, dtype=int)})
    with pytest.raises(ArgumentError, match="at least 2 classes"):
        decode(one_class, "h", "label")
    for estimator in ("ridge", Ridge()):  # a constant regression target: R^2 undefined (every score was 0)
        with pytest.raises(ArgumentError, match=r"target: every stimulus has the same value \(0\.1\); a regression"):
            decode(rec, "h", np.full(120, 0.1), estimator=estimator)
    rare = label.copy()
    rare[:3] = 7  # a class with 3 members cannot fill 5 folds
    with pytest.raises(ArgumentError, match=r"smallest class has 3\. Use fewer folds"):
        decode(Recording({"h": x}, metadata={"label": rare}), "h", "label")
    with pytest.raises(UnknownNameError, match="unknown scorer 'acuracy'"):
        decode(rec, "h", "label", scoring="acuracy")
    with pytest.raises(ArgumentError, match="fast=False"):
        decode(rec, "h", "label", scoring="f1_macro")
    with pytest.raises(ArgumentError, match="no fast path"):
        decode(rec, "h", "label", estimator=KNeighborsClassifier(), fast=True)
    for kwargs in ({"estimator": KNeighborsClassifier()}, {"estimator": LogisticRegression(), "fast": False}):
        with pytest.raises(ArgumentError, match=r"device: got 'cpu' with (KNeighbors|Log).* fits on the CPU"):
            decode(rec, "h", "label", device="cpu", **kwargs)  # (was run on the CPU, the device ignored)
    with pytest.raises(ArgumentTypeError, match="estimator: got"):
        decode(rec, "h", "label", estimator=42)
    with pytest.raises(UnknownNameError, match="estimator: unknown name 'lasso'"):
        decode(rec, "h", "label", estimator="lasso")
    with pytest.raises(ArgumentError, match="roc_auc' needs 2 classes"):
        decode(rec, "h", "label", scoring="roc_auc")
    with pytest.raises(ArgumentError, match="'logistic' classifies"):
        decode(rec, "h", "value", estimator="logistic")
    with pytest.raises(ArgumentError, match="NaN"):
        decode(rec, "h", np.r_[np.nan, rec.column("value")[1:]])


@pytest.mark.parametrize("shape", [(40,), (12, 14)])
def test_cluster_masses_and_p_values_equal_a_map_by_map_reference(rng, shape):
    # Maris & Oostenveld: z against the null's mean and sd, clusters of z above the normal quantile (edges,
    # not diagonals), mass = summed z, p = share of permutations whose largest cluster mass reaches it
    from scipy import ndimage
    from scipy.stats import norm

    from rnnprobe.analysis._clusters import cluster_test

    null = rng.normal(size=(300, *shape))
    observed = rng.normal(size=shape)
    observed[(slice(5, 15),) * len(shape)] += 3.0  # a planted cluster
    mean, sd, threshold = null.mean(axis=0), null.std(axis=0, ddof=1), norm.ppf(0.95)

    def masses(scores):
        labels, n = ndimage.label((scores - mean) / sd > threshold)
        return labels, [float(((scores - mean) / sd)[labels == k].sum()) for k in range(1, n + 1)]

    largest = np.array([max(masses(perm)[1], default=0.0) for perm in null])
    labels, expected = masses(observed)
    clusters = cluster_test(observed, null)
    assert len(clusters) == len(expected) >= 2
    for cluster in clusters:
        k = labels[cluster.mask][0]
        assert np.all(labels[cluster.mask] == k) and cluster.mask.sum() == (labels == k).sum()
        assert cluster.mass == pytest.approx(expected[k - 1], rel=1e-12)
        assert cluster.p_value == (1 + (largest >= cluster.mass).sum()) / 301
    assert min(c.p_value for c in clusters) == pytest.approx(1 / 301)


def test_a_point_whose_null_does_not_vary_never_enters_a_cluster(rng):
    """Every permutation's score the same at a point (a discrete accuracy, 8 / 15, keeps about 1e-16 of spread
    about its computed mean): the point stays out of clusters, as where the null is exactly constant (0.5); it
    had a z of 1e14 and formed a cluster of that mass."""
    from rnnprobe.analysis._clusters import cluster_test

    null = rng.normal(size=(200, 30))
    observed = rng.normal(size=30)
    observed[10:16] += 4.0  # a planted cluster

    def clusters(value):
        flat, high = null.copy(), observed.copy()
        flat[:, 20:24], high[20:24] = value, value + 0.1  # above a null that does not vary
        return [(c.mask.tolist(), round(c.mass, 9), c.p_value) for c in cluster_test(high, flat)]

    expected = clusters(0.5)
    assert expected and not any(mask[20] for mask, _, _ in expected)
    for value in (8 / 15, 0.7, 0.1):
        assert clusters(value) == expected, value


def test_p_values_do_not_depend_on_the_scale_of_the_scores(rng):
    """A regression target at 1e-7 gives mean squared errors of 1e-14: an absolute tie tolerance of 1e-12 let
    every null score reach the observed one (p = 1 everywhere). The p-values are those of the same target at
    scale 1, and equal a brute-force count."""
    label = rng.normal(size=60)
    rec = Recording({"h": rng.normal(size=(60, 5, 8)) + label[:, None, None] * np.r_[0, 0, 1, 1, 0][None, :, None]})
    results = [
        decode(rec, "h", scale * label, estimator="ridge", scoring="neg_mean_squared_error", n_permutations=40,
               progress=False)
        for scale in (1.0, 1e-7, 1e7)
    ]  # fmt: skip
    for result in results:
        expected = (1 + (result.null >= result.scores).sum(axis=0)) / 41
        np.testing.assert_array_equal(result.p_values, expected)
        np.testing.assert_array_equal(result.p_values, results[0].p_values)
    assert results[0].p_values.min() == 1 / 41 and results[0].p_values.max() > 0.2
    # an undefined score gets no p-value; an undefined null score is left out of the count and of n
    from rnnprobe.analysis._scores import permutation_p_values

    got = permutation_p_values(np.array([np.nan, 1.0]), np.array([[0.0, np.nan], [2.0, 0.5], [1.0, 3.0]]))
    np.testing.assert_array_equal(got, [np.nan, 2 / 3])


def test_a_permutation_without_a_score_at_a_point_leaves_the_others_to_judge_it(rng):
    """NaN null scores (ROC AUC of a small test fold that a permutation left with one class) made the point's
    null mean NaN, its z NaN, and cut it out of every cluster. The moments now come from the permutations with a
    score there (against a loop), and a planted cluster through such points keeps its extent and mass."""
    import warnings

    from rnnprobe.analysis._clusters import cluster_test

    null = rng.normal(size=(200, 30))
    observed = rng.normal(size=30)
    observed[10:16] += 5.0
    expected = cluster_test(observed, null)
    holed = null.copy()
    holed[rng.random(holed.shape) < 0.1] = np.nan  # about 20 permutations without a score at each point
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cluster_test(observed, holed)
    biggest = max(got, key=lambda c: c.mass)
    assert biggest.mask.tolist() == max(expected, key=lambda c: c.mass).mask.tolist()
    z = [(observed[k] - np.mean(v)) / np.std(v, ddof=1) for k, v in ((k, holed[~np.isnan(holed[:, k]), k])
                                                                     for k in range(30))]  # fmt: skip
    assert biggest.mass == pytest.approx(sum(z[k] for k in np.flatnonzero(biggest.mask)), rel=1e-12)


def test_one_permutation_gives_p_values_but_no_clusters_and_no_numpy_warning():
    import warnings

    rng = np.random.default_rng(3)
    label = np.arange(40) % 2
    rec = Recording({"h": rng.normal(size=(40, 4, 6)) + label[:, None, None]}, metadata={"label": label})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a null of one permutation has no spread: no cluster, no warning
        result = decode(rec, "h", "label", n_permutations=1, progress=False)
    assert result.clusters == [] and np.all(result.p_values == 0.5)  # (1 + at most 1) / (1 + 1)


def test_ridge_blocks_of_time_steps_count_the_copy_of_the_samples(rng, monkeypatch):
    """Many samples of few units: a block's copy of x (not only its p x p arrays) is within the budget, and the
    fits do not depend on the blocks (equal to sklearn's ridge per step)."""
    import rnnprobe.analysis._ridge as ridge
    from rnnprobe.analysis import _linear as linear
    from rnnprobe.analysis._linear import time_blocks

    n, steps, p = 4000, 6, 8
    x = rng.normal(size=(n, steps, p))
    y = (x[:, :, 0].sum(axis=1) > 0).astype(float)[:, None]
    folds = [np.arange(n) % 4 != k for k in range(4)]
    sizes = []
    monkeypatch.setattr(
        ridge, "time_blocks", lambda *a, **k: [sizes.append(b.stop - b.start) or b for b in time_blocks(*a, **k)]
    )
    monkeypatch.setattr(linear, "CPU_BUDGET", 2**20)  # about 0.5 MB per step: 8 * 8^2 * 6 + 16 * 4000 * 8
    fit = ridge.fit_ridge(x, y, folds, alpha=2.0, scale=False)
    assert sizes == [2, 2, 2]
    for f, train in enumerate(folds):
        for t in range(steps):
            model = Ridge(alpha=2.0).fit(x[train, t], y[train])
            np.testing.assert_allclose(fit.coef[f, t], model.coef_.reshape(p, 1), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(fit.intercept[f, t], np.ravel(model.intercept_), rtol=1e-10, atol=1e-12)


def test_time_blocks_for_threads_are_a_multiple_of_them_and_give_each_as_many_steps():
    from rnnprobe.analysis._linear import time_blocks

    def sizes(n_times, per_step, parts):
        blocks = list(time_blocks(n_times, per_step, budget=13 * 100, parts=parts))
        assert blocks[0].start == 0 and blocks[-1].stop == n_times
        assert [b.start for b in blocks[1:]] == [b.stop for b in blocks[:-1]]  # consecutive, covering every step
        return [b.stop - b.start for b in blocks]

    assert sizes(30, 100, 1) == [13, 13, 4]  # one part: blocks of the budget
    # two: 4 blocks, the larger first, so that 2 workers taking them in turn get 15 steps each (not 13 + 4
    # against 13, nor 8 + 8 against 8 + 6)
    assert sizes(30, 100, 2) == [8, 8, 7, 7]
    assert sizes(30, 1, 2) == [15, 15]
    assert sizes(1, 100, 2) == [1]
    assert sizes(7, 100, 3) == [3, 2, 2]
    assert sizes(6, 100, 4) == [2, 2, 1, 1]  # at most one block per step


def test_a_singular_ridge_problem_gets_the_least_squares_solution():
    # constant features with a vanishing penalty: the normal equations are singular in floating point
    import torch

    from rnnprobe.analysis._linear import solve

    states = np.zeros((6, 1, 2))
    states[5] = 1.0
    rec = Recording({"h": states}, metadata={"label": np.arange(6) % 2})
    result = decode(rec, "h", "label", cv=2, alpha=7e-34, progress=False)
    assert np.isfinite(result.scores).all()
    a = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 4.0]]], dtype=torch.float64)
    b = torch.tensor([[[2.0], [2.0]], [[2.0], [4.0]]], dtype=torch.float64)
    np.testing.assert_allclose(solve(a, b).numpy(), [[[1.0], [1.0]], [[1.0], [1.0]]], atol=1e-12)  # min-norm


def test_cholesky_solve_without_the_lock_equals_scipys_wrapper(rng):
    """LAPACK's dposv through scipy's C interface (ctypes, the lock released): the same numbers as scipy's
    Python wrapper, the same info for a matrix that is not positive definite, and solves from 2 threads at
    once equal to those from one."""
    from concurrent.futures import ThreadPoolExecutor

    from scipy.linalg.lapack import dposv

    from rnnprobe.analysis._lapack import _c_posv, posv_batch

    def posv(a, b):  # one system
        x, info = posv_batch(a[None], b[None])
        return x[0], info[0]

    assert _c_posv() is not None  # scipy's C interface found (else the wrapper serves, with the lock)
    systems = []
    for n in (1, 7, 200):
        x = rng.normal(size=(n + 3, n))
        systems.append((x.T @ x + 0.1 * np.eye(n), rng.normal(size=(n, 3))))
    for a, b in systems:
        got, info = posv(a, b)
        _, expected, expected_info = dposv(a, b)
        assert info == expected_info == 0 and np.array_equal(got, expected)
        assert np.array_equal(a, a.T)  # the caller's matrix is not overwritten
    assert posv(-np.eye(3), np.ones((3, 1)))[1] == dposv(-np.eye(3), np.ones((3, 1)))[2] == 1
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda ab: posv(*ab)[0], systems * 4))
    for got, (a, b) in zip(together, systems * 4, strict=True):
        assert np.array_equal(got, dposv(a, b)[1])


def test_batched_cholesky_solves_equal_scipys_wrapper_system_by_system(rng):
    """posv_batch: one copy of every system in LAPACK's column order, then a call per system; the same
    numbers and info as scipy's dposv of each, a system that is not positive definite among them, right-hand
    sides shared by broadcasting, and the callers' arrays left as they were."""
    from scipy.linalg.lapack import dposv

    from rnnprobe.analysis._lapack import posv_batch

    x = rng.normal(size=(4, 9, 6))
    a = x.transpose(0, 2, 1) @ x + 0.1 * np.eye(6)
    a[2] = -np.eye(6)  # not positive definite
    a[3, 0, 1] += 1e-3  # not symmetric: the upper triangle is read
    b = rng.normal(size=(4, 6, 2))
    a_before, b_before = a.copy(), b.copy()
    for rhs in (b, np.broadcast_to(b[0], b.shape)):
        got, info = posv_batch(a, rhs)
        for i in range(4):
            _, expected, expected_info = dposv(a[i], rhs[i])
            assert info[i] == expected_info == (1 if i == 2 else 0)
            if i != 2:
                assert np.array_equal(got[i], expected)
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)


@pytest.mark.parametrize("n", [8, 40])  # numpy's batched LU below CHOLESKY_MIN, a Cholesky solve per matrix from it
def test_ridge_solves_positive_definite_indefinite_and_singular_systems(rng, n):
    import torch

    from rnnprobe.analysis._linear import CHOLESKY_MIN, solve

    assert (n >= CHOLESKY_MIN) == (n == 40)
    x = rng.normal(size=(n + 5, n))
    spd = x.T @ x + 0.5 * np.eye(n)
    indefinite = spd - 3 * np.linalg.eigvalsh(spd).max() * np.outer(np.eye(n)[0], np.eye(n)[0])
    singular = spd.copy()
    singular[-1], singular[:, -1] = 0.0, 0.0  # no penalty on a constant feature: the minimum-norm solution
    a = np.stack([spd, indefinite, singular])
    b = rng.normal(size=(3, n, 2))
    b[2, -1] = 0.0  # consistent
    got = solve(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got[:2], np.linalg.solve(a[:2], b[:2]), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got[2], np.linalg.pinv(singular) @ b[2], rtol=1e-6, atol=1e-8)
    shared = solve(torch.from_numpy(a[:1].repeat(2, 0)), torch.from_numpy(b[0]).expand(2, -1, -1)).numpy()
    np.testing.assert_allclose(shared, np.linalg.solve(a[:1], b[:1]).repeat(2, 0), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", range(40))
def test_stratified_group_folds_equal_scikit_learns(seed):
    """The same (train, test) pairs as StratifiedGroupKFold(shuffle=True): random designs, and designs whose
    groups share one composition (evaluations tied: the fold with fewer samples wins, as in scikit-learn)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from rnnprobe.analysis._group_folds import stratified_group_folds

    rng = np.random.default_rng(seed)
    n_groups, k, n_classes = int(rng.integers(6, 50)), int(rng.integers(2, 6)), int(rng.integers(2, 11))
    tied = seed % 2 == 0
    sizes = np.full(n_groups, n_classes) if tied else rng.integers(1, 8, n_groups)
    groups = np.repeat(rng.permutation(n_groups), sizes)
    y = np.tile(np.arange(n_classes), n_groups) if tied else rng.integers(0, n_classes, groups.size)
    if seed % 5 == 1:
        groups = np.array([f"g{g}" for g in groups])  # any labels
    if np.bincount(y).min() < k:
        y[: k * n_classes] = np.repeat(np.arange(n_classes), k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(y.size), y, groups))
    got = stratified_group_folds(y, groups, k, seed)
    assert len(got) == k
    for (train, test), (want_train, want_test) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(test, want_test)
        np.testing.assert_array_equal(train, want_train)


def test_roc_auc_on_test_sets_of_one_class_is_refused(rng):
    """Groups that each hold one class make test folds of one class, where ROC AUC is undefined: every score was NaN
    without a word (and summary() then raised numpy's All-NaN ValueError). Refused, naming the folds; cross-decoding
    onto stimuli of one class likewise. Stratified folds of the same stimuli score."""
    from sklearn.model_selection import GroupKFold

    y, groups = np.repeat([0, 1], 20), np.repeat(np.arange(4), 10)
    rec = Recording({"h": rng.normal(size=(40, 3, 5)) + y[:, None, None]}, metadata={"y": y, "g": groups})
    with pytest.raises(ArgumentError, match=r"cv: test folds \[0, 1, 2, 3\] hold one class"):
        decode(rec, "h", "y", scoring="roc_auc", cv=GroupKFold(4), groups="g", progress=False)
    held = Recording({"h": rng.normal(size=(10, 3, 5))}, metadata={"y": np.zeros(10, int)})
    with pytest.raises(ArgumentError, match="test: its stimuli hold one class"):
        decode(rec, "h", "y", scoring="roc_auc", test=held, progress=False)
    assert np.isfinite(decode(rec, "h", "y", scoring="roc_auc", progress=False).scores).all()


@pytest.mark.parametrize("constant", [2.0, 0.1])
def test_r2_on_a_test_fold_whose_target_does_not_vary_is_sklearns(rng, constant):
    """A test fold whose targets are one value: the fast path's R^2 was -inf (exact, 2.0) or about -1e30 (0.1,
    whose mean keeps 1e-33 of spread), where scikit-learn's r2_score gives 0 (1 for exact predictions), and the
    mean over folds was swamped. Now 0, as the generic path's; the other folds equal cross_val_score's."""
    from sklearn.model_selection import GroupKFold, cross_val_score

    groups = np.repeat(np.arange(4), 10)
    y = rng.normal(size=40)
    y[groups == 2] = constant
    x = rng.normal(size=(40, 2, 6)) + y[:, None, None]
    rec = Recording({"h": x}, metadata={"y": y, "g": groups})
    cv = GroupKFold(4)
    fast = decode(rec, "h", "y", estimator=Ridge(alpha=1.0), scoring="r2", cv=cv, groups="g")
    flat = [k for k, (_, test) in enumerate(cv.split(x[:, 0], y, groups)) if (groups[test] == 2).all()]
    for t in range(2):
        folds = cross_val_score(Ridge(alpha=1.0), x[:, t], y, cv=cv, groups=groups, scoring="r2")
        assert fast.fold_scores[flat[0], t] == 0.0
        np.testing.assert_allclose(np.delete(fast.fold_scores[:, t], flat), np.delete(folds, flat), atol=1e-10)
    if constant == 2.0:  # (exactly constant: scikit-learn's 0 too, in the generic path)
        slow = decode(rec, "h", "y", estimator=Ridge(alpha=1.0), scoring="r2", cv=cv, groups="g", fast=False)
        np.testing.assert_allclose(fast.fold_scores, slow.fold_scores, atol=1e-10)


@pytest.mark.parametrize("generalize", [False, True])
def test_a_result_without_any_score_summarises_without_a_crash(rng, generalize):
    """Scores NaN everywhere (an estimator of the user's that scored nothing): summary() raised numpy's All-NaN
    ValueError and repr warned. Now the peak is NaN at no time, without warnings."""
    import dataclasses
    import warnings

    label = np.repeat([0, 1], 20)
    rec = Recording({"h": rng.normal(size=(40, 3, 4)) + label[:, None, None]}, metadata={"label": label})
    result = decode(rec, "h", "label", generalize=generalize, progress=False)
    empty = dataclasses.replace(result, scores=np.full_like(result.scores, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary, text = empty.summary(), repr(empty)
    assert np.isnan(summary["peak score"]) and "best nan" in text
    assert (
        (summary["peak train time"], summary["peak test time"]) == (None, None)
        if generalize
        else (summary["peak time"] is None)
    )
    assert result.summary()["peak score"] == np.nanmax(result.scores)
