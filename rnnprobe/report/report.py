"""``Report``: figures, tables, text and analysis results in one self-contained HTML file."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_option
from .._version import __version__
from ..errors import ArgumentError, ArgumentTypeError, describe
from . import _html

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.protocol import AnalysisResult

FIGURE_FORMATS = ("svg", "png", "pdf")


@dataclass
class _Item:
    kind: str  # "text", "figure", "table", "result"
    name: str
    caption: str | None = None
    text: str | None = None
    figure: Any = None
    columns: dict[str, list[Any]] | None = None
    numbers: dict[str, Any] | None = None
    rendered: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def render(self, fmt: str, dpi: int = 150) -> bytes:
        """The figure's bytes in ``fmt``, rendered once (re-rendering a constrained-layout figure can
        move its tight bounding box by a fraction of a point).
        """
        if (fmt, dpi) not in self.rendered:
            self.rendered[fmt, dpi] = _render(self.figure, fmt, dpi=dpi)
        return self.rendered[fmt, dpi]


@dataclass
class _Section:
    title: str
    anchor: str
    items: list[_Item] = field(default_factory=list)


class Report:
    """A report: sections of text, figures, tables and analysis results, saved as one HTML file.

    The HTML is self-contained: styles inline, figures embedded as data URIs (SVG by default, or
    PNG), no scripts and no network fetches, so it opens offline and can be mailed as it is.
    ``save`` can also write every figure as PNG/SVG/PDF and all numbers as JSON next to it.

    Parameters
    ----------
    title : str

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> report = Report("Example")
    >>> report.section("Results")
    >>> report.add_text("Accuracy rises over time.")
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0.1, 0.5, 0.9])
    >>> report.add_figure(fig, caption="Accuracy per time step", name="accuracy")
    >>> report.add_table({"model": ["BLT", "B"], "accuracy": [0.91, 0.84]}, name="summary")
    >>> out = report.save(pathlib.Path(tempfile.mkdtemp()) / "report.html", export=["png"], data=True)
    >>> sorted(p.name for p in out.parent.rglob("*") if p.is_file())
    ['accuracy.png', 'report.html', 'report.json']
    >>> len(report), report.names()
    (3, ['text', 'accuracy', 'summary'])
    """

    def __init__(self, title: str = "rnnprobe report") -> None:
        if not isinstance(title, str) or not title.strip():
            raise ArgumentError(f"title: got {describe(title)}. Pass a non-empty string.")
        self.title = title
        self._sections: list[_Section] = []
        self._current: _Section | None = None
        self._anchors: set[str] = set()

    # --- building --------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(len(s.items) for s in self._sections)

    def names(self) -> list[str]:
        """The items' names in order (figure files and JSON keys use them)."""
        return [item.name for s in self._sections for item in s.items]

    def sections(self) -> list[str]:
        """The section titles in order ("" for items added before any section)."""
        return [s.title for s in self._sections]

    def section(self, title: str) -> None:
        """Start a section: the items added next go in it (and it gets an entry in the contents).
        Naming an existing section makes it current again.
        """
        if not isinstance(title, str) or not title.strip():
            raise ArgumentError(f"title: got {describe(title)}. Pass the section's title as a non-empty string.")
        self._current = self._find_or_create(title)

    def add_text(self, text: str, *, section: str | None = None, name: str | None = None) -> None:
        """A paragraph of plain text (blank lines separate paragraphs; no markup is interpreted)."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text: got {describe(text)}. Pass a string.")
        self._add(_Item("text", self._name(name, "text"), text=text), section)

    def add_figure(
        self, figure: Any, *, caption: str | None = None, name: str | None = None, section: str | None = None
    ) -> None:
        """A matplotlib figure (rendered when the report is saved)."""
        if not hasattr(figure, "savefig"):
            raise ArgumentTypeError(
                f"figure: got {describe(figure)}. Pass a matplotlib Figure (e.g. result.plot() or plt.figure())."
            )
        self._add(_Item("figure", self._name(name, "figure"), caption=caption, figure=figure), section)

    def add_table(
        self, table: Any, *, caption: str | None = None, name: str | None = None, section: str | None = None
    ) -> None:
        """A table: a pandas DataFrame, a dict of equal-length columns, or a list of row dicts."""
        columns = _columns(table)
        self._add(_Item("table", self._name(name, "table"), caption=caption, columns=columns), section)

    def add_result(
        self, result: AnalysisResult, *, caption: str | None = None, name: str | None = None, section: str | None = None
    ) -> None:
        """An analysis result: its figure (``result.plot()``) and its key numbers
        (``result.summary()``, a table). Every rnnprobe result follows
        :class:`~rnnprobe.analysis.protocol.AnalysisResult`.
        """
        from ..analysis.protocol import AnalysisResult

        if not isinstance(result, AnalysisResult):
            raise ArgumentTypeError(
                f"result: got {describe(result)}, which has no plot() and summary(). Pass an rnnprobe analysis "
                f"result (decode, pca, rdms, compare, bootstrap, find_fixed_points), or use add_figure/add_table."
            )
        numbers = {str(k): _plain(v) for k, v in result.summary().items()}
        kind = type(result).__name__.removesuffix("Result") or type(result).__name__
        default = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", kind).lower()  # FixedPointResult -> fixed-point
        item = _Item("result", self._name(name, default), caption=caption or _caption(result), figure=result.plot())
        item.numbers = numbers
        self._add(item, section)

    def _find_or_create(self, title: str) -> _Section:
        for s in self._sections:
            if s.title == title:
                return s
        created = _Section(title, self._anchor("section " + (title or "top")))
        self._sections.append(created)
        return created

    def _add(self, item: _Item, section: str | None) -> None:
        if section is not None:
            self.section(section)
        if self._current is None:
            self._current = self._find_or_create("")
        self._current.items.append(item)

    def _name(self, name: str | None, default: str) -> str:
        if name is not None and (not isinstance(name, str) or not _slug(name)):
            raise ArgumentError(f"name: got {describe(name)}. Pass a short name with letters or digits.")
        return self._anchor(name if name is not None else default)

    def _anchor(self, text: str) -> str:
        base = _slug(text) or "item"
        anchor, k = base, 2
        while anchor in self._anchors:
            anchor, k = f"{base}-{k}", k + 1
        self._anchors.add(anchor)
        return anchor

    # --- output ----------------------------------------------------------------------------

    def to_html(self, *, embed: str = "svg") -> str:
        """The report as one HTML string (figures embedded as ``embed``: "svg", "png", or "auto": PNG
        for figures of images such as heatmaps, SVG for the others).
        """
        check_option("embed", embed, ("auto", "svg", "png"))
        sections = []
        for s in self._sections:
            body = "".join(self._item_html(item, embed) for item in s.items)
            sections.append((s.anchor, s.title, body))
        return _html.page(self.title, sections, f"Made with rnnprobe {__version__}.")

    def _item_html(self, item: _Item, embed: str) -> str:
        if item.kind == "text":
            return _html.paragraphs(item.text or "")
        if item.kind == "table":
            return _html.table(item.columns or {}, item.caption, item.name)
        fmt, content = _embedded(item, embed)
        mime = "image/svg+xml" if fmt == "svg" else "image/png"
        uri = f"data:{mime};base64," + base64.b64encode(content).decode("ascii")
        out = _html.figure(uri, item.caption, item.name, alt=item.caption or item.name)
        if item.kind == "result" and item.numbers:
            rows = {"quantity": list(item.numbers), "value": [_cell(v) for v in item.numbers.values()]}
            out += _html.table(rows, None, f"{item.name}-numbers")
        return out

    def to_dict(self) -> dict[str, Any]:
        """All numbers and text of the report, JSON-ready (NaN as null)."""
        return {
            "title": self.title,
            "rnnprobe": __version__,
            "sections": [{"title": s.title, "items": [_item_dict(item) for item in s.items]} for s in self._sections],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (what ``save(..., data=True)`` writes)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def save(
        self, path: str | os.PathLike, *, embed: str = "auto", export: Any = (), data: bool = False, dpi: int = 150
    ) -> Path:
        """Write the report to ``path`` (.html), and optionally every figure in the ``export``
        formats ("png", "svg", "pdf") to ``<stem>_figures/<name>.<format>`` and all numbers to
        ``<stem>.json``. Files are written whole (to a temporary name, then renamed): an
        interrupted save leaves nothing that looks finished. Returns the HTML file's path.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentTypeError(f"path: got {describe(path)}. Pass a file name ending in .html.")
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ArgumentError(f"path: got {str(path)!r}. Pass a file name ending in .html.")
        if not path.parent.is_dir():
            raise ArgumentError(f"path: the folder {str(path.parent)!r} does not exist. Create it first.")
        formats = [export] if isinstance(export, str) else list(export)
        for fmt in formats:
            check_option("export", fmt, FIGURE_FORMATS)
        # everything is rendered in memory first: a figure that fails to render leaves no files
        page = self.to_html(embed=embed).encode("utf-8")
        exports = [
            (f"{item.name}.{fmt}", item.render(fmt, dpi))
            for s in self._sections
            for item in s.items
            if item.figure is not None
            for fmt in formats
        ]
        numbers = self.to_json().encode("utf-8") if data else None
        if exports:
            figures_dir = path.parent / f"{path.stem}_figures"
            figures_dir.mkdir(exist_ok=True)
            for name, content in exports:
                write_atomic(figures_dir / name, content)
        if numbers is not None:
            write_atomic(path.with_suffix(".json"), numbers)
        write_atomic(path, page)
        return path

    def __repr__(self) -> str:
        return f"<Report {self.title!r}: {len(self._sections)} section(s), {len(self)} item(s)>"


# --- helpers --------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _render(figure: Any, fmt: str, *, dpi: int = 150) -> bytes:
    """The figure's bytes; SVG and PDF without dates and with fixed ids (the same report, the same file)."""
    import matplotlib

    buffer = io.BytesIO()
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)  # no dates: the same file
    with matplotlib.rc_context({"svg.hashsalt": "rnnprobe"}):
        try:
            figure.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        except ValueError:  # a "$" in a layer or column name read as broken mathtext: draw the text as typed
            from matplotlib.text import Text

            for text in figure.findobj(Text):
                text.set_parse_math(False)
            buffer = io.BytesIO()
            figure.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


EMBED_PNG_DPI = 100  # heatmaps: about one pixel per RDM cell
SVG_LIMIT = 256 * 1024  # an SVG larger than this (dense scatter plots) is embedded as PNG when that is smaller


def _embedded(item: _Item, embed: str) -> tuple[str, bytes]:
    """(format, bytes) of a figure in the page. "auto": PNG (256 colours, 100 dpi) for heatmaps and for
    figures whose SVG is larger than the PNG and than ``SVG_LIMIT``; SVG for the others.
    """
    if embed != "auto":
        return embed, item.render(embed)
    if not _raster_heavy(item.figure):
        svg = item.render("svg")
        if len(svg) <= SVG_LIMIT:
            return "svg", svg
        png = _palette_png(item.render("png", EMBED_PNG_DPI))
        return ("png", png) if len(png) < len(svg) else ("svg", svg)
    return "png", _palette_png(item.render("png", EMBED_PNG_DPI))


def _palette_png(content: bytes) -> bytes:
    """The PNG with 256 colours (median cut, no dithering): about a third of the RGBA size for heatmaps."""
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        quantized = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        quantized.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _raster_heavy(figure: Any) -> bool:
    """Figures of images (heatmaps: RDMs, generalization matrices) are far smaller as PNG than as SVG."""
    axes = getattr(figure, "axes", [])
    return any(ax.images or any(type(c).__name__ == "QuadMesh" for c in ax.collections) for ax in axes)


def write_atomic(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` through a temporary file beside it and a rename: all or nothing."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; the user's umask decides, as for open()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _columns(table: Any) -> dict[str, list[Any]]:
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a pandas DataFrame
        columns = {str(k): [_plain(v) for v in table[k].tolist()] for k in table.columns}
    elif isinstance(table, dict):
        columns = {str(k): [_plain(v) for v in np.asarray(col, dtype=object).ravel()] for k, col in table.items()}
    elif isinstance(table, list | tuple) and table and all(isinstance(row, dict) for row in table):
        keys = list(dict.fromkeys(k for row in table for k in row))
        columns = {str(k): [_plain(row.get(k)) for row in table] for k in keys}
    else:
        raise ArgumentTypeError(
            f"table: got {describe(table)}. Pass a pandas DataFrame, a dict of columns ({{'model': [...], "
            f"'score': [...]}}) or a list of row dicts."
        )
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ArgumentError(f"table: columns have different lengths {lengths}. Pass columns of equal length.")
    return columns


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays as Python numbers and lists; non-finite floats as NaN (null in JSON)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return float("nan")
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(_html.format_value(v) for v in value)
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _item_dict(item: _Item) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": item.kind, "name": item.name}
    if item.caption:
        out["caption"] = item.caption
    if item.text is not None:
        out["text"] = item.text
    if item.columns is not None:
        out["columns"] = _json_safe(item.columns)
    if item.numbers is not None:
        out["numbers"] = _json_safe(item.numbers)
    return out


def _caption(result: Any) -> str:
    """The result's one-line repr (e.g. "DecodingResult: scores over time ... best 0.91"), or its
    type and layer when the repr is a dataclass dump.
    """
    text = repr(result)
    if text.startswith("<") and text.endswith(">") and len(text) <= 300:
        return text[1:-1]
    layer = getattr(result, "layer", None)
    return type(result).__name__ + (f" of {layer!r}" if isinstance(layer, str) else "")
