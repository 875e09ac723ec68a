import numpy as np
import pytest

from rnnprobe import Recording, concat
from rnnprobe.errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError


@pytest.fixture
def rec(rng):
    return Recording(
        {"a": rng.normal(size=(6, 5, 2, 3)).astype("float32"), "b": rng.normal(size=(6, 4, 7))},
        metadata={"label": [0, 1, 2, 0, 1, 2], "cond": ["x", "y", "x", "y", "x", "y"]},
        times={"a": np.linspace(0, 1, 5)},
        provenance={"model_class": "Toy"},
    )


def test_properties(rec):
    assert rec.layers == ["a", "b"]
    assert rec.n_stimuli == len(rec) == 6
    assert rec.shapes == {"a": (6, 5, 2, 3), "b": (6, 4, 7)}
    assert rec.unit_shape("a") == (2, 3)
    np.testing.assert_array_equal(rec.times["a"], np.linspace(0, 1, 5))
    np.testing.assert_array_equal(rec.times["b"], np.arange(4))
    assert rec.columns == ["label", "cond"]
    assert rec.column("cond").dtype.kind == "U"
    assert list(rec.metadata.columns) == ["label", "cond"]
    assert rec.provenance == {"model_class": "Toy"}
    assert rec.nbytes == 6 * 5 * 6 * 4 + 6 * 4 * 7 * 8
    assert not rec.is_lazy
    assert "a" in rec and "zz" not in rec


def test_arrays_are_read_only(rec):
    with pytest.raises(ValueError):
        rec["a"][0, 0, 0, 0] = 1.0


def test_get_matches_numpy(rec):
    full = rec["a"]
    np.testing.assert_array_equal(rec.get("a", time=-1), full[:, -1])
    np.testing.assert_array_equal(rec.get("a", time=[0, 3], stimuli=[5, 1]), full[[5, 1]][:, [0, 3]])
    np.testing.assert_array_equal(rec.get("a", flatten=True), full.reshape(6, 5, 6))
    np.testing.assert_array_equal(rec.get("a", where={"cond": "y"}), full[[1, 3, 5]])
    np.testing.assert_array_equal(rec.get("a", where={"label": [0, 2]}), full[[0, 2, 3, 5]])
    np.testing.assert_array_equal(rec.get("a", query="label > 0 and cond == 'x'"), full[[2, 4]])
    mask = np.array([True, False] * 3)
    np.testing.assert_array_equal(rec.get("a", stimuli=mask, query="label != 2"), full[[0, 4]])


def test_select_keeps_everything_consistent(rec):
    sub = rec.select("a", stimuli=slice(1, 4), time=2)
    assert sub.shapes == {"a": (3, 1, 2, 3)}
    np.testing.assert_array_equal(sub.times["a"], [0.5])
    np.testing.assert_array_equal(sub.column("label"), [1, 2, 0])
    assert sub.provenance == rec.provenance
    both = rec.select(time=slice(-2, None))
    assert both.shapes == {"a": (6, 2, 2, 3), "b": (6, 2, 7)}
    np.testing.assert_array_equal(both.times["b"], [2, 3])


def test_flatten_units(rec):
    flat = rec.flatten_units()
    assert flat.shapes == {"a": (6, 5, 6), "b": (6, 4, 7)}
    np.testing.assert_array_equal(flat["a"], rec["a"].reshape(6, 5, 6))


def test_concat(rec):
    both = concat([rec, rec.select(stimuli=[0, 1])])
    assert both.n_stimuli == 8
    np.testing.assert_array_equal(both["b"], np.concatenate([rec["b"], rec["b"][:2]]))
    np.testing.assert_array_equal(both.column("cond"), list("xyxyxyxy"))
    assert both.provenance["concatenated_from"] == 2
    with pytest.raises(ArgumentError, match="has layers"):
        concat([rec, rec.select("a")])
    with pytest.raises(ShapeError, match=r"layer 'a' has times \[0\.  , 0\.25, 0\.5 \], but recordings\[0\] has"):
        concat([rec, rec.select(time=slice(0, 3))])
    meta = {"label": rec.column("label"), "cond": rec.column("cond")}
    shifted = Recording({"a": rec["a"], "b": rec["b"]}, metadata=meta,
                        times={"a": rec.times["a"], "b": rec.times["b"] + 0.5})  # fmt: skip
    with pytest.raises(ShapeError, match=r"layer 'b' has times \[0\.5, 1\.5, .*select the common ones"):
        concat([rec, shifted])
    wider = Recording({"a": rec["a"], "b": np.zeros((6, 4, 8))}, metadata=meta, times={"a": rec.times["a"]})
    with pytest.raises(ShapeError, match=r"layer 'b' has units of shape \(8,\), but recordings\[0\] has \(7,\)"):
        concat([rec, wider])
    with pytest.raises(ArgumentTypeError):
        concat([])


def test_repr(rec):
    text = repr(rec)
    assert text.startswith("<Recording: 6 stimuli, 2 layers, in memory>")
    assert "a  (6, 5, 2, 3)  float32" in text
    assert "metadata: label (int64), cond (<U1)" in text


def test_metadata_from_dataframe():
    import pandas as pd

    frame = pd.DataFrame({"label": [3, 4], "name": ["p", "q"]})
    rec = Recording({"h": np.zeros((2, 1, 1))}, metadata=frame)
    np.testing.assert_array_equal(rec.column("label"), [3, 4])
    assert rec.column("name").dtype.kind == "U"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"states": {}}, ArgumentError, "at least one layer"),
        ({"states": [1]}, ArgumentTypeError, "Pass a dict of layer name"),
        ({"states": {"h": [1, 2]}}, ArgumentTypeError, r"states\['h'\]: got \[1, 2\]"),
        ({"states": {"h": np.zeros(3)}}, ShapeError, "add a time axis"),
        ({"states": {"h": np.zeros((2, 1)), "g": np.zeros((3, 1))}}, ShapeError, "disagree on the number"),
        ({"metadata": {"label": [1, 2, 3]}}, ShapeError, r"metadata\['label'\].*there are 2 stimuli"),
        ({"metadata": [1, 2]}, ArgumentTypeError, "Pass a dict of column name"),
        ({"times": [0, 1, 2]}, ShapeError, "layer 'h' has 4 time steps"),
        ({"times": {"h": [0]}}, ShapeError, r"times\['h'\]"),
        ({"provenance": {"x": object()}}, ArgumentTypeError, "JSON-serialisable"),
    ],
)
def test_bad_construction(kwargs, error, match):
    args = {"states": {"h": np.zeros((2, 4, 3))}} | kwargs
    states = args.pop("states")
    with pytest.raises(error, match=match):
        Recording(states, **args)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.get("zz"), UnknownNameError, "'zz' is not in this recording. Recorded layers: 'a', 'b'"),
        (lambda r: r.get(), ArgumentError, "has 2 layers"),
        (lambda r: r.get("a", time=5), ArgumentError, "index 5 is out of range for an axis of length 5"),
        (lambda r: r.get("a", stimuli=[0, 9]), ArgumentError, r"indices \[9\] are out of range"),
        (lambda r: r.get("a", stimuli=[True, False]), ArgumentError, r"mask must have shape \(6,\)"),
        (lambda r: r.get("a", stimuli=True), ArgumentTypeError, "boolean True"),
        (lambda r: r.get("a", stimuli=[0.5]), ArgumentTypeError, "1-d list of ints"),
        (lambda r: r.get("a", where={"nope": 1}), UnknownNameError, "'nope' is not a metadata column"),
        (lambda r: r.get("a", where={"cond": "z"}), UnknownNameError, r"\['z'\] matches no stimulus in column 'cond'"),
        (lambda r: r.get("a", where={"label": "2"}), UnknownNameError, r"\['2'\] matches no stimulus.*3 and '3'"),
        (lambda r: r.select(where={"label": [0, 7]}), UnknownNameError, r"\[7\] matches no stimulus in column"),
        (lambda r: r.get("a", query="nope > 1"), ArgumentError, "could not be evaluated"),
        (lambda r: r.get("a", query="label + 1"), ArgumentError, "one True/False per stimulus"),
        (lambda r: r.select([]), ArgumentError, "empty list"),
        (lambda r: r.select(time=4), ArgumentError, "layer 'b' has 4 time steps"),
        (lambda r: r.column("zz"), UnknownNameError, "Available: 'label', 'cond'"),
    ],
)
def test_bad_selection(rec, call, error, match):
    with pytest.raises(error, match=match):
        call(rec)


def test_periods_are_kept_through_a_store_and_marked_on_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from rnnprobe.analysis import decode
    from rnnprobe.errors import ArgumentError, ArgumentTypeError
    from rnnprobe.tasks import ContextDependentDecision

    task = ContextDependentDecision(n_steps=12, fixation_steps=2, response_steps=3)
    rng = np.random.default_rng(0)
    label = np.repeat([0, 1], 20)
    rec = Recording({"h": rng.normal(size=(40, 12, 3)) + label[:, None, None]}, metadata={"label": label})
    rec = rec.with_periods(task.periods())
    assert rec.periods == {"fixation": (0.0, 2.0), "evidence": (2.0, 9.0), "response": (9.0, 12.0)}
    rec.save(tmp_path / "r.zarr")
    assert Recording.load(tmp_path / "r.zarr").periods == rec.periods
    fig = decode(rec, "h", "label").plot()
    names = {t.get_text() for t in fig.axes[0].texts}
    assert {"fixation", "evidence", "response"} <= names
    with pytest.raises(ArgumentError, match="start < end"):
        rec.with_periods({"late": (5, 2)})
    with pytest.raises(ArgumentError, match="finite"):
        rec.with_periods({"late": (np.nan, 2)})
    with pytest.raises(ArgumentTypeError):
        rec.with_periods([(0, 1)])


def test_periods_mark_pca_and_encoding_figures_too():
    import matplotlib

    matplotlib.use("Agg")
    from rnnprobe.analysis import fit_encoding, fit_pca

    rng = np.random.default_rng(1)
    rec = Recording({"h": rng.normal(size=(60, 8, 4))}).with_periods({"cue": (0, 2), "delay": (2, 8)})
    figures = [fit_pca(rec).plot(), fit_encoding(rec, rng.normal(size=(60, 3)), ceiling=False).plot()]
    for fig in figures:
        assert any({"cue", "delay"} <= {t.get_text() for t in ax.texts} for ax in fig.axes)


def test_periods_mark_alignment_over_time():
    import matplotlib

    matplotlib.use("Agg")
    from rnnprobe.analysis import compare_representations

    rng = np.random.default_rng(2)
    rec = Recording({"h": rng.normal(size=(30, 6, 4))}).with_periods({"cue": (0, 2), "delay": (2, 6)})
    over_time = compare_representations(rec, rec.select(time=slice(-1, None)), metric="cka").plot()
    assert {"cue", "delay"} <= {t.get_text() for t in over_time.axes[0].texts}
    matrix = compare_representations(rec, rec, metric="cka")
    assert matrix.periods == (rec.periods, rec.periods)
    ax = matrix.plot().axes[0]
    assert len(ax.lines) == 4  # the periods' starts on both axes


def test_periods_mark_time_by_time_matrices_of_decoding_and_rsa():
    import matplotlib

    matplotlib.use("Agg")
    from rnnprobe.analysis import compare_model_to_data, compute_rdms, decode

    rng = np.random.default_rng(3)
    times = np.arange(6) * 10.0  # ms: the marks are placed in time units on the decoding matrix ...
    rec = Recording({"h": rng.normal(size=(40, 6, 3))}, metadata={"y": np.arange(40) % 2}, times=times)
    rec = rec.with_periods({"cue": (0, 20), "delay": (20, 60)})
    ax = decode(rec, "h", "y", generalize=True, cv=2, progress=False).plot().axes[0]
    vertical = sorted(line.get_xdata()[0] for line in ax.lines if line.get_xdata()[0] == line.get_xdata()[-1])
    horizontal = sorted(line.get_ydata()[0] for line in ax.lines if line.get_ydata()[0] == line.get_ydata()[-1])
    assert vertical == [0, 20] and horizontal == [0, 20]
    model = compute_rdms(rec, "h")  # ... and at model time indices on the RSA matrix (0 and 2)
    rsa = compare_model_to_data(model, rng.random((3, model.dissimilarities.shape[1]))).plot().axes[0]
    assert sorted(line.get_ydata()[0] for line in rsa.lines) == [0, 2]


def test_periods_mark_rsa_over_time_and_survive_rsatoolbox():
    import matplotlib

    matplotlib.use("Agg")
    from rnnprobe.analysis import RDMs, compare_model_to_data, compute_rdms

    rng = np.random.default_rng(4)
    rec = Recording({"h": rng.normal(size=(8, 6, 5))}).with_periods({"cue": (0, 2), "delay": (2, 6)})
    rdms = compute_rdms(rec, "h")
    result = compare_model_to_data(rdms, rng.random(28))
    assert result.periods == rec.periods
    assert {"cue", "delay"} <= {t.get_text() for t in result.plot().axes[0].texts}
    back = RDMs.from_rsatoolbox(rdms.to_rsatoolbox())
    np.testing.assert_array_equal(back.dissimilarities, rdms.dissimilarities)
    assert compute_rdms(Recording({"h": rng.normal(size=(8, 6, 5))}), "h").descriptors == {"layer": "h"}
