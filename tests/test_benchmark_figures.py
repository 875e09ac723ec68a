"""The benchmarks page's figures come from the scripts' saved results, checked and drawn as they are."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _figures  # noqa: E402
import _machine  # noqa: E402


def _hook():
    spec = importlib.util.spec_from_file_location(
        "benchmark_figures_hook", ROOT / "scripts" / "benchmark_figures_hook.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_saved_results_are_consistent_and_name_their_machine(monkeypatch):
    kinds = _figures.load_results()
    assert kinds, "benchmarks/results holds the runs the benchmarks page draws"
    for kind, results in kinds.items():
        for data in results:
            assert data["cpu"] in data["machine"] and "thread(s)" in data["machine"]
            monkeypatch.setattr(_machine, "cpu_model", lambda cpu=data["cpu"]: cpu)
            assert _machine.machine_kind() == kind, "each file sits in its CPU's folder"
            assert all(np.isfinite(row["ratio"]) and row["ratio"] > 0 for row in data["rows"]), kind


def test_results_save_atomically_and_load_back(tmp_path, monkeypatch):
    results = _machine.Results("benchmarks/example_bench.py")
    results.add("case a", "anchor", 2.0, 0.5, goal=3)
    results.add("case b", "anchor", 1.0, 2.0)
    path = Path(results.save(str(tmp_path / "some-cpu")))
    assert path.name == "example_bench.json" and not list(tmp_path.rglob("*.part"))
    loaded = _figures.load_results(tmp_path)["some-cpu"][0]
    assert [row["ratio"] for row in loaded["rows"]] == [4.0, 0.5]
    fig = _figures.draw_ratios([loaded])
    bars = fig.axes[0].patches
    np.testing.assert_allclose([bar.get_width() for bar in bars], [4.0, 0.5])
    assert [bar.get_facecolor()[:3] for bar in bars] == [(0.0, 114 / 255, 178 / 255), (230 / 255, 159 / 255, 0.0)]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets()[:, 0], [3, 1])  # goals; none = 1x


def test_a_ratio_its_times_do_not_give_is_refused(tmp_path):
    folder = tmp_path / "cpu"
    folder.mkdir()
    row = {"case": "x", "anchor": "a", "anchor_s": 1.0, "ours_s": 1.0, "ratio": 7.0, "goal": None}
    (folder / "bad.json").write_text(json.dumps({"script": "bad", "cpu": "c", "machine": "m", "date": "d",
                                                 "rows": [row]}))  # fmt: skip
    with pytest.raises(ValueError, match="ratio that its times do not give"):
        _figures.load_results(tmp_path)


def test_the_hook_puts_one_decodable_figure_per_machine_kind_on_the_page():
    from PIL import Image

    hook = _hook()
    page = hook.on_page_markdown(f"# Benchmarks\n\n{hook.MARKER}\n", None, None, None)
    images = page.split("data:image/png;base64,")[1:]
    assert len(images) == len(_figures.load_results()) >= 1
    import io

    for encoded in images:
        image = Image.open(io.BytesIO(base64.b64decode(encoded.split(")", 1)[0])))
        assert image.size[0] > 500 and image.size[1] > 100
    assert hook.on_page_markdown("no marker", None, None, None) == "no marker"
