"""Report: structure of the saved HTML and JSON, self-containedness, determinism, errors, summaries."""

import base64
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import matplotlib
import numpy as np
import pytest

from rnnprobe.analysis.decoding import decode
from rnnprobe.analysis.fixed_points import find_fixed_points
from rnnprobe.analysis.pca import fit_pca
from rnnprobe.analysis.rsa import compare_model_to_data, compute_rdms
from rnnprobe.errors import ArgumentError, ArgumentTypeError
from rnnprobe.report import Report
from rnnprobe.testing import make_recording

matplotlib.use("Agg")


class _Outline(HTMLParser):
    """Tags, attributes and section ids of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links, self.sections, self.headings = [], [], [], [], []
        self._heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        if tag == "a":
            self.links.append(attrs.get("href"))
        if tag == "section":
            self.sections.append(attrs.get("id"))
        self._heading = tag == "h2"

    def handle_data(self, data):
        if self._heading:
            self.headings.append(data)
            self._heading = False


def _recording(rng, n=60, t=5, units=8):
    return make_recording(n, t, units, onset=2, signal=2.0, seed=rng)  # decodable from step 2


def _bistable(x, u):
    import torch

    return torch.stack([x[:, 0] + 0.1 * (x[:, 0] - x[:, 0] ** 3) + u[:, 0], 0.9 * x[:, 1]], dim=1)


def _report(rng):
    import matplotlib.pyplot as plt

    rec = _recording(rng)
    report = Report("Golden <report> & co")
    report.add_text("Before any section.\n\nA second paragraph with <b>no markup</b>.")
    report.section("Representations")
    report.add_result(fit_pca(rec, "h", n_components=3))
    rdms = compute_rdms(rec, "h")
    report.add_result(rdms, name="rdms")
    report.add_result(compare_model_to_data(rdms, rdms.dissimilarities[-1]), name="rsa")
    report.section("Decoding")
    report.add_result(decode(rec, "h", "label", cv=3, n_permutations=20, seed=0), name="decoding")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    report.add_figure(fig, caption="A line", name="line")
    report.add_table({"model": ["a", "b"], "score": [0.5, np.nan]}, caption="Scores", name="scores")
    fp = find_fixed_points(_bistable, inputs=[0.0], initial_states=rng.uniform(-2, 2, size=(30, 2)))
    report.add_result(fp, section="Dynamics")
    return report, fp


def test_saved_report_structure_numbers_and_files(rng, tmp_path):
    report, fp = _report(rng)
    assert report.sections() == ["", "Representations", "Decoding", "Dynamics"]
    assert report.names() == ["text", "pca", "rdms", "rsa", "decoding", "line", "scores", "fixed-point"]
    out = report.save(tmp_path / "r.html", export=["png", "svg", "pdf"], data=True)
    page = out.read_text()
    outline = _Outline()
    outline.feed(page)
    assert outline.sections == ["section-top", "section-representations", "section-decoding", "section-dynamics"]
    assert outline.headings == ["Representations", "Decoding", "Dynamics"]
    assert outline.links == ["#" + s for s in outline.sections]  # the table of contents
    assert outline.tags.count("figure") == 6 and len(outline.images) == 6  # 5 results and one figure
    assert "script" not in outline.tags and "http://" not in page.replace("http://www.w3.org", "")
    assert "<figcaption>PCAResult of &#x27;h&#x27;</figcaption>" in page  # a short caption, not a dump
    assert "&lt;b&gt;no markup&lt;/b&gt;" in page and "Golden &lt;report&gt; &amp; co" in page
    kinds = []
    for img in outline.images:  # every figure is embedded: a whole SVG document, or PNG for heatmaps
        assert 0 < len(img["alt"]) <= 300
        payload = base64.b64decode(img["src"].split(",", 1)[1])
        if img["src"].startswith("data:image/svg+xml;base64,"):
            ET.fromstring(payload)
            kinds.append("svg")
        else:
            assert img["src"].startswith("data:image/png;base64,") and payload[:8] == b"\x89PNG\r\n\x1a\n"
            kinds.append("png")
    assert kinds.count("png") == 1  # the RDM heatmaps; lines and points stay vector graphics
    files = sorted(p.name for p in (tmp_path / "r_figures").iterdir())
    names = ["decoding", "fixed-point", "line", "pca", "rdms", "rsa"]
    assert files == sorted(f"{n}.{ext}" for n in names for ext in ("pdf", "png", "svg"))
    assert (tmp_path / "r_figures" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "r_figures" / "line.pdf").read_bytes()[:5] == b"%PDF-"

    data = json.loads((tmp_path / "r.json").read_text())
    assert list(data) == ["title", "rnnprobe", "sections"]
    assert [s["title"] for s in data["sections"]] == report.sections()
    items = {i["name"]: i for s in data["sections"] for i in s["items"]}
    assert items["scores"]["columns"] == {"model": ["a", "b"], "score": [0.5, None]}  # NaN is null
    fixed = items["fixed-point"]["numbers"]
    assert fixed["fixed points"] == len(fp) == 3 and fixed["stable"] == 2 and fixed["unstable"] == 1
    assert fixed["largest q"] == pytest.approx(fp.q.max())
    assert set(items["decoding"]["numbers"]) >= {"peak score", "peak time", "chance", "clusters p < 0.05"}
    assert not list(tmp_path.glob("**/*.part"))


def test_embedded_png_and_deterministic_output(rng, tmp_path):
    report, _ = _report(rng)
    a = report.save(tmp_path / "a.html").read_bytes()
    b = report.save(tmp_path / "b.html").read_bytes()
    assert a == b  # no dates, fixed SVG ids: the same report gives the same file
    png = report.to_html(embed="png")
    assert png.count("data:image/png;base64,") == 6 and "image/svg" not in png


def test_summaries_report_the_results_numbers(rng):
    rec = _recording(rng)
    pca = fit_pca(rec, "h", n_components=3)
    s = pca.summary()
    assert s["variance PC1"] == pca.explained_variance_ratio[0]
    assert s["variance PC1-3"] == pytest.approx(pca.explained_variance_ratio.sum())
    assert s["time of max participation ratio"] == pca.times[np.argmax(pca.participation_ratio)]
    result = decode(rec, "h", "label", cv=3)
    s = result.summary()
    assert s["peak score"] == result.scores.max() and s["peak time"] == result.times[np.argmax(result.scores)]
    assert s["peak time"] >= 2  # the planted information starts at step 2
    general = decode(rec, "h", "label", cv=3, generalize=True).summary()
    assert general["peak diagonal score"] <= general["peak score"]


def test_bad_input_gets_clear_errors(rng, tmp_path):
    report = Report()
    with pytest.raises(ArgumentTypeError, match=r"figure: got \[1, 2\]"):
        report.add_figure([1, 2])
    with pytest.raises(ArgumentError, match=r"table: columns have different lengths \{'a': 2, 'b': 1\}"):
        report.add_table({"a": [1, 2], "b": [1]})
    with pytest.raises(ArgumentTypeError, match=r"table: got 'a,b'"):
        report.add_table("a,b")
    with pytest.raises(ArgumentTypeError, match=r"has no plot\(\) and summary\(\)"):
        report.add_result(np.zeros(3))
    with pytest.raises(ArgumentError, match="title: got ''"):
        Report("")
    with pytest.raises(ArgumentError, match=r"path: got .*ending in \.html"):
        report.save(tmp_path / "r.pdf")
    with pytest.raises(ArgumentError, match="does not exist"):
        report.save(tmp_path / "missing" / "r.html")
    with pytest.raises(ArgumentError, match="export"):
        report.save(tmp_path / "r.html", export=["gif"])
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_interrupted_save_leaves_no_report(tmp_path):
    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("disk full")

    report = Report()
    report.add_text("partial")
    report.add_figure(Broken())
    with pytest.raises(RuntimeError, match="disk full"):
        report.save(tmp_path / "r.html", data=True)
    assert not list(tmp_path.iterdir())  # no HTML, no JSON, no temporary files


def test_saved_files_follow_the_umask_and_are_byte_identical(rng, tmp_path):
    import os

    report, _ = _report(rng)
    old = os.umask(0o022)
    try:
        first = report.save(tmp_path / "a.html", export=["pdf", "svg"], data=True)
    finally:
        os.umask(old)
    assert first.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    second = report.save(tmp_path / "b.html", export=["pdf", "svg"], data=True)
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    for fmt in ("pdf", "svg"):
        a = (tmp_path / "a_figures" / f"line.{fmt}").read_bytes()
        assert a == (tmp_path / "b_figures" / f"line.{fmt}").read_bytes()
    assert b"CreationDate" not in (tmp_path / "a_figures" / "line.pdf").read_bytes()
