"""The `rnnprobe` command: demo, models, and record / analyze / report from a TOML config, run as
subprocesses (as users run them); errors are one line, exit 2, and nothing is written."""

import json
import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.cli import main
from rnnprobe.cli.demo import category_rdm

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnnprobe.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=300)  # fmt: skip


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.sections.append(dict(attrs)["id"])
        self.images += tag == "img"


def test_help_everywhere():
    out = _run("--help")
    assert out.returncode == 0
    for command in ("demo", "models", "record", "analyze", "report"):
        assert command in out.stdout
        sub = _run(command, "--help")
        assert sub.returncode == 0 and "usage: rnnprobe " + command in sub.stdout
    assert "--quick" in _run("demo", "--help").stdout
    bad = _run("nonsense")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_models_lists_the_shipped_checkpoints():
    out = _run("models")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "model", "task", "parameters"]
    assert any(line.startswith("occluded-blt") and "BLT" in line and "accuracy 0.870" in line for line in lines)
    assert sum(line.startswith(("occluded-", "flipflop-", "retrieval-", "energy-")) for line in lines) == 12


def test_category_rdm_is_one_between_categories():
    rdm = category_rdm(np.array([0, 1, 0, 2]))
    from scipy.spatial.distance import pdist

    expected = pdist(np.array([0, 1, 0, 2])[:, None], lambda a, b: float(a[0] != b[0]))
    np.testing.assert_array_equal(rdm.dissimilarities[0], expected)


@pytest.mark.slow
def test_demo_quick_writes_the_comparison_report(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("report written in") and lines[-1].endswith(str(tmp_path / "demo" / "report.html"))
    assert lines[0].startswith("BLT family (B, BL, BLT, 200 digits)")
    assert "flip-flop fixed points: GRU" in lines[2] and "(8 stable), LSTM" in lines[2]
    parser = _Sections()
    parser.feed((tmp_path / "demo" / "report.html").read_text())
    assert parser.sections == [
        "section-about", "section-blt-family-on-occluded-digits", "section-blt-summary",
        "section-blt-trajectories-and-dimensionality", "section-blt-rdms-over-time", "section-blt-rsa-digit-category",
        "section-blt-decoding-over-time", "section-blt-temporal-generalization", "section-blt-alignment-between-models",
        "section-lstm-vs-fast-weights-on-associative-retrieval", "section-retrieval-summary",
        "section-retrieval-trajectories-and-dimensionality", "section-retrieval-decoding-over-time",
        "section-retrieval-temporal-generalization", "section-fixed-points-of-flip-flop-networks",
        "section-flip-flop-summary", "section-flip-flop-trajectories-and-dimensionality",
        "section-flip-flop-fixed-points", "section-energy-efficient-rnn-prediction-units",
    ]  # fmt: skip
    assert parser.images == 12  # BLT 6, retrieval 3, flip-flop 2, energy 1
    assert (tmp_path / "demo" / "report.html").stat().st_size < 3 * 2**20  # heatmaps as palette PNGs
    numbers = json.loads((tmp_path / "demo" / "report.json").read_text())
    summary = numbers["sections"][2]["items"][1]["columns"]
    assert summary["model"] == ["B", "BL", "BLT"]
    assert set(summary) >= {"digit category: best layer", "digit category: similarity", "decoding: peak accuracy"}
    # recurrent models match the category structure better than the feedforward B (the shipped checkpoints)
    assert summary["digit category: similarity"][2] > summary["digit category: similarity"][0]
    flip = next(s for s in numbers["sections"] if s["title"] == "Flip-flop: Summary")["items"][1]["columns"]
    assert flip["stable fixed points"] == [8, 8]


def test_demo_refuses_a_file_as_output_folder(tmp_path, capsys):
    target = tmp_path / "report"
    target.write_text("my notes")
    assert main(["demo", "--quick", "--out", str(target), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnprobe demo: error: --out:")
    assert target.read_text() == "my notes"


def _project(
    tmp_path,
    *,
    extra="",
    layers='["output", "l0.h"]',
    run='["pca", "rdms", "rsa", "decoding"]',
    distance='"euclidean"',
    cv="4",
    kwargs="{ hidden = 4 }",
):
    """A user's project: their own model factory, stimuli file with metadata, a neural RDM file."""
    rng = np.random.default_rng(0)
    (tmp_path / "mymodels.py").write_text(
        textwrap.dedent("""
        import torch

        def build(hidden=6):
            torch.manual_seed(0)
            return torch.nn.GRU(3, hidden, batch_first=True)

        class Wrapped(torch.nn.Module):  # a user's model whose recurrent part is a submodule
            def __init__(self, hidden):
                super().__init__()
                self.rnn = torch.nn.GRU(3, hidden, batch_first=True)
                self.out = torch.nn.Linear(hidden, 2)

            def forward(self, x):
                return self.out(self.rnn(x)[0])

        def wrapped(hidden=6):
            torch.manual_seed(0)
            return Wrapped(hidden)
    """)
    )
    label = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 7, 3)).astype(np.float32)
    x[:, :2, 0] += 2.0 * label[:, None]
    np.savez(tmp_path / "stimuli.npz", x=x, label=label)
    np.save(tmp_path / "brain.npy", category_rdm(label).dissimilarities[0] + rng.normal(0, 0.1, 780))
    config = (
        textwrap.dedent(f"""
        output = "results"

        [stimuli]
        file = "stimuli.npz"

        [[models]]
        name = "small"
        factory = "mymodels:build"
        kwargs = {kwargs}
        layers = {layers}

        [[models]]
        name = "large"
        factory = "mymodels:build"
        kwargs = {{ hidden = 12 }}
        layers = {layers}

        [analyses]
        run = {run}
        target = "label"
        cv = {cv}
        distance = {distance}
        comparison = "spearman"

        [neural.brain]
        file = "brain.npy"
    """)
        + extra
    )
    (tmp_path / "config.toml").write_text(config)
    return tmp_path / "config.toml"


def _report_with(config, settings):
    """Add [analyses] settings to a project's config, record and report with PNG figures: (stdout, figure
    file names, the report's overview text)."""
    config.write_text(config.read_text().replace('comparison = "spearman"', f'comparison = "spearman"\n{settings}'))
    assert _run("record", str(config), "--no-progress").returncode == 0
    out = _run("report", str(config), "--no-progress", "--export", "png")
    assert out.returncode == 0, out.stderr
    results = config.parent / "results"
    figures = sorted(p.name for p in (results / "report_figures").iterdir())
    overview = json.loads((results / "report.json").read_text())["sections"][0]["items"][0]["text"]
    return out.stdout, figures, overview


def test_record_analyze_report_from_a_config(tmp_path, monkeypatch, capsys):
    config = _project(tmp_path)
    out = _run("record", str(config), "--no-progress")
    assert out.returncode == 0, out.stderr
    rec = Recording.load(tmp_path / "results" / "recordings" / "large.zarr")
    assert rec.shapes == {"output": (40, 7, 12), "l0.h": (40, 7, 12)}
    assert list(rec.column("label")) == [0] * 20 + [1] * 20
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("small: focus layer") and "brain: similarity" in out.stdout
    numbers = json.loads((tmp_path / "results" / "analysis.json").read_text())
    assert numbers["sections"][0]["items"][1]["columns"]["model"] == ["small", "large"]
    overview = numbers["sections"][0]["items"][0]["text"]  # the config's distance and comparison were used
    assert "RDMs: euclidean distance, compared with the neural RDMs by spearman." in overview
    # --device (in this process: a second interpreter costs seconds): the analyses with a device path run there
    # (torch on the CPU here), the same numbers; a device the machine lacks is one error line
    monkeypatch.syspath_prepend(str(tmp_path))  # the config's factory module (the command adds its folder)
    assert main(["analyze", str(config), "--no-progress", "--device", "cpu"]) == 0
    on_device = json.loads((tmp_path / "results" / "analysis.json").read_text())
    assert "Computed on 'cpu'" in on_device["sections"][0]["items"][0]["text"]
    np.testing.assert_allclose(_numbers(on_device), _numbers(numbers), rtol=0, atol=1e-10)
    capsys.readouterr()
    assert main(["analyze", str(config), "--no-progress", "--device", "nonsense"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rnnprobe analyze: error: device: got 'nonsense'. Pass a torch device such as 'cpu' or 'cuda'."
    )
    out = _run("report", str(config), "--no-progress", "--export", "png")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "results" / "report.html").is_file()
    assert sorted(p.name for p in (tmp_path / "results" / "report_figures").iterdir()) == [
        "decoding.png", "pca.png", "rdms.png", "rsa-brain.png"
    ]  # fmt: skip


def test_record_runs_the_models_on_the_given_device(tmp_path, monkeypatch):
    import rnnprobe.recording

    config, devices, real = _project(tmp_path), [], rnnprobe.recording.record

    def spied(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return real(*args, **kwargs)

    monkeypatch.setattr(rnnprobe.recording, "record", spied)
    monkeypatch.syspath_prepend(str(tmp_path))  # the config's factory module (the command adds its folder)
    assert main(["record", str(config), "--no-progress", "--device", "cpu"]) == 0
    assert [str(device) for device in devices] == ["cpu", "cpu"]  # both models
    assert Recording.load(tmp_path / "results" / "recordings" / "small.zarr").provenance["device"] == "cpu"


def _numbers(value):
    """The floats of a JSON document, in order (strings and keys left out)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def test_record_and_analyze_on_a_dask_scheduler(tmp_path):
    """--scheduler: the models are recorded in shards on the scheduler's workers, which get the model's classes
    from the project's own modules (the factory's, and a module it imports), and analysed there blockwise: the
    stores and every number equal the local run's. An unreachable scheduler is one line, exit 2, before any
    work."""
    distributed = pytest.importorskip("distributed")
    configs = {}
    for where in ("local", "cluster"):
        (tmp_path / where).mkdir()
        configs[where] = config = _project(tmp_path / where, layers='["rnn:output", "rnn:l0.h"]')
        config.write_text(config.read_text().replace("mymodels:build", "mymodels:wrapped"))
        models = tmp_path / where / "mymodels.py"  # the readout's class in a module of its own beside it
        models.write_text("import readout\n" + models.read_text().replace("torch.nn.Linear(", "readout.Readout("))
        (tmp_path / where / "readout.py").write_text("import torch\n\n\nclass Readout(torch.nn.Linear):\n    pass\n")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for where, config in configs.items():
            extra = ("--scheduler", cluster.scheduler_address) if where == "cluster" else ()
            for command in ("record", "analyze"):
                out = _run(command, str(config), "--no-progress", *extra)
                assert out.returncode == 0, out.stderr
        ran = set(cluster.scheduler.task_prefixes)  # the shards, the decoding blocks, the RDMs' Gram matrices
        assert {"rnnprobe-record", "in_task", "getitem-matmul"} <= ran, sorted(ran)
    stores = {where: tmp_path / where / "results" / "recordings" / "large.zarr" for where in configs}
    local, sharded = Recording.load(stores["local"]), Recording.load(stores["cluster"])
    assert "cluster" in sharded.provenance and "cluster" not in local.provenance
    for layer in local.layers:
        np.testing.assert_array_equal(sharded.get(layer), local.get(layer))
    numbers = {where: json.loads((tmp_path / where / "results" / "analysis.json").read_text()) for where in configs}
    expected, got = _numbers(numbers["local"]), _numbers(numbers["cluster"])
    assert len(got) == len(expected) > 30
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    out = _run("analyze", str(configs["cluster"]), "--no-progress", "--scheduler", "tcp://127.0.0.1:9")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "--scheduler: cannot reach a dask scheduler" in lines[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layers": '["output", "l3.h"]'}, "models.small.layers: 'l3.h' is not recordable in GRU"),
        ({"run": '["pca", "tsne"]'}, "analyses.run: 'tsne' is not an analysis"),
        ({"extra": '\n[neural.monkey]\nfile = "missing.mat"\n'}, "neural.monkey.file: '"),
        ({"extra": "\n[colours]\nx = 1\n"}, "config: unknown key 'colours'"),
        ({"extra": '\n[neural.monkey]\nfile = "brain.npy"\nlayout = "rows"\n'}, "neural.monkey.layout: got 'rows'"),
        ({"distance": '"pearson"'}, "analyses.distance: got 'pearson'"),
        ({"extra": "\n[[models]]\nname = 1\n"}, "models[2].name: got 1"),
        ({"cv": '"five"'}, "analyses.cv: got 'five'. Pass a int"),
        ({"kwargs": '"x"'}, "models[0].kwargs: got 'x'. Use a TOML table"),
        ({"kwargs": "{ hidden = 4, bogus = 1 }"}, "models.small.factory: mymodels:build(**{'hidden': 4, 'bogus': 1})"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, change, message):
    config = _project(tmp_path, **change)
    for command in ("record", "report"):
        out = _run(command, str(config), "--no-progress")
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, out.stderr
        assert lines[0].startswith(f"rnnprobe {command}: error: ") and message in lines[0]
        assert not (tmp_path / "results").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results")]


def test_missing_config_and_missing_recordings(tmp_path):
    out = _run("record", str(tmp_path / "nope.toml"))
    assert out.returncode == 2 and out.stderr.strip() == (
        f"rnnprobe record: error: config: {str(tmp_path / 'nope.toml')!r} does not exist. Pass the path of a TOML "
        f"configuration file."
    )
    config = _project(tmp_path)
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "Run `rnnprobe record" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_a_model_that_fails_to_record_leaves_no_recordings(tmp_path):
    config = _project(tmp_path)
    x = np.load(tmp_path / "stimuli.npz")
    np.savez(tmp_path / "stimuli.npz", x=x["x"][..., :2], label=x["label"])  # 2 features for a 3-input GRU
    out = _run("record", str(config), "--no-progress")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "rnnprobe record: error: stimuli: GRU failed on batch 0" in out.stderr
    assert not (tmp_path / "results" / "recordings").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results")]


def test_record_never_replaces_a_folder_of_the_users_files(tmp_path):
    config = _project(tmp_path)
    theirs = tmp_path / "results" / "recordings" / "small.zarr"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    out = _run("record", str(config), "--no-progress")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "is not an rnnprobe store; refusing to delete it" in lines[0]
    assert (theirs / "notes.txt").read_text() == "mine" and sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "results" / "recordings" / "large.zarr").exists()


def test_export_before_the_config_and_help_says_configs_run_code(tmp_path):
    out = _run("report", "--help")
    assert "runs code like a Python script" in " ".join(out.stdout.split())
    config = _project(tmp_path, run='["pca"]')
    assert _run("record", str(config), "--no-progress").returncode == 0
    out = _run("report", "--export", "png", str(config), "--no-progress")  # the order --help shows
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "results" / "report_figures" / "pca.png").is_file()


def test_a_stale_recording_is_refused(tmp_path):
    config = _project(tmp_path, run='["pca"]')
    assert _run("record", str(config), "--no-progress").returncode == 0
    text = config.read_text().replace('layers = ["output", "l0.h"]', 'layers = ["output"]', 1)
    config.write_text(text)  # the config's layers changed after recording
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "was made from another configuration" in out.stderr, out.stderr
    assert _run("record", str(config), "--no-progress").returncode == 0
    assert _run("analyze", str(config), "--no-progress").returncode == 0


def test_analyze_without_run_uses_every_given_input(tmp_path):
    config = _project(tmp_path)
    text = config.read_text().replace('run = ["pca", "rdms", "rsa", "decoding"]\n', "")
    config.write_text(text)
    assert _run("record", str(config), "--no-progress").returncode == 0
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 0 and "brain: similarity" in out.stdout and "decoding" in out.stdout, out.stderr
    np.save(tmp_path / "brain.npy", np.zeros(10))  # a neural RDM of the wrong size is found, not ignored
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "neural['brain']: RDMs of 5 conditions" in out.stderr, out.stderr


def test_fixed_points_of_a_recurrent_submodule_from_a_config(tmp_path):
    _project(tmp_path)
    config = tmp_path / "dynamics.toml"
    config.write_text(
        textwrap.dedent("""
        output = "results"
        [stimuli]
        file = "stimuli.npz"
        [[models]]
        name = "wrapped"
        factory = "mymodels:wrapped"
        kwargs = { hidden = 5 }
        layers = ["rnn:l0.h"]
        fixed_point_module = "rnn"
        [analyses]
        run = ["fixed_points"]
        fixed_point_inputs = [[0.0, 0.0, 0.0]]
    """)
    )
    assert _run("record", str(config), "--no-progress").returncode == 0
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 0, out.stderr
    numbers = json.loads((tmp_path / "results" / "analysis.json").read_text())
    summary = numbers["sections"][0]["items"][1]["columns"]
    assert summary["model"] == ["wrapped"] and summary["fixed points"][0] >= 1
    config.write_text(config.read_text().replace('fixed_point_module = "rnn"', 'fixed_point_module = "gru"'))
    assert _run("record", str(config), "--no-progress").returncode == 0
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "models.wrapped.fixed_point_module" in out.stderr, out.stderr


def test_encoding_and_alignment_from_a_config(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "cells.npy", rng.normal(size=(40, 3, 1, 6)))  # stimulus x repetition x time x neuron
    config = _project(tmp_path, run='["pca", "encoding", "alignment"]',
                      extra='\n[neural.cells]\nresponses = "cells.npy"\n')  # fmt: skip
    stdout, figures, overview = _report_with(config, 'metric = "cka"')
    assert "cells encoding: best layer" in stdout and "alignment: nearest" in stdout
    assert figures == ["alignment.png", "encoding-cells.png", "pca.png"]
    assert "Alignment: cka distances" in overview
    config.write_text(config.read_text().replace('metric = "cka"', 'metric = "svd"'))
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "analyses.metric: got 'svd'" in out.stderr


def test_dsa_from_a_config(tmp_path):
    config = _project(tmp_path, run='["pca", "dsa"]', layers='["l0.h"]')
    stdout, figures, overview = _report_with(config, "dsa_delays = 2\ndsa_rank = 3")
    assert "dsa: nearest" in stdout
    assert figures == ["dsa.png", "pca.png"]
    assert "DSA: 2 delays, rank 3" in overview
    config.write_text(config.read_text().replace("dsa_rank = 3", 'dsa_rank = "ten"'))
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "dsa_rank" in out.stderr


def test_tdr_and_dpca_from_a_config(tmp_path):
    config = _project(tmp_path, run='["tdr", "dpca"]', layers='["l0.h"]')
    stdout, figures, _ = _report_with(config, 'variables = ["label"]\nparameters = ["label"]')
    assert "tdr: max R2" in stdout and "dpca: label variance" in stdout
    assert figures == ["dpca.png", "tdr.png"]
    config.write_text(config.read_text().replace('variables = ["label"]', 'variables = "label"'))
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 2 and "variables" in out.stderr


def test_interventions_and_speed_accuracy_from_a_config(tmp_path):
    config = tmp_path / "cooling.toml"
    config.write_text(
        textwrap.dedent("""
        output = "results"

        [stimuli]
        task = true
        n = 120

        [[models]]
        name = "BL"
        checkpoint = "occluded-bl"
        layers = ["layer1", "readout"]

        [[models]]
        name = "B"
        checkpoint = "occluded-b"
        layers = ["layer1", "readout"]

        [analyses]
        target = "label"
        cv = 3
        n_controls = 2

        [interventions."BL, lateral cooled"]
        model = "BL"
        connection = "lateral"
        from_step = 1

        [interventions."BL, layer1 silenced"]
        model = "BL"
        layer = "layer1"
        kind = "zero"
        units = [0, 1, 2, 3]
        steps = [2, 3]
    """)
    )
    out = _run("record", str(config), "--no-progress")
    assert out.returncode == 0, out.stderr
    cooled = Recording.load(tmp_path / "results" / "recordings" / "BL__lateral_cooled.zarr")
    assert cooled.provenance["interventions"][0]["connection"] == "lateral"
    intact = Recording.load(tmp_path / "results" / "recordings" / "BL.zarr")
    assert np.array_equal(cooled.get("readout")[:, 0], intact.get("readout")[:, 0])
    assert not np.allclose(cooled.get("readout")[:, -1], intact.get("readout")[:, -1])
    out = _run("report", str(config), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "BL, lateral cooled: focus layer" in out.stdout  # recorded and compared as one more model
    html = (tmp_path / "results" / "report.html").read_text()
    assert "Intervention: BL, lateral cooled" in html and "Intervention: BL, layer1 silenced" in html
    config.write_text(config.read_text().replace("n_controls = 2", 'n_controls = 2\nrun = ["speed_accuracy"]'))
    out = _run("analyze", str(config), "--no-progress")
    assert out.returncode == 0 and "speed-accuracy: best accuracy" in out.stdout, out.stderr
    config.write_text(config.read_text().replace('connection = "lateral"', 'connection = "top-down"'))
    out = _run("record", str(config), "--no-progress")
    assert (
        out.returncode == 2
        and "interventions.BL, lateral cooled.connection: BLT has no connection type 'top-down'" in out.stderr
    ), out.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('model = "nobody"\nconnection = "lateral"', "interventions.x.model: got 'nobody'"),
        ('model = "small"', "give either connection (a Lesion) or layer and kind"),
        ('model = "small"\nlayer = "l0.h"\nkind = "freeze"', "interventions.x: kind: got 'freeze'"),
        ('model = "small"\nconnection = "lateral"\nkind = "zero"', "interventions.x.kind: not a key of a Lesion"),
    ],
)
def test_bad_interventions_are_one_line_errors(tmp_path, table, message):
    config = _project(tmp_path, extra=f"\n[interventions.x]\n{table}\n")
    out = _run("record", str(config), "--no-progress")
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
