"""mkdocs hook: the tutorials rendered into the site with their printed output and figures.

At every docs build each ``tutorials/*.py`` (jupytext percent format) is executed cell by cell in a fresh
process (``scripts/gallery_runner.py``, in a temporary folder, one thread, the Agg backend); after each cell the
printed text and every open matplotlib figure are kept. The hook adds one page per tutorial
(``gallery/<name>.md``: the markdown cells, the code, its output and figures) and a gallery index with a
thumbnail (the tutorial's last figure) and the question each tutorial answers. So a figure in the docs is
always the one the current code makes. The same runs every ```python title="Example"``` block of a page
(from the repository's root, so that examples read ``../shared/data``) and shows its output and figures
below it. Results are cached in ``.cache/gallery`` by the hash of the tutorial and of the package's
sources, so a rebuild without changes does not run them again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
CACHE = ROOT / ".cache" / "gallery"
RUNNER = Path(__file__).with_name("gallery_runner.py")
QUESTIONS = {
    "01_record_your_model": "How do I record an LSTM's cell states and gates, or my own recurrent loop?",
    "02_rsa_92_images": "Is this layer's geometry like human and monkey IT's?",
    "03_decoding_blt": "When does the digit become decodable, and does the code stay the same over time?",
    "04_fixed_points": "What attractors and saddles does a flip-flop network compute with?",
    "05_comparison_report": "How do several models compare, side by side, in one report?",
    "06_timescales_and_memory": "Does my LSTM keep memory in c or in h, and for how long?",
    "07_flyhash": "Can a sparse random expansion compress a layer and keep its geometry?",
    "08_assemblies": "How do assemblies of neurons form, associate and merge?",
    "09_alignment_blt": "Are two networks' representations the same up to a rotation?",
    "10_macaque_it": "How well do a network's units predict macaque IT neurons?",
    "11_fmri_evc_it": "Which layer and step match early visual cortex and IT in fMRI?",
    "12_jpca_motor_cortex": "Is motor-cortex activity rotational?",
    "13_context_dependent_decisions": "How does a network select the evidence the context says to use?",
    "14_motor_cortex_vs_rnn": "Does a network trained to produce motor-cortex activity have its dynamics?",
    "15_interventions_and_compute": "Is recurrence required, and is it worth its compute?",
    "16_scale_with_dask": "How do I analyse a recording larger than memory on a dask cluster?",
}


def _package_digest() -> str:
    h = hashlib.sha256(RUNNER.read_bytes())
    for source in sorted((ROOT / "rnnprobe").rglob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()


def _digest(tutorial: Path) -> str:
    return hashlib.sha256(tutorial.read_bytes() + _package_digest().encode()).hexdigest()[:20]


def _run(tutorial: Path, name: str | None = None, cwd: Path | None = None) -> list[dict]:
    """The tutorial's cells with their outputs (cached); run in ``cwd`` (default: a temporary folder)."""
    cached = CACHE / f"{name or tutorial.stem}-{_digest(tutorial)}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    if (ROOT.parent / "shared" / "data").is_dir():  # tutorials run in a temporary folder: show the loaders the data
        env.setdefault("RNNPROBE_DATA", str(ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as folder:
        env["TMPDIR"] = folder
        done = subprocess.run([sys.executable, str(RUNNER), str(tutorial)], cwd=cwd or folder, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"gallery: {tutorial.name} failed:\n{done.stderr[-3000:]}")
    cells = json.loads(done.stdout.splitlines()[-1])
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{name or tutorial.stem}-*.json"):
        old.unlink()
    cached.write_text(json.dumps(cells))
    return cells


EXAMPLE = re.compile(r'^```python title="Example"\n(.*?)^```[ \t]*$', re.S | re.M)


def on_page_markdown(markdown, page, config, files):
    """Run each page's ```python title="Example"``` blocks (cached) and show their output and figures below."""

    def show(match: re.Match) -> str:
        code = match.group(1)
        key = "example-" + hashlib.sha256(code.encode()).hexdigest()[:12]
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / f"{key}.py"
            script.write_text("# %%\n" + code)
            cell = _run(script, key, cwd=ROOT)[0]  # from the repository's root: ../shared/data paths work
        parts = [match.group(0), ""]
        if cell["stdout"].strip():
            parts += ["```text", cell["stdout"].rstrip(), "```", ""]
        parts += [f"![the example's figure](data:image/png;base64,{png})" for png in cell["figures"]]
        return "\n".join(parts)

    return EXAMPLE.sub(show, markdown)


def _page(stem: str, cells: list[dict], config, files) -> str:
    lines = [f"*{QUESTIONS.get(stem, '')}* — source: `tutorials/{stem}.py` (run it, or open it as a notebook "
             "with jupytext).", ""]  # fmt: skip
    figure = 0
    for cell in cells:
        if cell["kind"] == "markdown":
            lines += [cell["source"], ""]
            continue
        lines += ["```python", cell["source"].rstrip(), "```", ""]
        if cell["stdout"].strip():
            lines += ["```text", cell["stdout"].rstrip(), "```", ""]
        for png in cell["figures"]:
            figure += 1
            name = f"gallery/{stem}/figure-{figure}.png"
            files.append(File.generated(config, name, content=base64.b64decode(png)))
            lines += [f"![figure {figure} of {stem}]({stem}/figure-{figure}.png)", ""]
    return "\n".join(lines)


def on_config(config):
    """The nav's "Gallery" entry becomes a section: the index, then every tutorial's page."""
    pages = [{"Index": "gallery/index.md"}]
    pages += [{f"{t.stem[:2]}. {t.stem[3:].replace('_', ' ')}": f"gallery/{t.stem}.md"}
              for t in sorted(TUTORIALS.glob("*.py"))]  # fmt: skip
    for i, entry in enumerate(config.nav or []):
        if isinstance(entry, dict) and entry.get("Gallery") == "gallery/index.md":
            config.nav[i] = {"Gallery": pages}
    return config


def on_files(files, config):
    """Execute (or take from the cache) every tutorial; add its page, its figures and the index."""
    entries = []
    for tutorial in sorted(TUTORIALS.glob("*.py")):
        cells = _run(tutorial)
        files.append(File.generated(config, f"gallery/{tutorial.stem}.md",
                                    content=_page(tutorial.stem, cells, config, files)))  # fmt: skip
        figures = [png for cell in cells for png in cell["figures"]]
        entries.append((tutorial.stem, len(figures)))
    files.append(File.generated(config, "gallery/index.md", content=_index(entries)))
    return files


def _index(entries: list[tuple[str, int]]) -> str:
    lines = ["# Gallery", "", "Every tutorial, executed when this site was built, with its output and figures.", ""]
    for stem, n_figures in entries:
        title = stem.split("_", 1)[1].replace("_", " ")
        lines += [f"## [{stem[:2]}. {title.capitalize()}]({stem}.md)", "", QUESTIONS.get(stem, ""), ""]
        if n_figures:
            lines += [f"[![{title}]({stem}/figure-{n_figures}.png){{ width=320 }}]({stem}.md)", ""]
    return "\n".join(lines)
