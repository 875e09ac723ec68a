"""compare_models: the same analyses per model, picked maxima checked against direct calls, the
report's structure (golden), and errors."""

import json

import matplotlib
import numpy as np
import pytest
import torch

import rnnprobe
from rnnprobe import Recording
from rnnprobe.analysis import ComparisonResult, compare_models
from rnnprobe.analysis.decoding import decode
from rnnprobe.analysis.rsa import RDMs, compare_rdms, compute_rdms
from rnnprobe.errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError

matplotlib.use("Agg")


def _models(rng, n=48, t=5):
    """Two models over the same stimuli: 'early' codes the label from step 0 in layer b,
    'late' from step 3 in layer a; each has a label-free layer."""
    label = np.repeat(np.arange(3), n // 3)
    noise = lambda: rng.normal(size=(n, t, 6))  # noqa: E731
    code = 3.0 * np.eye(3)[label]  # one unit per class: linearly separable one-vs-rest
    early_b = noise()
    early_b[:, :, :3] += code[:, None]
    late_a = noise()
    late_a[:, 3:, :3] += code[:, None]
    meta = {"label": label, "image": np.arange(n)}
    return {
        "early": Recording({"a": noise(), "b": early_b}, metadata=meta),
        "late": Recording({"a": late_a, "b": noise()}, metadata=meta),
    }, label


def test_picks_the_best_layer_and_time_that_direct_analyses_find(rng):
    recs, _ = _models(rng)
    target_rdm = compute_rdms(recs["late"], "a", time=4).dissimilarities  # 'late' a at t=4 is the reference
    subjects = target_rdm + rng.normal(scale=0.05, size=(4, target_rdm.shape[1]))
    result = compare_models(recs, target="label", neural={"ref": target_rdm}, subjects={"ref": subjects},
                            cv=4, progress=False)  # fmt: skip
    assert isinstance(result, ComparisonResult)
    assert result.analyses == ("pca", "rdms", "rsa", "decoding", "generalization", "alignment")
    table = result.table()
    assert table["model"] == ["early", "late"]
    assert table["ref: best layer"][1] == "a" and table["ref: best time"][1] == 4
    assert table["ref: similarity"][1] == pytest.approx(1.0, abs=1e-12)
    # the early model's best match, by brute force over its layers and steps
    sims = {layer: compare_rdms(compute_rdms(recs["early"], layer), target_rdm)[:, 0] for layer in ("a", "b")}
    layer, step = max(((k, int(np.argmax(v))) for k, v in sims.items()), key=lambda kv: sims[kv[0]][kv[1]])
    assert (table["ref: best layer"][0], table["ref: best time"][0]) == (layer, step)
    assert table["ref: similarity"][0] == pytest.approx(sims[layer][step], abs=1e-12)
    # decoding: the same scores as decode() with the same settings; focus = best decoding layer
    direct = decode(recs["late"], "a", "label", cv=4, seed=0)
    np.testing.assert_allclose(result.decoding["late"]["a"].scores, direct.scores, atol=1e-12)
    assert result.focus == {"early": "b", "late": "a"}
    assert table["decoding: best layer"] == ["b", "a"]
    assert table["decoding: peak time"][1] >= 3 and table["decoding: peak accuracy"][1] > 0.9
    assert table["decoding: chance"] == [pytest.approx(1 / 3)] * 2
    np.testing.assert_allclose(
        result.generalization["late"].scores, decode(recs["late"], "a", "label", cv=4, generalize=True).scores
    )
    low, high = result.noise_ceilings()["ref"]
    assert 0.5 < low <= high <= 1.0
    # the early model generalizes across time, the late one cannot before its onset
    g = result.generalization
    assert table["generalization: mean off-diagonal"][0] > table["generalization: mean off-diagonal"][1]
    assert g["late"].scores[0, 4] < 0.6


def test_report_structure_golden(rng, tmp_path):
    recs, _ = _models(rng)
    neural = compute_rdms(recs["late"], "a", time=4)
    gru = rnnprobe.models.GRU(2, 4, 1)
    gru_rec = rnnprobe.record(gru, torch.randn(20, 8, 2, generator=torch.Generator().manual_seed(0)), progress=False)
    gru_rec = Recording({"a": gru_rec.get("l0.h")[:, :5], "b": gru_rec.get("l0.h")[:, :5]},
                        metadata={"label": np.repeat(np.arange(2), 10), "image": np.arange(20)})  # fmt: skip
    result = compare_models({"early": recs["early"], "gru": gru_rec}, target="label", analyses=["pca", "decoding"],
                            cv=2, progress=False)  # fmt: skip
    assert list(result.figures()) == ["pca", "decoding"]
    result = compare_models(recs, target="label", neural={"IT": neural}, cv=3, progress=False)
    path = result.save(tmp_path / "compare.html", data=True, export=["png"])
    report = result.to_report()
    assert report.sections() == ["Summary", "Trajectories and dimensionality", "RDMs over time", "RSA: IT",
                                 "Decoding over time", "Temporal generalization",
                                 "Alignment between models"]  # fmt: skip
    assert report.names() == ["overview", "summary", "pca", "pca-numbers", "rdms", "rsa-it", "rsa-it-numbers",
                              "decoding", "decoding-numbers", "generalization", "generalization-numbers",
                              "alignment", "alignment-numbers"]  # fmt: skip
    html = path.read_text()
    assert html.count("<img") == 6 and "https://" not in html.replace("https://www.w3.org", "")
    numbers = json.loads(path.with_suffix(".json").read_text())
    summary = numbers["sections"][0]["items"][1]
    assert summary["name"] == "summary" and summary["columns"]["model"] == ["early", "late"]
    assert set(summary["columns"]) >= {"IT: best layer", "IT: best time", "IT: similarity", "decoding: peak time"}
    assert sorted(p.name for p in (tmp_path / "compare_figures").iterdir()) == [
        "alignment.png", "decoding.png", "generalization.png", "pca.png", "rdms.png", "rsa-it.png"
    ]  # fmt: skip


def test_fixed_points_of_models_with_a_step_and_a_reason_for_the_others(rng):
    model = rnnprobe.models.load("flipflop-gru")
    data = rnnprobe.models.task_from_checkpoint(model).sample(16, split="test")
    rec = rnnprobe.record(model, data.x, progress=False)
    fw = rnnprobe.models.load("retrieval-fastweights")
    fw_data = rnnprobe.models.task_from_checkpoint(fw).sample(16, split="test")
    fw_rec = rnnprobe.record(fw, fw_data.x, progress=False)
    result = compare_models({"gru": rec, "fast weights": fw_rec}, models={"gru": model, "fast weights": fw},
                            analyses=["fixed_points"], n_initial=256, progress=False)  # fmt: skip
    fp = result.fixed_points["gru"]
    assert int(fp.stable.sum()) == 8  # the 8 bit patterns
    assert isinstance(result.fixed_points["fast weights"], str) and "fixed_point_layers" in result.fixed_points[
        "fast weights"]  # fmt: skip
    table = result.table()
    assert table["stable fixed points"] == [8, None]
    report = result.to_report()
    assert "fixed-points" in report.names() and "fixed-points-skipped" in report.names()


def test_progress_is_shown_and_can_be_silenced(rng, capsys):
    recs, _ = _models(rng, n=24)
    compare_models(recs, progress=False)
    assert capsys.readouterr().err == ""
    compare_models(recs, progress=True)
    assert "compare models" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"analyses": ["pca", "tsne"]}, UnknownNameError, "analyses: got 'tsne'"),
        ({"analyses": ["rsa"]}, ArgumentError, "needs neural="),
        ({"analyses": ["decoding"]}, ArgumentError, "needs target="),
        ({"target": "colour"}, UnknownNameError, "target: 'colour' is not a metadata column of 'early'"),
        ({"layers": {"early": ["a", "c"]}}, UnknownNameError, "layers: 'c' is not a layer of 'early'"),
        ({"layers": {"middle": "a"}}, UnknownNameError, "layers: 'middle' is not one of the models"),
        ({"neural": np.ones(10)}, ShapeError, "neural\\['neural'\\]: RDMs of 5 conditions, but 'early'"),
        ({"neural": "it.mat"}, ArgumentTypeError, "neural\\['neural'\\]: got"),
        ({"models": {"other": None}}, UnknownNameError, "models: 'other' has no recording"),
        ({"subjects": np.ones((3, 10))}, ArgumentError, "subjects: given without neural"),
    ],
)
def test_errors_name_the_argument(rng, kwargs, error, match):
    recs, _ = _models(rng, n=24)
    with pytest.raises(error, match=match):
        compare_models(recs, progress=False, **kwargs)


def test_recordings_must_be_a_dict_of_recordings(rng):
    recs, _ = _models(rng, n=24)
    with pytest.raises(ArgumentTypeError, match="recordings: got"):
        compare_models([recs["early"]])
    with pytest.raises(ArgumentTypeError, match="recordings\\['x'\\]: got"):
        compare_models({"x": np.zeros((3, 4, 5))})


def test_rsa_against_per_time_neural_rdms_gives_model_time_by_brain_time(rng):
    recs, _ = _models(rng, n=24)
    meg = RDMs(rng.random((7, 276)), "correlation", rdm_descriptors={"time": np.arange(7) * 10})
    result = compare_models(recs, neural={"MEG": meg}, analyses=["rsa"], progress=False)
    assert result.rsa["MEG"]["early"]["a"].similarity.shape == (5, 7)
    assert "MEG: best data time" in result.table()
    assert result.plot("rsa-MEG") is not None


def test_encoding_and_alignment_sections_equal_the_direct_analyses(rng):
    from rnnprobe.analysis import fit_encoding, pairwise_distances

    recs, label = _models(rng)
    n = len(label)
    trials = recs["late"].get("a", time=4)[:, None, None, :4] + rng.normal(0, 0.5, size=(n, 4, 1, 4))
    result = compare_models(recs, responses={"IT": trials}, cv=4, metric="cka", progress=False)
    assert result.analyses == ("pca", "rdms", "encoding", "alignment")
    direct = fit_encoding(recs["late"], trials, cv=4, seed=0)
    for layer in ("a", "b"):
        np.testing.assert_allclose(result.encoding["IT"]["late"].scores[layer], direct.scores[layer], atol=1e-12)
    table = result.table()
    assert table["IT encoding: best layer"][1] == "a" and table["IT encoding: best time"][1] == 4
    assert table["IT encoding: ceiled median r"][1] > 0.8
    entries = {f"{m}: {layer}": recs[m] for m in recs for layer in ("a", "b")}
    layers = {key: key.split(": ")[1] for key in entries}
    expected = pairwise_distances(entries, layer=layers, metric="cka").distances
    np.testing.assert_allclose(result.alignment.distances, expected, atol=1e-12)
    assert set(result.figures()) >= {"encoding-IT", "alignment"}
    report = result.to_report()
    assert "Encoding models: IT" in report.sections() and "Alignment between models" in report.sections()
    with pytest.raises(ArgumentError, match="'alignment' needs recordings of at least two models"):
        compare_models({"late": recs["late"]}, analyses=["alignment"], progress=False)
    with pytest.raises(ArgumentError, match="'encoding' needs responses="):
        compare_models(recs, analyses=["encoding"], progress=False)


def test_a_device_reaches_every_analysis_with_a_device_path_and_changes_no_result(rng, monkeypatch):
    from rnnprobe.analysis import alignment, encoding, fixed_points, pca, rsa
    from rnnprobe.analysis import decoding as decoding_module

    recs, label = _models(rng)
    trials = recs["late"].get("a", time=4)[:, None, None, :4] + rng.normal(0, 0.5, size=(len(label), 4, 1, 4))
    neural = {"ref": compute_rdms(recs["late"], "a", time=4).dissimilarities}
    reached = []  # (function, device) of every call

    def spy(module, name):
        real = getattr(module, name)

        def called(*args, **kwargs):
            reached.append((name, kwargs.get("device")))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, called)

    for module, name in [
        (rsa, "compute_rdms"),
        (decoding_module, "decode"),
        (encoding, "fit_encoding"),
        (pca, "fit_pca"),
        (alignment, "pairwise_distances"),
        (fixed_points, "find_fixed_points"),
    ]:
        spy(module, name)  # fmt: skip
    settings = dict(target="label", neural=neural, responses={"IT": trials}, cv=4, progress=False)
    expected = compare_models(recs, **settings)
    assert {device for _, device in reached} == {None}
    reached.clear()
    got = compare_models(recs, device="cpu", **settings)
    names = {"compute_rdms", "decode", "fit_encoding", "fit_pca", "pairwise_distances"}
    assert {name for name, _ in reached} == names and {str(device) for _, device in reached} == {"cpu"}
    assert got.analyses == expected.analyses == ("pca", "rdms", "rsa", "encoding", "decoding", "generalization",
                                                  "alignment")  # fmt: skip
    assert got.table().keys() == expected.table().keys()
    for column, values in expected.table().items():
        if isinstance(values[0], float):
            np.testing.assert_allclose(got.table()[column], values, rtol=0, atol=1e-10, err_msg=column)
        else:
            assert got.table()[column] == values, column
    np.testing.assert_allclose(got.alignment.distances, expected.alignment.distances, rtol=0, atol=1e-10)
    assert "Computed on 'cpu'" in got.to_report().to_json() and "Computed on" not in expected.to_report().to_json()
    model = rnnprobe.models.load("flipflop-gru")  # fixed points: the search on the device
    rec = rnnprobe.record(model, rnnprobe.models.task_from_checkpoint(model).sample(8, split="test").x, progress=False)
    reached.clear()
    result = compare_models({"gru": rec}, models={"gru": model}, analyses=["fixed_points"], n_initial=64,
                            device="cpu", progress=False)  # fmt: skip
    assert [(name, str(device)) for name, device in reached] == [("find_fixed_points", "cpu")]
    assert int(result.fixed_points["gru"].stable.sum()) >= 1
    reached.clear()
    with pytest.raises(ArgumentError, match="device: got 'nonsense'"):
        compare_models(recs, device="nonsense", progress=False)
    assert reached == []  # refused before any analysis ran


def test_dsa_between_models_on_request():
    from rnnprobe.analysis import pairwise_dynamics
    from rnnprobe.testing import make_dynamics

    recs = {f"{kind} {k}": Recording({"h": make_dynamics(kind, n_trials=8, n_steps=60, n_units=6, seed=10 * k + i)})
            for i, kind in enumerate(("line", "cycle")) for k in range(2)}  # fmt: skip
    default = compare_models(recs, progress=False)
    assert "dsa" not in default.analyses and default.dsa is None  # opt-in
    result = compare_models(recs, analyses=["pca", "dsa"], dsa_delays=2, dsa_rank=4, progress=False)
    direct = pairwise_dynamics(recs, layer="h", n_delays=2, rank=4)
    np.testing.assert_allclose(result.dsa.distances, direct.distances, atol=1e-12)
    assert result.table()["dsa: nearest"] == ["line 1", "line 0", "cycle 1", "cycle 0"]
    assert "dsa" in result.figures()
    with pytest.raises(ArgumentError, match="at least two models"):
        compare_models({"one": recs["line 0"]}, analyses=["dsa"], progress=False)


def test_jpca_tdr_and_dpca_sections_equal_the_direct_calls():
    from rnnprobe.analysis import condition_average, fit_dpca, fit_jpca, fit_tdr

    rng = np.random.default_rng(3)
    stimulus = np.repeat(np.arange(4), 12)
    choice = np.where(rng.random(48) < 0.5, -1, 1)
    t = np.arange(10)[None, :, None]
    angle = 0.3 * t + stimulus[:, None, None]
    states = np.concatenate([np.cos(angle), np.sin(angle), choice[:, None, None] * t / 10 + 0 * angle], axis=2)
    meta = {"stimulus": stimulus, "choice": choice}
    recs = {"rotating": Recording({"h": states @ rng.normal(size=(3, 6)) + 0.05 * rng.normal(size=(48, 10, 6))},
                                  metadata=meta),
            "narrow": Recording({"h": rng.normal(size=(48, 10, 1))}, metadata=meta)}  # fmt: skip
    result = compare_models(recs, target="stimulus", analyses=["jpca", "tdr", "dpca"], variables=["choice"],
                            parameters=["stimulus"], progress=False)  # fmt: skip
    rec = recs["rotating"]
    direct = fit_jpca(condition_average(rec, "stimulus"), "h", n_components=6, soft_normalize=None)
    np.testing.assert_allclose(result.jpca["rotating"].m_skew, direct.m_skew, atol=1e-12)
    np.testing.assert_allclose(result.tdr["rotating"].axes, fit_tdr(rec, "h", variables=["choice"]).axes, atol=1e-12)
    dpca = fit_dpca(rec, "h", parameters=["stimulus"])
    np.testing.assert_allclose(result.dpca["rotating"].decoders["stimulus"], dpca.decoders["stimulus"], atol=1e-12)
    assert isinstance(result.jpca["narrow"], str) and "could not run" in result.jpca["narrow"]  # one unit
    table = result.table()
    assert table["jpca: rotation explains"][1] is None and table["jpca: rotation explains"][0] > 0.5
    assert {"tdr: max R2", "dpca: stimulus variance"} <= set(table)
    assert {"jpca", "tdr", "dpca"} <= set(result.figures())
    assert "jpca" not in compare_models({"rotating": rec}, target="stimulus", progress=False).analyses  # opt-in
    with pytest.raises(ArgumentError, match="variables"):
        compare_models(recs, analyses=["tdr"], progress=False)


def test_speed_accuracy_and_interventions_in_a_comparison_equal_the_direct_calls(tmp_path):

    import rnnprobe
    from rnnprobe.analysis import compute_matched, intervention_effect, speed_accuracy
    from rnnprobe.recording import Lesion, random_like

    models = {k: rnnprobe.models.load(n) for k, n in {"BL": "occluded-bl", "BLT": "occluded-blt"}.items()}
    data = rnnprobe.models.task_from_checkpoint(models["BLT"]).sample(150, split="test", index=0)
    recs = {k: rnnprobe.record(m, data.x, metadata=data.metadata, progress=False) for k, m in models.items()}
    change = Lesion.cool("lateral", from_step=1)
    c = compare_models(recs, target="label", models=models, stimuli=data.x, layers="layer1",
                       analyses=["decoding", "speed_accuracy", "interventions"], n_controls=2, cv=3,
                       interventions={"cooled": ("BLT", change)}, progress=False)  # fmt: skip
    direct = speed_accuracy(models["BL"], data.x, data.y, name="BL")
    np.testing.assert_array_equal(c.speed_accuracy["BL"].stop_steps, direct.stop_steps)
    matched = compute_matched({"BL": direct, "BLT": speed_accuracy(models["BLT"], data.x, data.y)}, seed=0)
    np.testing.assert_allclose(c.compute_matched.difference, matched.difference)
    controls = random_like(change, models["BLT"], data.x[:1], n_draws=2, seed=0)
    effect = intervention_effect(models["BLT"], data.x, change, labels=data.y, controls=controls, layers=["layer1"])
    np.testing.assert_allclose(c.interventions["cooled"].effect, effect.effect)
    np.testing.assert_allclose(c.interventions["cooled"].control_effects, effect.control_effects)
    assert c.table()["speed-accuracy: best accuracy"] == [direct.best()[0], c.speed_accuracy["BLT"].best()[0]]
    assert {"speed-accuracy", "intervention-cooled"} <= set(c.figures())
    html = c.save(tmp_path / "report.html").read_text()
    assert "Speed-accuracy and compute" in html and "Intervention: cooled" in html


def test_interventions_need_their_model_and_the_stimuli():
    from rnnprobe.errors import ArgumentError, UnknownNameError
    from rnnprobe.recording import Lesion

    rec = Recording({"h": np.zeros((4, 2, 3))}, metadata={"label": [0, 1, 0, 1]})
    with pytest.raises(UnknownNameError, match="not in models"):
        compare_models({"a": rec}, interventions={"x": ("a", Lesion.cool("lateral"))}, progress=False)
    with pytest.raises(ArgumentError, match="speed_accuracy"):
        compare_models({"a": rec}, analyses=["speed_accuracy"], progress=False)


def test_the_best_layer_is_the_best_defined_score_never_a_nan():
    """A layer without a defined score (NaN) came first and stayed 'best' (NaN > x is False), and a decoding layer
    without any score raised numpy's All-NaN ValueError. The best is now the highest defined score, whichever
    layer comes first; where no layer has one, the layer is None with a NaN score."""
    from types import SimpleNamespace

    def rsa(similarity):
        return SimpleNamespace(best=lambda: {"model_time": None if np.isnan(similarity) else 3,
                                             "data_time": None, "similarity": similarity})  # fmt: skip

    def decoding(scores):
        return SimpleNamespace(scores=np.asarray(scores), times=np.arange(len(scores)), chance=0.5, scoring="accuracy")

    def encoding(medians):
        peaks = {layer: {"layer": layer, "model_time": 0, "neural_time": 0, "median r": r}
                 for layer, r in medians.items()}  # fmt: skip
        return SimpleNamespace(scores=dict.fromkeys(medians), peak=peaks.__getitem__)

    nan = np.nan
    result = ComparisonResult(["m"], {"m": ["a", "b", "c"]}, {}, ("rsa", "decoding", "encoding"), "label")
    for values, expected in (((nan, 0.2, 0.4), "c"), ((0.3, nan, 0.1), "a"), ((nan, nan, 0.1), "c"),
                             ((0.5, 0.5, nan), "a"), ((nan, nan, nan), None)):  # fmt: skip
        result.rsa = {"it": {"m": dict(zip("abc", map(rsa, values), strict=True))}}
        result.decoding = {"m": {layer: decoding([nan, v, nan]) for layer, v in zip("abc", values, strict=True)}}
        result.encoding = {"n": {"m": encoding(dict(zip("abc", values, strict=True)))}}
        best = (result.best_rsa("it", "m"), result.best_decoding("m"), result.best_encoding("n", "m"))
        assert [b["layer"] for b in best] == [expected] * 3
        defined = [v for v in values if not np.isnan(v)]
        top = max(defined) if defined else nan
        np.testing.assert_equal([best[0]["similarity"], best[1]["score"], best[2]["median r"]], [top] * 3)
        assert best[1]["time"] == (1 if defined else None)


def test_a_neural_rdm_no_layer_matches_has_no_best_layer_and_still_reports(rng, tmp_path):
    """A constant neural RDM (no similarity defined with any layer): no best layer or time, a NaN similarity,
    the focus the last layer, and the report (its RSA figure and numbers) written."""
    recs, _ = _models(rng)
    flat = np.ones(48 * 47 // 2)
    result = compare_models(recs, target="label", neural={"flat": flat}, analyses=["rsa"], progress=False)
    table = result.table()
    assert table["flat: best layer"] == [None, None] and table["flat: best time"] == [None, None]
    assert np.isnan(table["flat: similarity"]).all()
    assert result.focus == {"early": "b", "late": "b"}
    path = result.save(tmp_path / "compare.html", data=True)
    assert path.exists() and "rsa-flat" in result.to_report().names()
