"""The gallery: tutorials executed cell by cell into pages with their output and figures (scripts/gallery_*.py),
and the built pages in a real browser."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]') builds the gallery")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).parent))

import gallery_hook  # noqa: E402
from gallery_runner import cells  # noqa: E402
from test_report_browser import CHECK, CHROMIUM, _chromium  # noqa: E402  (the report's browser test's probe)

SCRIPT = """# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # A title
#
# Some *text*.

# %%
import matplotlib.pyplot as plt
x = 21
print("half of", 2 * x)

# %%
fig, ax = plt.subplots()
ax.plot([0, 1], [0, x])
fig.savefig("kept.png")
"""


def test_cells_of_a_percent_script():
    parsed = cells(SCRIPT)
    assert [c["kind"] for c in parsed] == ["markdown", "code", "code"]
    assert parsed[0]["source"] == "# A title\n\nSome *text*."
    assert parsed[1]["source"].startswith("import matplotlib.pyplot as plt")


def test_the_runner_keeps_each_cells_output_and_figures(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    runner = str(ROOT / "scripts" / "gallery_runner.py")
    done = subprocess.run([sys.executable, runner, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"MPLBACKEND": "Agg", "PATH": ""})  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result[1]["stdout"] == "half of 42\n" and result[1]["figures"] == []
    assert len(result[2]["figures"]) == 1 and result[2]["stdout"] == ""


def test_every_tutorial_has_a_question():
    assert set(gallery_hook.QUESTIONS) == {p.stem for p in (ROOT / "tutorials").glob("*.py")}


def _gallery_config(folder: Path) -> Path:
    """mkdocs.yml as it is (theme, nav, markdown extensions, the gallery hook) without the API reference's
    renderer: the site's pages and the gallery as the docs build makes them, in seconds, where mkdocstrings
    took 5 minutes of this test (the whole site's strict build is CI's own step, before the tests).
    """
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(ROOT / "docs")
    config["hooks"] = [str(ROOT / "scripts" / "gallery_hook.py")]
    config["plugins"] = [p for p in config["plugins"] if p == "search"]
    path = folder / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cache_complete() -> bool:
    tutorials = sorted((ROOT / "tutorials").glob("*.py"))
    return all((gallery_hook.CACHE / f"{t.stem}-{gallery_hook._digest(t)}.json").is_file() for t in tutorials)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it with apt-get)")
@pytest.mark.skipif(not _cache_complete(), reason="the gallery is not built for this code: run mkdocs build first "
                    "(.ci/run does, before the tests)")  # fmt: skip
def test_the_built_gallery_pages_show_every_figure_in_chromium(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(["mkdocs", "build", "--strict", "--quiet", "--config-file", str(_gallery_config(tmp_path)),
                           "--site-dir", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    pages = sorted((site / "gallery").glob("*/index.html"))
    assert len(pages) == len(gallery_hook.QUESTIONS)
    total = 0
    for page in [site / "gallery" / "index.html", *pages]:
        probe = page.with_name("probe.html")
        probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
        out = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
        found = re.search(r'<pre id="browser-check">(.*?)</pre>', out.stdout)
        assert found, f"{page}: did not load"
        check = json.loads(found.group(1).replace("&quot;", '"'))
        assert check["broken"] == [], f"{page}: {check['broken']}"
        total += check["images"]
    assert total > 20  # the tutorials' figures, and the index's thumbnails
