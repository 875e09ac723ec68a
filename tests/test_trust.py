"""Silently wrong numbers, each a regression test of a case that gave a plausible wrong answer before:
NaN states, NaN statistics with p-values, unchecked settings, merged or changed inputs, duplicate fixed
points."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from rnnprobe import Recording, concat
from rnnprobe.analysis import (
    bootstrap_subjects,
    compute_rdms,
    decode,
    find_fixed_points,
    fit_pca,
    fit_timescales,
    hash_recording,
    participation_ratio,
    permutation_test,
)
from rnnprobe.errors import ArgumentError, ArgumentTypeError, NonFiniteError
from rnnprobe.models import GRU
from rnnprobe.models.training import train
from rnnprobe.tasks import FlipFlop
from rnnprobe.testing import make_recording


@pytest.fixture
def labelled(rng):
    return make_recording(120, 6, 6, n_classes=2, onset=2, signal=2.0, seed=rng)


def test_one_nan_state_is_refused_not_decoded_at_chance(labelled):
    states = labelled.get("h").copy()
    states[7, 3, 2] = np.nan
    rec = Recording({"h": states}, metadata={"label": labelled.column("label")})
    for estimator in ("ridge", "logistic"):
        with pytest.raises(NonFiniteError, match=r"layer 'h' holds 1 non-finite value\(s\) .* first at \(7, 3, 2\)"):
            decode(rec, "h", "label", estimator=estimator)
    all_nan = Recording({"h": np.full((40, 3, 4), np.nan)}, metadata={"value": np.linspace(0.05, 2.0, 40)})
    with pytest.raises(NonFiniteError, match="480 non-finite"):
        decode(all_nan, "h", "value", n_permutations=99)  # no NaN scores with p = 0.01


@pytest.mark.parametrize("analysis", [compute_rdms, fit_pca, fit_timescales, hash_recording])
def test_every_analysis_of_states_refuses_non_finite_values(analysis, labelled):
    states = labelled.get("h").copy()
    states[0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="layer 'h'"):
        analysis(Recording({"h": states}), "h")
    with pytest.raises(NonFiniteError, match="states"):
        participation_ratio(states)


def test_find_fixed_points_refuses_non_finite_recorded_starts():
    states = np.zeros((4, 3, 2))
    states[1, 1, 1] = np.nan
    with pytest.raises(NonFiniteError, match="initial_states: layer 'h'"):
        find_fixed_points(lambda x, u: 0.5 * x, initial_states=Recording({"h": states}), layer="h")


def test_a_nan_statistic_gets_no_p_value(rng):
    data = rng.random((3, 45))
    with pytest.raises(ArgumentError, match=r"RDM\(s\) \[0\] are constant.*no p-value"):
        permutation_test(np.ones(45), data, n_permutations=999)
    with pytest.raises(ArgumentError, match="are all zero"):
        permutation_test(np.zeros((1, 45)), data, comparison="cosine", n_permutations=9)
    with pytest.raises(ArgumentError, match=r"data: RDM\(s\) \[1\] are constant"):
        permutation_test(rng.random(45), np.stack([data[0], np.ones(45)]), n_permutations=9)


@pytest.mark.parametrize("alpha", [np.nan, np.inf, -1.0, "1"])
def test_decode_penalty_is_checked(labelled, alpha):
    with pytest.raises(ArgumentError, match="alpha: got"):
        decode(labelled, "h", "label", alpha=alpha)


def test_logistic_needs_a_positive_penalty(labelled):
    for estimator in ("ridge", "logistic"):  # 0 would be unregularised and singular on wide layers
        with pytest.raises(ArgumentError, match=r"alpha: got 0\.0\. Pass a finite number > 0"):
            decode(labelled, "h", "label", estimator=estimator, alpha=0.0)


@pytest.mark.parametrize("value", [np.nan, -1.0, 0.0])
def test_find_fixed_points_outlier_distance_is_checked(value):
    with pytest.raises(ArgumentError, match="outlier_distance: got"):
        find_fixed_points(lambda x, u: 0.5 * x, initial_states=np.zeros((3, 2)), outlier_distance=value)


@pytest.mark.parametrize(
    ("setting", "value"), [("lr", np.inf), ("lr", 0.0), ("clip_grad", np.nan), ("clip_grad", -1.0)]
)
def test_train_settings_are_checked(setting, value):
    model = GRU(3, 4, 3)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ArgumentError, match=f"{setting}: got"):
        train(model, FlipFlop(3), steps=2, progress=False, **{setting: value})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # untouched


@pytest.mark.parametrize("dt", [-1.0, 0.0, np.nan])
def test_timescale_dt_is_checked(labelled, dt):
    with pytest.raises(ArgumentError, match="dt: got"):
        fit_timescales(labelled, "h", dt=dt)


def test_confidence_level_is_checked(rng):
    truth = rng.random(45)
    result = bootstrap_subjects(truth, truth + rng.normal(0, 0.3, size=(4, 45)), n_bootstrap=20, progress=False)
    for level in (-1, 0, 1, 1.5):
        with pytest.raises(ArgumentError, match="level: got"):
            result.confidence_interval(level)


def test_layer_and_column_names_are_never_merged():
    a, b = np.zeros((2, 1, 1)), np.ones((2, 1, 1))
    with pytest.raises(ArgumentTypeError, match="layer names must be non-empty strings, got 1"):
        Recording({1: a, "1": b})
    frame = pd.DataFrame({0: [1, 2], "0": [3, 4]})
    with pytest.raises(ArgumentTypeError, match="column names must be strings, got 0"):
        Recording({"h": a}, metadata=frame)


def test_a_mixed_column_keeps_its_values():
    rec = Recording({"h": np.zeros((2, 1, 1))}, metadata={"id": [1, "a"]})
    assert rec.column("id").tolist() == [1, "a"]  # not the strings "1", "a"
    strings = Recording({"h": np.zeros((2, 1, 1))}, metadata={"id": ["x", "y"]})
    assert strings.column("id").dtype.kind == "U"


def test_concat_keeps_every_models_provenance():
    a = Recording({"h": np.zeros((2, 1, 1))}, provenance={"model_class": "A"})
    b = Recording({"h": np.ones((3, 1, 1))}, provenance={"model_class": "B"})
    both = concat([a, b]).provenance
    assert both["concatenated_from"] == 2 and [p["model_class"] for p in both["parts"]] == ["A", "B"]
    same = concat([a, a]).provenance
    assert same == {"model_class": "A", "concatenated_from": 2}


def test_with_metadata_adds_a_column(tmp_path):
    rec = make_recording(5, 2, 3)
    added = rec.with_metadata(choice=[1, 0, 1, 1, 0])
    assert added.columns == ["label", "choice"] and rec.columns == ["label"]
    lazy = Recording.load(added.save(tmp_path / "r.zarr"))
    replaced = lazy.with_metadata({"label": np.zeros(5, dtype=int)})
    assert replaced.is_lazy and replaced.column("label").tolist() == [0] * 5
    with pytest.raises(ArgumentError, match="there are 5 stimuli"):
        rec.with_metadata(choice=[1, 2])


def test_near_duplicate_fixed_points_are_merged_after_polishing(rng):
    starts = rng.normal(size=(200, 3)) * 10
    result = find_fixed_points(lambda x, u: 0.5 * x + u, inputs=[1.0], initial_states=starts, tol=1e-4,
                               initial_damping=1.0)  # fmt: skip
    assert len(result.states) == 1 and result.n_duplicates == 199  # was 166 "distinct" points 1e-16 apart
    np.testing.assert_allclose(result.states[0], 2.0, atol=1e-12)


def test_clear_errors_instead_of_raw_crashes(tmp_path, rng):
    from rnnprobe.errors import ShapeError, StoreFormatError
    from rnnprobe.neural import load_rdms, rdms_from_matrices
    from rnnprobe.report import Report

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(StoreFormatError, match="holds pickled Python objects, which rnnprobe never loads"):
        load_rdms(tmp_path / "objects.npy")
    for bad in (np.zeros((1, 1)), np.float64(3.0), np.zeros((2, 1, 1))):
        with pytest.raises(ShapeError, match="holds no dissimilarity"):
            rdms_from_matrices(bad)
    with pytest.raises(ArgumentTypeError, match="path: got 5"):
        Report().save(5)
    weird = fit_pca(Recording({"$x^$": rng.normal(size=(20, 3, 4))}))  # mathtext-breaking layer name
    report = Report()
    report.add_result(weird)
    assert report.save(tmp_path / "r.html").stat().st_size > 0
    flat = fit_pca(Recording({"h": np.ones((1, 3, 4))}), n_components=1).summary()  # one stimulus
    assert flat["participation ratio (max)"] is None and flat["steps without variance"] == 3
    assert fit_pca(Recording({"h": rng.normal(size=(20, 3, 4))})).n_components == 4  # default: at most 10


def test_bfloat16_models_record_as_float32_and_meta_models_are_refused():
    from rnnprobe import Tap, record

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), Tap()).to(torch.bfloat16)
    x = torch.randn(5, 3)
    rec = record(model, x, progress=False)
    assert rec.dtypes["1"] == np.float32
    with torch.no_grad():
        expected = model(x.to(torch.bfloat16)).float().numpy()
    np.testing.assert_array_equal(rec.get("1", time=0), expected)  # exact: float32 holds every bfloat16
    with torch.device("meta"):
        ghost = torch.nn.Sequential(torch.nn.Linear(3, 4), Tap())
    with pytest.raises(ArgumentError, match="meta device"):
        record(ghost, x, progress=False)


def _with_missing(rng, missing):
    """20 stimuli whose 'label' misses one value (NaN, or None in an object column), and complete columns."""
    label = np.repeat([0.0, 1.0], 10) if missing is np.nan else np.array(["a", "b"] * 10, dtype=object)
    label[3] = missing
    meta = {"label": label, "ok": np.repeat([0, 1], 10), "run": np.tile([0, 1], 10)}
    return Recording({"h": rng.normal(size=(20, 3, 6))}, metadata=meta)


@pytest.mark.parametrize("missing", [np.nan, None])
def test_a_missing_value_names_no_condition(rng, missing):
    """Grouping by a column with a missing value: numpy made NaN a condition of its own (and Python's grouping one
    condition per NaN; scikit-learn's group splitters raised their own ValueError); every analysis that groups
    stimuli by a column refuses it, naming the argument."""
    from rnnprobe.analysis import condition_average, fit_dpca, fit_encoding, fit_tdr, intervention_effect, noise_ceiling

    rec = _with_missing(rng, missing)
    neural = Recording({"n": rng.normal(size=(20, 1, 3))}, metadata={"label": rec.column("label")})
    calls = {
        "descriptor 'label'": [lambda: compute_rdms(rec, "h", descriptor="label"),
                               lambda: compute_rdms(rec, "h", distance="crossnobis", descriptor="label",
                                                    cv_descriptor="run"),
                               lambda: fit_encoding(rec, neural, descriptor="label", progress=False)],
        "cv_descriptor": [lambda: compute_rdms(rec, "h", distance="crossnobis", descriptor="ok",
                                               cv_descriptor="label")],
        "by 'label'": [lambda: condition_average(rec, ["ok", "label"])],
        "conditions 'label'": [lambda: fit_tdr(rec, "h", variables=["ok"], conditions=["label"])],
        "parameters 'label'": [lambda: fit_dpca(rec, parameters=["ok", "label"], n_components=2)],
        "groups": [lambda: decode(rec, "h", "ok", groups="label", cv=2, progress=False),
                   lambda: fit_encoding(rec, rng.normal(size=(20, 3)), groups="label", cv=2, progress=False),
                   lambda: noise_ceiling(rng.random((20, 15)), groups=rec.column("label"))],
        "conditions": [lambda: intervention_effect(GRU(3, 8, 2), rng.normal(size=(20, 5, 3)), [], layers=["l0.h"],
                                                   score="mean_abs_output", conditions=rec.column("label"))],
        "stratify": [lambda: fit_encoding(rec, rng.normal(size=(20, 3)), stratify="label", cv=2, progress=False)],
    }  # fmt: skip
    for name, functions in calls.items():
        for call in functions:
            with pytest.raises(ArgumentError, match=rf"{name}: 1 value\(s\) are missing \(NaN or None\)"):
                call()


def test_a_map_that_is_not_finite_at_the_starts_is_refused(rng):
    """A model with a NaN weight: every candidate ended unconverged and the result said 'no fixed points', as if
    the map had none; a map that overflows at one start (exp of a large state) is refused too, naming the count."""
    model = GRU(3, 8, 2)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="model: its step gives NaN or inf at 4 of the 4 starts"):
        find_fixed_points(model, initial_states=rng.normal(size=(4, 8)), progress=False)

    def overflowing(x, u):
        return torch.exp(x) * 0.1

    starts = rng.normal(size=(5, 2))
    starts[3] = 800.0
    with pytest.raises(NonFiniteError, match=r"at 1 of the 5 starts \(first at start 3\)"):
        find_fixed_points(overflowing, inputs=[0.0], initial_states=starts, progress=False)
    assert find_fixed_points(overflowing, inputs=[0.0], initial_states=np.delete(starts, 3, 0), progress=False)


def test_whether_an_array_is_a_square_rdm_does_not_depend_on_its_scale(rng, tmp_path):
    """Symmetry and a zero diagonal are judged relative to the values' scale: 6 RDM vectors of 4 conditions at
    1e-10, the k-th one's k-th pair 0, passed numpy's absolute atol as one symmetric 6 x 6 RDM and were read as a
    single RDM of 6 conditions; a square RDM at 1e6 whose diagonal holds rounding (1e-9) was refused."""
    from rnnprobe.analysis.alignment.pairwise import classical_mds
    from rnnprobe.errors import ShapeError
    from rnnprobe.neural import load_rdms

    stack = rng.random((6, 6)) * 1e-10
    np.fill_diagonal(stack, 0.0)
    np.save(tmp_path / "stack.npy", stack)
    with pytest.raises(ShapeError, match="could be 6 RDMs of 6 pairs"):
        load_rdms(tmp_path / "stack.npy")
    np.testing.assert_array_equal(load_rdms(tmp_path / "stack.npy", layout="vectors").dissimilarities, stack)
    square = rng.random((5, 5)) * 1e6
    square = square + square.T
    np.fill_diagonal(square, 1e-9)
    np.save(tmp_path / "square.npy", square)
    i, j = np.triu_indices(5, 1)
    np.testing.assert_array_equal(load_rdms(tmp_path / "square.npy").dissimilarities[0], square[i, j])
    with pytest.raises(ShapeError, match="symmetric"):
        classical_mds(stack[:4, :4])
    assert classical_mds(square).shape == (5, 2)
    # infinities: equal ones are symmetric (no 'invalid value' warning from inf - inf; the scale from the finite
    # values), unequal ones are not
    from rnnprobe._validation import symmetric_with_zero_diagonal

    infinite = square.copy()
    np.fill_diagonal(infinite, 0.0)
    infinite[0, 1] = infinite[1, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert symmetric_with_zero_diagonal(infinite)
        infinite[1, 0] = 3.0
        assert not symmetric_with_zero_diagonal(infinite)


def test_seeded_runs_leave_every_random_generator_as_it_was(monkeypatch):
    """record(seed=), train(seed=) and a recipe's build(seed) seed torch's CPU generator inside a fork of it.
    They called torch.manual_seed, which also seeds every CUDA device, and where CUDA is not initialised yet
    queues that seeding for when it is: a later CUDA program of the user's started from the recording's seed.
    The same numbers on the CPU as before (seeded runs repeat; the CPU state comes back)."""
    import copy

    from rnnprobe import record
    from rnnprobe.models.recipes import RECIPES
    from rnnprobe.recording import Intervention

    def refuse(*args, **kwargs):
        raise AssertionError("a CUDA generator was seeded")

    monkeypatch.setattr(torch.cuda, "manual_seed_all", refuse)
    monkeypatch.setattr(torch.cuda, "manual_seed", refuse)
    model, x = GRU(2, 8, 2), torch.randn(4, 5, 2)
    before = torch.get_rng_state()
    noisy = Intervention.noise("l0.h", 0.5)
    runs = [record(model, x, seed=3, interventions=noisy, progress=False)["l0.h"] for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    losses = [train(copy.deepcopy(model), FlipFlop(2, n_steps=10), steps=2, seed=5, progress=False).loss
              for _ in range(2)]  # fmt: skip
    assert losses[0] == losses[1]
    built = [next(iter(RECIPES.values())).build(7)[0] for _ in range(2)]
    for a, b in zip(built[0].parameters(), built[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)
