import subprocess
import sys

import numpy as np

from rnnprobe import Recording
from rnnprobe.cli import main
from rnnprobe.demo import class_variance_share


def test_class_variance_share_equals_pooled_r2_of_label_regression(rng):
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    labels = rng.integers(0, 3, size=60)
    states = rng.normal(size=(60, 4, 5)) + labels[:, None, None] * np.array([0.0, 0.5, 1.0, 2.0])[None, :, None]
    onehot = np.eye(3)[labels]
    expected = [
        r2_score(states[:, t], LinearRegression().fit(onehot, states[:, t]).predict(onehot),
                 multioutput="variance_weighted")
        for t in range(4)
    ]  # fmt: skip
    np.testing.assert_allclose(class_variance_share(states, labels), expected, rtol=1e-10)


def test_demo_quick_writes_a_complete_recording(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy" in out and "<Recording: 256 stimuli, 15 layers, lazy, on disk>" in out
    rec = Recording.load(tmp_path / "delayed_recall.zarr")
    assert rec.shapes["lstm:l1.c"] == (256, 12, 32)
    assert rec.shapes["readout"] == (256, 12, 4)


def test_command_line_entry_point():
    out = subprocess.run([sys.executable, "-m", "rnnprobe.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout
    out = subprocess.run([sys.executable, "-m", "rnnprobe.cli", "demo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--quick" in out.stdout
    out = subprocess.run([sys.executable, "-m", "rnnprobe.cli", "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_errors_are_one_line_with_exit_2(tmp_path, capsys):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "delayed_recall.zarr").mkdir()
    (tmp_path / "thesis" / "delayed_recall.zarr" / "notes.txt").write_text("keep")
    assert main(["demo", "--quick", "--out", str(tmp_path / "thesis"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnprobe demo: error: store:")
