"""dPCA: equal to the dPCA package (live where installed, stored values elsewhere), marginalisations by their
defining properties, the held-out error against an explicit leave-one-unit-out loop, unbalanced trial counts,
significance on planted data, and bad input."""

import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.analysis import dpca_significance, fit_dpca
from rnnprobe.analysis.dpca import core
from rnnprobe.errors import ArgumentError, NonFiniteError, ShapeError, UnknownNameError
from rnnprobe.testing import assert_components_equal

NAMES = {"t": "time", "s": "stimulus", "d": "decision", "sd": "stimulus x decision"}
# dPCA package 1.0.5 (n_iter=50), on _task(), join = each set with its time interaction, 2 components
STORED = {
    0.0: {"t": [0.111403272535, 0.00076259719], "s": [0.639502760067, 0.001516459609],
          "d": [0.166485969091, 0.000575352952], "sd": [0.019489339031, 0.00161828674]},
    1e-3: {"t": [0.110523357969, 0.000698780552], "s": [0.638183253748, 0.001341123698],
           "d": [0.165293582874, 0.000504852005], "sd": [0.018699004716, 0.001444816155]},
}  # fmt: skip


def _task(seed=0, n_stimuli=3, n_times=12, n_units=9, reps=(6, 6), noise=0.3, onset=0):
    """Trials with time, stimulus, decision and interaction signals; ``reps``: trials per condition range."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(reps[0], reps[1] + 1, size=(n_stimuli, 2))
    stim = np.concatenate([np.full(counts[s, d], s) for s in range(n_stimuli) for d in range(2)])
    dec = np.concatenate([np.full(counts[s, d], d) for s in range(n_stimuli) for d in range(2)])
    t = np.linspace(0, 1, n_times)
    w = rng.normal(size=(4, n_units))
    ramp = np.where(np.arange(n_times) >= onset, t, 0.0)
    signal = (t[None, :, None] * w[0] + (stim - 1)[:, None, None] * ramp[None, :, None] * w[1]
              + (dec - 0.5)[:, None, None] * np.sin(3 * t)[None, :, None] * w[2]
              + ((stim - 1) * (dec - 0.5))[:, None, None] * w[3] * 0.5)  # fmt: skip
    return stim, dec, signal + noise * rng.normal(size=signal.shape)


def _recording(stim, dec, trials):
    return Recording({"h": trials}, metadata={"stimulus": stim, "decision": dec})


@pytest.mark.parametrize("regularizer", [0.0, 1e-3])
def test_explained_variance_equals_the_dpca_package_stored(regularizer):
    result = fit_dpca(_recording(*_task()), parameters=["stimulus", "decision"], n_components=2,
                      regularizer=regularizer)  # fmt: skip
    for key, expected in STORED[regularizer].items():
        np.testing.assert_allclose(result.explained_variance[NAMES[key]], expected, atol=1e-10)


@pytest.mark.parametrize(("regularizer", "join"), [(0.0, None), (1e-3, None), (0.0, "time"), (1e-2, "time")])
@pytest.mark.parametrize("n_units", [9, 80])  # fewer units than the 72 condition x time samples, and more (thin fits)
def test_decoders_and_encoders_equal_the_dpca_package_live(regularizer, join, n_units):
    pytest.importorskip("numba")
    pytest.importorskip("numexpr")
    dpca_module = pytest.importorskip("dPCA.dPCA")
    stim, dec, trials = _task(n_units=n_units)
    x = np.zeros((n_units, 3, 2, 12))  # the package's layout: (unit, stimulus, decision, time)
    for s in range(3):
        for d in range(2):
            x[:, s, d] = trials[(stim == s) & (dec == d)].mean(0).T
    joined = {"s": ["s", "st"], "d": ["d", "dt"], "sd": ["sd", "sdt"]} if join else None
    model = dpca_module.dPCA(labels="sdt", join=joined, n_components=3, regularizer=regularizer or None, n_iter=60)
    model.fit_transform(x)
    ours = fit_dpca(_recording(stim, dec, trials), parameters=["stimulus", "decision"], n_components=3, join=join,
                    regularizer=regularizer)  # fmt: skip
    names = {**NAMES, "st": "stimulus x time", "dt": "decision x time", "sdt": "stimulus x decision x time"}
    assert set(ours.decoders) == {names[k] for k in model.marginalizations}
    for key in model.marginalizations:
        name = names[key]
        # components are defined up to sign, and only within the marginalisation's rank (a stimulus-only
        # marginalisation of 3 stimuli has rank 2: a third component is any direction, explaining nothing)
        defined = ours.explained_variance[name] > 1e-12
        assert_components_equal([ours.decoders[name], ours.encoders[name]], [model.D[key], model.P[key]],
                                columns=defined, atol=1e-9)  # fmt: skip
        np.testing.assert_allclose(ours.explained_variance[name], model.explained_variance_ratio_[key], atol=1e-12)


@pytest.mark.parametrize("mu", [0.0, 1e-2, 3.0])
def test_thin_fit_equals_the_unit_by_unit_reduced_rank_regression(rng, mu):
    """More units than samples: fit_all's samples-dimension solution equals the explicit unit x unit one (its
    target C R C' with C = X_phi X' R^-1, or X_phi X^+ unregularised; R = X X' + mu I) on components whose
    eigenvalues are distinct and nonzero."""
    x = rng.normal(size=(60, 24))
    x -= x.mean(axis=1, keepdims=True)  # centred, as dPCA's data: rank 23
    marginal = x @ np.kron(np.eye(6), np.ones((4, 4)) / 4)  # averaged over blocks of 4 samples: rank 6
    regularized = x @ x.T + mu * np.eye(60)
    c = marginal @ x.T @ np.linalg.inv(regularized) if mu > 0 else marginal @ np.linalg.pinv(x)
    values, vectors = np.linalg.eigh(c @ regularized @ c.T)
    top = vectors[:, ::-1][:, :5]
    assert np.all(np.diff(values[::-1][:6]) < -1e-6 * values.max())  # distinct, the 5th above zero
    regularizer = np.sqrt(mu) / np.vdot(x, x)  # fit_all's mu = (regularizer ||X||^2)^2
    encoders, decoders = core.fit_all(x, {"m": marginal}, regularizer, {"m": 5})
    encoder, decoder = encoders["m"], decoders["m"]
    assert_components_equal([encoder, decoder], [top, c.T @ top], atol=1e-10)
    np.testing.assert_allclose(encoder.T @ encoder, np.eye(5), atol=1e-12)


def test_marginalizations_sum_to_the_data_and_average_to_zero_over_their_own_parameters(rng):
    x = rng.normal(size=(5, 3, 4, 6))
    x -= x.reshape(5, -1).mean(1)[:, None, None, None]
    axes = ["a", "b", "time"]
    parts = core.marginalize(x, axes, core.marginalization_names(["a", "b"], None))
    assert len(parts) == 7
    np.testing.assert_allclose(sum(parts.values()), x, atol=1e-12)
    for name, part in parts.items():
        used = name.split(" x ")
        for k, axis in enumerate(axes):  # constant along the parameters it does not depend on
            if axis not in used:
                np.testing.assert_allclose(np.ptp(part, axis=k + 1), 0, atol=1e-12)
            else:  # and zero on average along each of its own
                np.testing.assert_allclose(part.mean(axis=k + 1), 0, atol=1e-12)


def test_held_out_error_equals_a_leave_one_unit_out_loop(rng):
    x = rng.normal(size=(6, 3, 5))
    x -= x.reshape(6, -1).mean(1)[:, None, None]
    groups = core.marginalization_names(["s"], "time")
    marginals = core.marginalize(x, ["s", "time"], groups)
    encoders, decoders = core.fit_all(x, marginals, 1e-2, {"s": 2, "time": 2})
    errors = core.held_out_error(x, marginals, encoders, decoders)
    flat = x.reshape(6, -1)
    for name in groups:
        mapping = encoders[name] @ decoders[name].T
        total = 0.0
        for n in range(6):
            others = np.arange(6) != n
            prediction = mapping[n, others] @ flat[others]
            total += np.sum((marginals[name].reshape(6, -1)[n] - prediction) ** 2)
        assert errors[name] == pytest.approx(total, rel=1e-12)


def test_unbalanced_trials_weigh_conditions_equally_and_cross_validate():
    stim, dec, trials = _task(seed=3, reps=(3, 14))
    rec = _recording(stim, dec, trials)
    result = fit_dpca(rec, parameters=["stimulus", "decision"], regularizer="auto", n_splits=2, seed=1)
    assert result.counts.min() < result.counts.max()
    means = np.stack([[trials[(stim == s) & (dec == d)].mean(0) for d in range(2)] for s in range(3)])
    grid = {"stimulus": np.repeat(np.arange(3), 2), "decision": np.tile(np.arange(2), 3)}
    balanced = Recording({"h": means.reshape(6, 12, 9)}, metadata=grid)
    reference = fit_dpca(balanced, parameters=["stimulus", "decision"], regularizer=result.regularizer)
    for name in result.decoders:
        np.testing.assert_allclose(result.decoders[name], reference.decoders[name], atol=1e-10)
    assert result.cv_scores.shape == result.regularizers.shape == (45,)
    assert result.regularizer == result.regularizers[np.argmin(result.cv_scores)]


def test_more_noise_chooses_more_regularization():
    chosen = []
    for noise in (0.05, 3.0):
        stim, dec, trials = _task(seed=5, reps=(4, 4), noise=noise, n_units=20)
        chosen.append(fit_dpca(_recording(stim, dec, trials), parameters=["stimulus", "decision"],
                               regularizer="auto", n_splits=3).regularizer)  # fmt: skip
    assert chosen[1] > 3 * chosen[0]


def test_significance_finds_a_planted_onset_and_handles_unbalanced_trials():
    stim, dec, trials = _task(seed=2, reps=(5, 9), noise=0.4, onset=6)
    rec = _recording(stim, dec, trials)
    result = dpca_significance(rec, fit_dpca(rec, parameters=["stimulus", "decision"], n_components=1),
                               n_shuffles=49, n_splits=10, seed=0)  # fmt: skip
    stimulus = result.significance["stimulus"][0]  # p < 0.02 at each of 12 times: a false positive may occur
    assert stimulus[:6].sum() <= 1 and stimulus[7:].all(), stimulus
    assert "time" not in result.significance
    assert result.plot() is not None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"parameters": ["speed"]}, UnknownNameError, "not a metadata column"),
        ({"parameters": ["stimulus", "time"]}, ArgumentError, "time is always"),
        ({"parameters": ["constant"]}, ArgumentError, "one value"),
        ({"parameters": ["stimulus", "partial"]}, ShapeError, "empty condition"),
        ({"parameters": "stimulus", "n_components": 50}, ArgumentError, "n_components"),
        ({"parameters": "stimulus", "join": {"both": ["stimulus", "colour"]}}, UnknownNameError, "colour"),
        ({"parameters": "stimulus", "regularizer": -1.0}, ArgumentError, "regularizer"),
        ({"parameters": "stimulus", "regularizer": "auto", "regularizers": [np.nan]}, ArgumentError, "regularizers"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, error, match):
    stim, dec, trials = _task(reps=(2, 2))
    rec = _recording(stim, dec, trials).with_metadata(constant=np.ones(len(stim)), partial=np.minimum(stim, dec))
    with pytest.raises(error, match=match):
        fit_dpca(rec, **kwargs)


def test_auto_needs_two_trials_per_condition_and_finite_states():
    stim, dec, trials = _task(reps=(1, 1))
    with pytest.raises(ShapeError, match="2 or more"):
        fit_dpca(_recording(stim, dec, trials), parameters=["stimulus", "decision"], regularizer="auto")
    trials[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        fit_dpca(_recording(stim, dec, trials), parameters="stimulus")


def test_significance_refuses_non_finite_states():
    stim, dec, trials = _task(reps=(3, 3))
    result = fit_dpca(_recording(stim, dec, trials), parameters=["stimulus", "decision"], n_components=1)
    trials[2, 4, 1] = np.nan
    with pytest.raises(NonFiniteError):
        dpca_significance(_recording(stim, dec, trials), result, n_shuffles=2, n_splits=2)


def test_held_out_splits_equal_brute_force_means_of_the_kept_trials():
    """One random trial per condition held out in each split: the draws are the generator's choices split by
    split, the training means (the sums less the held-out trial, over one trial fewer) equal the means of
    the kept trials computed directly, and the held-out trials are the drawn ones, in condition order."""
    from rnnprobe.analysis.dpca.core import trial_design
    from rnnprobe.analysis.dpca.trials import Trials, draw_held, split_means

    rng = np.random.default_rng(3)
    stimulus, decision = np.repeat([0, 1, 2], 7)[:-2], np.tile([0, 1], 11)[:19]
    trials = rng.normal(size=(19, 4, 5)) * 10 + 3
    design = trial_design({"stimulus": stimulus, "decision": decision})
    rec = Recording({"h": trials}, metadata={"stimulus": stimulus, "decision": decision})
    source = Trials(rec, "h", np.arange(4))
    (sums,) = source.sums([design])
    drawn = draw_held(design, 3, np.random.default_rng(5))
    draw = np.random.default_rng(5)  # split by split, a trial of each condition cell in turn
    members = [np.flatnonzero(design.cells == cell) for cell in range(design.counts.size)]
    np.testing.assert_array_equal(drawn, [[draw.choice(m) for m in members] for _ in range(3)])
    splits = list(source.held_out(drawn))
    assert len(splits) == 3
    for split, held_trials in enumerate(splits):
        train, held = split_means(sums, held_trials, design)
        for cell, out in enumerate(drawn[split]):
            s, d = np.unravel_index(cell, design.shape)
            kept = trials[np.setdiff1d(members[cell], [out])].mean(axis=0)  # (time, unit)
            np.testing.assert_allclose(train[:, s, d, :], kept.T, rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(held[:, s, d, :], trials[out].T)


@pytest.mark.parametrize("n_units", [5, 40])  # fewer units than the 24 samples (unit x unit fits), more (thin fits)
@pytest.mark.parametrize("regularizer", [0.0, 1e-3])
def test_batched_fits_and_scores_equal_one_split_at_a_time(n_units, regularizer):
    """dpca_significance refits every split of every design as one batch of stacked solvers: the decoders equal
    fit_all's one split at a time (a design of all-zero states among them: mu = 0 beside mu > 0), and the
    accuracies equal a loop finding each held-out class's nearest training class mean."""
    from rnnprobe.analysis.dpca import significance
    from rnnprobe.analysis.dpca.fit import _centred
    from rnnprobe.analysis.dpca.trials import split_means

    rng = np.random.default_rng(4)
    stim, dec = np.repeat([0, 1, 2], 4), np.tile([0, 1], 6)
    design = core.trial_design({"stimulus": stim, "decision": dec})
    result = fit_dpca(_recording(stim, dec, rng.normal(size=(12, 4, n_units))), parameters=["stimulus", "decision"],
                      n_components=2, regularizer=regularizer)  # fmt: skip
    sums, held = rng.normal(size=(3, 6, 4, n_units)) * 3, rng.normal(size=(3, 2, 6, 4, n_units))  # 3 designs, 2 splits
    sums[1], held[1] = 0.0, 0.0
    axes, groups = ["stimulus", "decision", "time"], result.marginalizations
    components = {name: d.shape[1] for name, d in result.decoders.items()}
    names = [name for name in groups if name != "time"]
    batch = _centred(split_means(sums[:, None], held, design)[0], batch=2)
    _, batched = core.fit_all(batch, core.marginalize(batch, axes, groups), regularizer, components, batch=2)
    accuracies = significance._accuracies(sums, held, design, result, names)
    for d in range(3):
        for s in range(2):
            train, valid = (_centred(x) for x in split_means(sums[d], held[d, s], design))
            _, decoders = core.fit_all(train, core.marginalize(train, axes, groups), regularizer, components)
            for name in names:
                np.testing.assert_allclose(batched[name][d, s], decoders[name], rtol=1e-12, atol=1e-12)
                keep = {p for sets in groups[name] for p in sets} - {"time"}
                drop = tuple(1 + k for k, p in enumerate(axes[:2]) if p not in keep)
                z_train, z_valid = (np.einsum("uk,u...->k...", decoders[name], x) for x in (train, valid))
                z_train, z_valid = (z.mean(axis=drop).reshape(2, -1, 4) for z in (z_train, z_valid))
                expected = np.zeros((2, 4))
                for k in range(2):
                    for t in range(4):
                        for c in range(z_valid.shape[1]):
                            nearest = np.argmin(np.abs(z_valid[k, c, t] - z_train[k, :, t]))
                            expected[k, t] += (nearest == c) / z_valid.shape[1]
                np.testing.assert_allclose(accuracies[name][d, s], expected, rtol=0, atol=1e-12)
