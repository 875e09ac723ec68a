"""The saved report in a real browser: headless Chromium (Debian's chromium; .ci/run installs it)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from test_compare import _models
from test_report import _report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it with apt-get)")

CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.alt);
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images: images.length, broken: broken});
  document.body.appendChild(out);
});
</script>"""


def _chromium(*args, timeout=120):
    """Headless chromium on the given flags and page, with no host name resolving: a page loads only what it ships
    (the docs theme's web-font link had each gallery page wait about 5 s for a name lookup on a machine without
    internet; a report that needed the network would show broken images here)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--host-resolver-rules=MAP * ~NOTFOUND"]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


def _golden(tmp_path):
    report, _ = _report(np.random.default_rng(0))
    return report.save(tmp_path / "report.html"), 6


def _comparison(tmp_path):
    from rnnprobe.analysis import compare_models
    from rnnprobe.analysis.rsa import compute_rdms

    recs, _ = _models(np.random.default_rng(0))
    neural = compute_rdms(recs["late"], "a", time=4)
    result = compare_models(recs, target="label", neural={"IT": neural}, cv=3, progress=False)
    return result.save(tmp_path / "compare.html"), 6  # pca, rdms, rsa, decoding, generalization, alignment


@pytest.mark.parametrize("make", [_golden, _comparison], ids=["golden-report", "model-comparison"])
def test_every_figure_renders_in_chromium_without_console_errors(tmp_path, make):
    import json
    import re

    import matplotlib.image

    page, n_figures = make(tmp_path)
    # a copy with a checking script (the report itself has none): are all images decoded with a size?
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    done = _chromium("--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout)
    assert found, f"the page did not load:\n{done.stderr[-2000:]}"
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert check == {"images": n_figures, "broken": []}
    errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "probe.html" in line]
    assert not errors, errors

    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", page.as_uri())
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page: text and figures drew


def test_console_errors_are_caught(tmp_path):
    """The console check above can fail: a page that logs an error is seen."""
    page = tmp_path / "probe.html"
    page.write_text("<html><body><script>console.error('broken figure');</script></body></html>")
    done = _chromium("--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom", page.as_uri())
    assert any("CONSOLE" in line and "probe.html" in line for line in done.stderr.splitlines())
