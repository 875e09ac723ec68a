"""Every analysis page reads in the same order: a runnable example first (executed with its figure by the
docs build), then what the numbers mean, then "How it works", then the references."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGES = sorted((Path(__file__).resolve().parents[1] / "docs" / "analysis").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_analysis_page_opens_with_an_example_and_keeps_the_order(page):
    text = page.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("# "), "a title first"
    assert lines[1] == '```python title="Example"', "the example right after the title (the docs build runs it)"
    example = text.split('```python title="Example"\n', 1)[1].split("\n```", 1)[0]
    assert len([line for line in example.splitlines() if line.strip()]) <= 16, "an example of about 10 lines"
    assert re.search(r"\.plot\(", example), "the example makes the figure shown under it"
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert "How it works" in headings and headings[-1] == "References", headings
    assert headings.index("How it works") < headings.index("References")
    before = text.split("## How it works", 1)[0].split("\n```", 2)[-1]
    assert len(before.split()) >= 15, "what the example's numbers and figure mean, before how it works"
