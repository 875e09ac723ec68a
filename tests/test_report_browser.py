"""The saved report in a real browser: headless Chromium (Debian's chromium; .ci/run installs it)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
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
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


def test_every_figure_renders_in_chromium_without_console_errors(tmp_path):
    import json
    import re

    import matplotlib.image

    report, _ = _report(np.random.default_rng(0))
    page = report.save(tmp_path / "report.html")
    # a copy with a checking script (the report itself has none): are all images decoded with a size?
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    done = _chromium("--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout)
    assert found, f"the page did not load:\n{done.stderr[-2000:]}"
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert check == {"images": 6, "broken": []}
    errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "report.html" in line]
    assert not errors, errors

    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars", page.as_uri())
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page: text and figures drew
