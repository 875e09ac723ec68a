"""Ridge decoding of wide layers through kernel matrices (many target sets: a permutation test's): the same scores as
scikit-learn's fits of every permutation, and as the weights route."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import rnnprobe.analysis._kernel_decoding as kernel
import rnnprobe.analysis.decoding as decoding
from rnnprobe import Recording
from rnnprobe.analysis._kernel_decoding import kernel_route_pays
from rnnprobe.analysis.decoding import decode


def _wide(rng, n=60, steps=3, units=150, classes=3, offset=0.0):
    """More units than training samples (the dual form), a class signal, a continuous target, and an offset."""
    label = np.arange(n) % classes
    x = rng.normal(size=(n, steps, units)) + offset
    x[:, 1:, :10] += 1.5 * label[:, None, None]
    value = x[:, 1, :4].sum(axis=1) + rng.normal(size=n)
    return Recording({"h": x}, metadata={"label": label, "value": value})


@pytest.fixture
def spy(monkeypatch):
    """The codes' shape (samples, columns) of each kernel_scores call: the route taken, every set at once."""
    calls = []
    real = decoding.kernel_scores
    monkeypatch.setattr(decoding, "kernel_scores", lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
    return calls


def test_the_route_is_chosen_by_counting_products():
    # weights: columns x p x (n_train + test steps x n_test); kernel: test steps x n_test x n_train x (p + columns)
    assert not kernel_route_pays(400, 100, 4096, 1, 10)  # 20.5 M against 164 M
    assert kernel_route_pays(400, 100, 4096, 1, 2010)  # 4.1 G against 245 M
    assert not kernel_route_pays(400, 100, 400, 1, 10**6)  # not wider than the training set: the primal form
    # the crossover, with generalization over 30 test steps: columns c with c 4096 (400 + 3000) > 3000 x 400 (4096 + c)
    crossover = 3000 * 400 * 4096 / (4096 * 3400 - 3000 * 400)
    assert not kernel_route_pays(400, 100, 4096, 30, int(crossover))
    assert kernel_route_pays(400, 100, 4096, 30, int(crossover) + 1)


def test_decode_counts_the_products_of_its_own_sizes(rng, monkeypatch):
    # (n_train, n_test, units, test steps, columns): 5 folds of 60 (48 / 12), 3 classes' codes for the true and
    # 10 permuted sets; a generalization matrix's 3 test steps; cross-decoding's 40 test samples and 1 fold of 60
    asked = []
    monkeypatch.setattr(decoding, "kernel_route_pays", lambda *args: asked.append(args) or True)
    rec, other = _wide(rng), _wide(rng, n=40, steps=2)
    decode(rec, "h", "label", n_permutations=10, progress=False)
    decode(rec, "h", "value", generalize=True, n_permutations=10, progress=False)
    decode(rec, "h", "label", test=other, generalize=True, n_permutations=10, progress=False)
    assert asked == [(48, 12, 150, 1, 33), (48, 12, 150, 3, 11), (60, 40, 150, 2, 33)]


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # (scikit-learn's, of the reference)
@pytest.mark.parametrize(
    ("classes", "estimator", "scoring"),
    [
        (2, "ridge", "accuracy"),
        (3, "ridge", "balanced_accuracy"),
        (3, RidgeClassifier(alpha=3.0), "accuracy"),  # no scaler
        (2, "ridge", "roc_auc"),
    ],
)
def test_wide_permutations_equal_sklearn_fits_of_each_permutation(rng, spy, classes, estimator, scoring):
    rec = _wide(rng, classes=classes, offset=5.0)
    fast = decode(rec, "h", "label", estimator=estimator, scoring=scoring, n_permutations=25, seed=2, progress=False)
    assert spy == [(60, 26 * (1 if classes == 2 else classes))]  # every set (the true one, 25 permuted) at once
    reference = make_pipeline(StandardScaler(), RidgeClassifier()) if estimator == "ridge" else estimator
    slow = decode(rec, "h", "label", estimator=reference, scoring=scoring, n_permutations=25, seed=2, fast=False,
                  progress=False)  # fmt: skip
    np.testing.assert_allclose(fast.fold_scores, slow.fold_scores, atol=1e-12)
    np.testing.assert_allclose(fast.null, slow.null, atol=1e-12)
    np.testing.assert_array_equal(fast.p_values, slow.p_values)
    assert fast.scores[1:].min() > fast.null.mean() + 0.2  # the signal from step 1 on, above the null


def test_regression_and_generalization_equal_sklearn(rng, spy):
    rec = _wide(rng, units=400)  # (generalization's kernel matrices pay from about 25 sets here)
    fast = decode(rec, "h", "value", generalize=True, n_permutations=40, seed=0, progress=False)
    pipe = make_pipeline(StandardScaler(), Ridge())
    slow = decode(rec, "h", "value", estimator=pipe, generalize=True, n_permutations=40, seed=0, fast=False,
                  progress=False)  # fmt: skip
    assert spy == [(60, 41)]
    assert fast.null.shape == (40, 3, 3)
    np.testing.assert_allclose(fast.fold_scores, slow.fold_scores, atol=1e-10)
    np.testing.assert_allclose(fast.null, slow.null, atol=1e-10)


def test_cross_decoding_equals_sklearn(rng, spy):
    rec, other = _wide(rng), _wide(rng, n=40)
    fast = decode(rec, "h", "label", test=other, generalize=True, n_permutations=20, seed=0, progress=False)
    pipe = make_pipeline(StandardScaler(), RidgeClassifier())
    slow = decode(rec, "h", "label", test=other, estimator=pipe, generalize=True, n_permutations=20, seed=0,
                  fast=False, progress=False)  # fmt: skip
    assert spy == [(60, 63)]
    np.testing.assert_allclose(fast.fold_scores, slow.fold_scores, atol=1e-12)
    np.testing.assert_allclose(fast.null, slow.null, atol=1e-12)


@pytest.mark.parametrize("generalize", [False, True])
def test_the_kernel_route_equals_the_weights_route_in_any_chunks(rng, monkeypatch, generalize):
    rec = _wide(rng, steps=4)

    def run(**kwargs):
        return decode(rec, "h", "value", generalize=generalize, n_permutations=30, progress=False, **kwargs)

    routed = run()
    monkeypatch.setattr(kernel, "block_budget", lambda device: 1)  # a step a task, a set and a test step a chunk
    chunked = run()
    on_cpu = run(device="cpu")
    monkeypatch.setattr(decoding, "kernel_route_pays", lambda *args: False)
    weights = run()
    for got in (routed, chunked, on_cpu):
        np.testing.assert_allclose(got.fold_scores, weights.fold_scores, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(got.null, weights.null, rtol=1e-11, atol=1e-12)


def test_every_task_reports_its_share(rng, monkeypatch):
    rec = _wide(rng, steps=4)
    x = rec.get("h")
    y = np.stack([rec.column("label"), rng.permutation(rec.column("label"))], axis=1)
    codes = np.where(np.arange(3) == y[:, :, None], 1.0, -1.0).reshape(len(y), -1)
    folds = [(np.arange(20, 60), np.arange(20)), (np.arange(40), np.arange(40, 60))]
    monkeypatch.setattr(kernel, "block_budget", lambda device: 1)  # a task a step (every fold in it)
    shares = []
    scores = kernel.kernel_scores(x, codes, y, folds, None, None, alpha=1.0, scale=True, scoring="accuracy",
                                  n_classes=3, generalize=False, done=shares.append)  # fmt: skip
    assert scores.shape == (2, 2, 4) and np.isfinite(scores).all()
    assert shares == [0.25] * 4


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
@pytest.mark.parametrize("generalize", [False, True])
def test_the_kernel_route_on_cuda_equals_the_cpu(rng, spy, generalize):
    rec = _wide(rng, units=400)
    kwargs = {"generalize": generalize, "n_permutations": 40, "progress": False}
    cpu, gpu = decode(rec, "h", "value", **kwargs), decode(rec, "h", "value", device="cuda", **kwargs)
    assert len(spy) == 2
    np.testing.assert_allclose(gpu.fold_scores, cpu.fold_scores, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(gpu.null, cpu.null, rtol=1e-9, atol=1e-10)
