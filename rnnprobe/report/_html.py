"""The report's HTML: one self-contained page (inline CSS, figures as data URIs, no scripts, no fetches)."""

from __future__ import annotations

import html
import math
from typing import Any

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;border-bottom:2px solid #0072B2;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ccc}
nav.toc{background:#f6f8fa;border:1px solid #ddd;padding:.5em 1em;border-radius:4px}
nav.toc ol{margin:.3em 0}
figure{margin:1.2em 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f0f3f6}
td.text,th.text{text-align:left}
caption{caption-side:top;text-align:left;font-size:.9em;color:#555;padding-bottom:.3em}
footer{margin-top:3em;font-size:.8em;color:#777}
"""


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def format_value(value: Any) -> str:
    """A number with 4 significant digits (integers whole), anything else as text."""
    if isinstance(value, bool) or value is None:
        return escape(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    return escape(value)


def paragraphs(text: str) -> str:
    """Plain text: blank lines separate paragraphs; everything escaped."""
    blocks = [b.strip() for b in str(text).split("\n\n") if b.strip()]
    return "".join(f"<p>{escape(b)}</p>" for b in blocks)


def table(columns: dict[str, list[Any]], caption: str | None, anchor: str) -> str:
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    numeric = {k: all(isinstance(v, int | float) and not isinstance(v, bool) for v in columns[k]) for k in names}
    head = "".join(f'<th class="{"num" if numeric[k] else "text"}">{escape(k)}</th>' for k in names)
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="{"num" if numeric[k] else "text"}">{format_value(columns[k][i])}</td>' for k in names)
        + "</tr>"
        for i in range(n)
    )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<table id="{anchor}">{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def figure(data_uri: str, caption: str | None, anchor: str, alt: str) -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure id="{anchor}"><img src="{data_uri}" alt="{escape(alt)}">{cap}</figure>'


def page(title: str, sections: list[tuple[str, str, str]], footer: str) -> str:
    """sections: (anchor, title, body html); a table of contents when there are two or more."""
    toc = ""
    if len(sections) > 1:
        items = "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t, _ in sections)
        toc = f'<nav class="toc"><strong>Contents</strong><ol>{items}</ol></nav>'
    body = "".join(
        f'<section id="{a}">' + (f"<h2>{escape(t)}</h2>" if t else "") + f"{b}</section>" for a, t, b in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{escape(title)}</h1>{toc}{body}<footer>{escape(footer)}</footer></body></html>\n"
    )
