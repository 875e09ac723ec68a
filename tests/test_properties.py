"""Property-based bad input: public functions driven with generated arrays (odd shapes, dtypes, NaN and
inf), settings (negative, NaN, inf, huge, wrong types) and names. Only rnnprobe errors may come out (or a
result), never a raw numpy/torch/scikit-learn/zarr exception, and never a p-value next to a NaN statistic."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rnnprobe import Recording
from rnnprobe.analysis import (
    compare_rdms,
    compute_rdms,
    decode,
    fit_pca,
    fly_hash,
    noise_ceiling,
    participation_ratio,
    permutation_test,
)
from rnnprobe.errors import RnnprobeError, RnnprobeWarning
from rnnprobe.neural import from_responses, rdms_from_matrices

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)
dtypes = st.sampled_from(["float64", "float32", "int64", "bool", "object", "U3"])
specials = st.sampled_from([None, np.nan, np.inf, -np.inf])
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from(["1", "x", None, [1.0], (), True, 0, -1]),
)
# counts (permutations, components, batch sizes): small, negative, huge or not integers; never a count
# that is valid but takes minutes
counts = st.one_of(st.integers(-3, 40), st.sampled_from([2**70, 10**8, np.nan, np.inf, "5", 2.5, None, True]))


@st.composite
def arrays(draw, shape=shapes):
    shape = draw(shape)
    dtype = draw(dtypes)
    size = int(np.prod(shape)) if shape else 1
    values = np.asarray(draw(st.lists(st.floats(-1e3, 1e3), min_size=size, max_size=size)) or [0.0])[:size]
    array = values.reshape(shape) if shape else np.float64(values[0])
    special = draw(specials)
    if special is not None and np.size(array):
        array = np.array(array, dtype=np.float64)
        array.flat[draw(st.integers(0, array.size - 1))] = special
    try:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN cast to int: part of the bad input
            return np.asarray(array).astype(dtype)
    except (ValueError, TypeError):
        return np.asarray(array)


def _only_rnnprobe_errors(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RnnprobeWarning)
        try:
            return call()
        except RnnprobeError:
            return None


@SETTINGS
@given(arrays())
def test_recording_constructor(states):
    _only_rnnprobe_errors(lambda: Recording({"h": states}))


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5))), st.sampled_from(
    ["correlation", "euclidean", "cosine", "crossnobis", "pearson", 3]))  # fmt: skip
def test_compute_rdms(states, distance):
    def call():
        rec = Recording({"h": states}, metadata={"c": np.arange(states.shape[0]) % 2})
        return compute_rdms(rec, "h", distance=distance)

    _only_rnnprobe_errors(call)


@SETTINGS
@given(arrays(), arrays(), st.sampled_from(["corr", "spearman", "tau-a", "cosine", "rho-a", "x", None]))
def test_compare_rdms(a, b, comparison):
    _only_rnnprobe_errors(lambda: compare_rdms(a, b, comparison=comparison))


@SETTINGS
@given(arrays(st.tuples(st.integers(2, 12), st.integers(1, 3), st.integers(1, 4))), numbers, counts)
def test_decode(states, alpha, n_permutations):
    def call():
        rec = Recording({"h": states}, metadata={"label": np.arange(states.shape[0]) % 2})
        result = decode(rec, "h", "label", cv=2, alpha=alpha, n_permutations=n_permutations, progress=False)
        if result.p_values is not None:
            assert np.isfinite(result.scores[np.isfinite(result.p_values)]).all()  # no p-value beside a NaN
        return result

    _only_rnnprobe_errors(call)


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 8), st.integers(1, 3), st.integers(1, 6))), counts)
def test_fit_pca(states, n_components):
    def call():
        result = fit_pca(Recording({"h": states}), n_components=n_components)
        result.summary()  # also on degenerate states
        return result

    _only_rnnprobe_errors(call)


@SETTINGS
@given(arrays())
def test_participation_ratio(states):
    _only_rnnprobe_errors(lambda: participation_ratio(states))


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 4), st.integers(0, 12))), arrays(st.tuples(st.integers(1, 4), st.integers(0, 12))), counts)  # fmt: skip  # noqa: E501
def test_permutation_test(model, data, n_permutations):
    def call():
        result = permutation_test(model, data, n_permutations=n_permutations, progress=False)
        assert np.isfinite(result.observed).all()  # a p-value only for a defined statistic
        return result

    _only_rnnprobe_errors(call)


@SETTINGS
@given(arrays())
def test_noise_ceiling(subjects):
    _only_rnnprobe_errors(lambda: noise_ceiling(subjects))


@SETTINGS
@given(counts, numbers, counts)
def test_fly_hash_settings(n_inputs, expansion, k):
    n_inputs = n_inputs if not isinstance(n_inputs, int) else min(abs(n_inputs), 50)
    try:  # valid settings of millions of units are not drawn: their projection alone takes GBs (10^8: 17 GB)
        units = float(expansion) * float(n_inputs)
    except (TypeError, ValueError, OverflowError):
        units = 0.0
    assume(not 1e6 < units <= 1e8)
    _only_rnnprobe_errors(lambda: fly_hash(n_inputs, expansion=expansion, k=k))


@SETTINGS
@given(arrays(), st.sampled_from(["stimulus time unit", "time unit stimulus", "unit stimulus", "a b", "", 3]))
def test_from_responses(responses, axes):
    _only_rnnprobe_errors(lambda: from_responses(responses, axes=axes))


@SETTINGS
@given(arrays())
def test_rdms_from_matrices(array):
    _only_rnnprobe_errors(lambda: rdms_from_matrices(array))


@SETTINGS
@given(arrays(), counts, numbers)
def test_record(stimuli, batch_size, seed):
    import torch

    from rnnprobe import Tap, record

    model = torch.nn.Sequential(torch.nn.Flatten(), Tap())
    _only_rnnprobe_errors(lambda: record(model, stimuli, batch_size=batch_size, seed=seed, progress=False))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1, "x", 2**70, [1], None])
def test_seeds_everywhere(bad):
    from rnnprobe.analysis import bootstrap_conditions_and_subjects

    rec = Recording({"h": np.random.default_rng(0).normal(size=(10, 2, 3))}, metadata={"label": np.arange(10) % 2})
    subjects = np.arange(10.0) ** 2 + np.random.default_rng(1).normal(size=(3, 10))
    calls = [
        lambda: decode(rec, "h", "label", cv=2, seed=bad),
        lambda: permutation_test(np.arange(10.0), np.arange(10.0)[None] ** 2, seed=bad, n_permutations=9),
        lambda: bootstrap_conditions_and_subjects(np.arange(10.0), subjects, seed=bad, n_bootstrap=5, progress=False),
    ]
    for call in calls:
        if bad is None:
            call()
            continue
        with pytest.raises(RnnprobeError, match="seed"):
            call()


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 8), st.integers(1, 6), st.integers(1, 3))), counts, numbers)
def test_fit_timescales(states, max_lag, dt):
    from rnnprobe.analysis import fit_timescales

    _only_rnnprobe_errors(lambda: fit_timescales(Recording({"h": states}), "h", max_lag=max_lag, dt=dt))


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 3), st.integers(0, 12))), arrays(st.tuples(st.integers(1, 5), st.integers(0, 12))), counts, numbers)  # fmt: skip  # noqa: E501
def test_bootstrap_subjects(model, data, n_bootstrap, seed):
    from rnnprobe.analysis import bootstrap_subjects

    _only_rnnprobe_errors(lambda: bootstrap_subjects(model, data, n_bootstrap=n_bootstrap, seed=seed, progress=False))


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 6), st.integers(1, 3))), numbers, numbers, counts)
def test_find_fixed_points_settings(starts, tol, outlier_distance, max_iter):
    from rnnprobe.analysis import find_fixed_points

    _only_rnnprobe_errors(lambda: find_fixed_points(lambda x, u: 0.5 * x + u, initial_states=starts, tol=tol,
                                                    outlier_distance=outlier_distance, max_iter=max_iter,
                                                    progress=False))  # fmt: skip


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 8), st.integers(1, 6), st.integers(1, 3))), arrays(), st.one_of(counts, st.lists(counts, max_size=3)), counts)  # fmt: skip  # noqa: E501
def test_memory_decay(states, inputs, lags, cv):
    from rnnprobe.analysis import memory_decay

    _only_rnnprobe_errors(lambda: memory_decay(Recording({"h": states}), "h", inputs, lags=lags, cv=cv))


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 3), st.integers(0, 12))), arrays(st.tuples(st.integers(1, 5), st.integers(0, 12))), st.sampled_from(["conditions", "both"]), counts, numbers)  # fmt: skip  # noqa: E501
@example(model=np.zeros((3, 3)), data=np.zeros((3, 3)), kind="conditions", n_bootstrap=1, seed=0)  # constant RDMs
@example(model=np.array([[0.0, 1.0]] * 2), data=np.array([[0.0, 1.0]] * 2), kind="both", n_bootstrap=1, seed=2)
@example(model=np.array([[0.0, 1.0]] * 2), data=np.array([[0.0, 1.0]] * 2), kind="conditions", n_bootstrap=2, seed=2)
# (2 dissimilarities are no RDM's upper triangle: resampling conditions refuses them)
def test_bootstrap_conditions(model, data, kind, n_bootstrap, seed):
    from rnnprobe.analysis import bootstrap_conditions, bootstrap_conditions_and_subjects

    function = bootstrap_conditions if kind == "conditions" else bootstrap_conditions_and_subjects
    result = _only_rnnprobe_errors(lambda: function(model, data, n_bootstrap=n_bootstrap, seed=seed, progress=False))
    if result is not None:
        assert np.isfinite(result.evaluations).any()


@SETTINGS
@given(arrays(st.tuples(st.integers(2, 8), st.integers(1, 3), st.integers(1, 4))), arrays(), st.sampled_from([None, "label", "nope", 3]), st.sampled_from([None, ["pca"], ["rdms", "rsa"], ["decoding"], ["x"], "pca"]))  # fmt: skip  # noqa: E501
def test_compare_models(states, neural, target, analyses):
    from rnnprobe.analysis import compare_models

    labels = np.arange(states.shape[0]) % 2
    neural = neural if np.ndim(neural) == 1 and np.size(neural) else None

    def run():
        recordings = {"a": Recording({"h": states}, metadata={"label": labels}), "b": Recording({"h": states[::-1]})}
        return compare_models(recordings, target=target, neural=neural, analyses=analyses, cv=2, progress=False)

    _only_rnnprobe_errors(run)


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 8), st.integers(1, 3), st.integers(1, 4))), arrays(), st.sampled_from(["shape", "cca", "svcca", "pwcca", "cka", "debiased_cka", "rbf_cka", "x", None]), numbers, st.one_of(st.none(), counts))  # fmt: skip  # noqa: E501
def test_compare_representations(a, b, metric, alpha, cv):
    from rnnprobe.analysis import compare_representations

    result = _only_rnnprobe_errors(lambda: compare_representations(a, b, metric=metric, alpha=alpha, cv=cv))
    if result is not None:
        assert np.isfinite(result.values).all()


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 8), st.integers(1, 4))), arrays(st.tuples(st.integers(1, 8), st.integers(1, 4))), st.sampled_from(["shape", "cka", "cca"]), counts)  # fmt: skip  # noqa: E501
@example(a=np.zeros((2, 1)), b=np.zeros((2, 3)), metric="cca", n_jobs=1)  # constant: an IndexError before
def test_pairwise_distances(a, b, metric, n_jobs):
    from rnnprobe.analysis import pairwise_distances

    result = _only_rnnprobe_errors(lambda: pairwise_distances({"a": a, "b": b, "c": a}, metric=metric, n_jobs=n_jobs))
    if result is not None:
        assert np.isfinite(result.distances).all() and np.isfinite(result.embedding).all()


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 10), st.integers(1, 4))), arrays(), st.sampled_from(["ridge", "pls", "x", 3]), st.one_of(counts, st.just([(np.arange(3), np.arange(3, 6))])))  # fmt: skip  # noqa: E501
def test_fit_encoding(features, responses, estimator, cv):
    from rnnprobe.analysis import fit_encoding

    _only_rnnprobe_errors(lambda: fit_encoding(features, responses, estimator=estimator, cv=cv, n_splits=5))


@SETTINGS
@given(arrays(), counts, st.one_of(st.none(), counts), numbers)
def test_split_half_reliability(trials, n_splits, n_repetitions, seed):
    from rnnprobe.analysis import split_half_reliability

    _only_rnnprobe_errors(lambda: split_half_reliability(trials, n_splits=n_splits, n_repetitions=n_repetitions,
                                                         seed=seed))  # fmt: skip


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(1, 7))), counts, st.one_of(st.none(), numbers), st.one_of(st.none(), numbers))  # fmt: skip  # noqa: E501
def test_fit_jpca(states, n_components, soft_normalize, dt):
    from rnnprobe.analysis import fit_jpca

    def run():
        return fit_jpca(Recording({"h": states}), n_components=n_components, soft_normalize=soft_normalize, dt=dt)

    result = _only_rnnprobe_errors(run)
    if result is not None:
        assert np.isfinite([result.r2, result.r2_skew]).all()


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 8), st.integers(1, 3), st.integers(1, 3))), st.sampled_from(["a", ["a", "b"], [], "x", 3]), counts)  # fmt: skip  # noqa: E501
def test_condition_average(states, by, min_trials):
    from rnnprobe.analysis import condition_average

    def run():
        n = len(states)
        rec = Recording({"h": states}, metadata={"a": np.arange(n) % 2, "b": np.arange(n) % 3})
        return condition_average(rec, by, min_trials=min_trials, sem=True)

    _only_rnnprobe_errors(run)


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 4))), counts, counts, numbers, st.sampled_from(["angular", "euclidean", "wasserstein", "x"]))  # fmt: skip  # noqa: E501
def test_compare_dynamics(states, n_delays, rank, ridge, metric):
    from rnnprobe.analysis import compare_dynamics

    def run():
        return compare_dynamics(states, states[::-1], n_delays=n_delays, rank=rank, ridge=ridge, metric=metric,
                                n_init=2)  # fmt: skip

    result = _only_rnnprobe_errors(run)
    if result is not None:
        assert np.isfinite(result.distance) and result.distance >= 0


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 12), st.integers(1, 3), st.integers(1, 3))), st.sampled_from([["a"], ["a", "b"], "a", [], ["x"]]), counts)  # fmt: skip  # noqa: E501
def test_fit_tdr(states, variables, n_components):
    from rnnprobe.analysis import fit_tdr

    n = states.shape[0]
    meta = {"a": np.arange(n) % 2, "b": (np.arange(n) // 2) % 3}

    def run():
        return fit_tdr(Recording({"h": states}, metadata=meta), variables=variables, n_components=n_components)

    result = _only_rnnprobe_errors(run)
    if result is not None:
        assert np.isfinite(result.axes).all() and np.isfinite(result.projections).all()


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 12), st.integers(1, 4), st.integers(1, 3))), st.sampled_from([["a"], ["a", "b"], "a", ["x"]]), counts, st.sampled_from([0.0, 1e-3, "auto", -1.0, np.nan]))  # fmt: skip  # noqa: E501
def test_fit_dpca(states, parameters, n_components, regularizer):
    from rnnprobe.analysis import fit_dpca

    n = states.shape[0]
    meta = {"a": np.arange(n) % 2, "b": (np.arange(n) // 2) % 2}

    def run():
        return fit_dpca(Recording({"h": states}, metadata=meta), parameters=parameters, n_components=n_components,
                        regularizer=regularizer, n_splits=1)  # fmt: skip

    result = _only_rnnprobe_errors(run)
    if result is not None:
        assert all(np.isfinite(v).all() for v in result.decoders.values())


@SETTINGS
@given(arrays(st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(0, 4))), arrays(st.tuples(st.integers(0, 7))), arrays(st.tuples(st.integers(0, 5))), st.sampled_from(["entropy", "probability", "x"]))  # fmt: skip  # noqa: E501
def test_speed_accuracy_curve(logits, labels, flops, criterion):
    from rnnprobe.analysis import speed_accuracy_curve

    thresholds = np.linspace(0.05, 1, 7)
    result = _only_rnnprobe_errors(
        lambda: speed_accuracy_curve(logits, labels, flops, thresholds=thresholds, criterion=criterion)
    )
    if result is not None:  # a stricter threshold never stops earlier, so it never costs less
        later = result.stop_steps[:-1] >= result.stop_steps[1:] if criterion == "entropy" else (
            result.stop_steps[:-1] <= result.stop_steps[1:])  # fmt: skip
        assert later.all() and np.isfinite(result.mean_flops).all()
        assert ((0 <= result.accuracy) & (result.accuracy <= 1)).all()


@SETTINGS
@given(st.sampled_from(["zero", "clamp", "noise", "scale", "project_out", "mean", "x"]), numbers, counts, counts)
def test_interventions(kind, value, unit, step):
    import torch

    from rnnprobe import record
    from rnnprobe.models import VanillaRNN
    from rnnprobe.recording import Intervention

    torch.manual_seed(0)
    model, x = VanillaRNN(2, 4, 1), torch.randn(3, 5, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def run():
        return record(model, x, progress=False,
                      interventions=Intervention("l0.h", kind, units=[unit], steps=[step], value=value))  # fmt: skip

    _only_rnnprobe_errors(run)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.rnn._forward_hooks and not model.taps[0]["h"]._forward_hooks
