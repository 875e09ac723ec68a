"""Every internal link of the documentation (and README) points at a file that exists, and at a heading
that exists in it; every image is there. mkdocs --strict catches missing pages, not missing anchors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
# pages the docs build generates (scripts/gallery_hook.py): the gallery index and one page per tutorial
GENERATED = {(ROOT / "docs" / "gallery" / "index.md").resolve()} | {
    (ROOT / "docs" / "gallery" / f"{p.stem}.md").resolve() for p in (ROOT / "tutorials").glob("*.py")
}


def _slugs(page: Path) -> set[str]:
    slugify = pytest.importorskip("markdown.extensions.toc", reason="Markdown comes with the docs extra").slugify

    text = FENCE.sub("", page.read_text())
    return {slugify(m.group(1).strip(), "-") for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(FENCE.sub("", page.read_text()))]


def test_the_checker_sees_the_links():
    assert len(PAGES) > 20
    assert sum(len(_links(p)) for p in PAGES) > 30


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_internal_links_and_anchors_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z]+:", target) or target.startswith("//"):
            continue  # http(s), mailto: outside this check
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if destination in GENERATED:
            continue
        if not destination.exists():
            broken.append(
                f"{target}: no file {destination.relative_to(ROOT) if ROOT in destination.parents else destination}"
            )
            continue
        if anchor and destination.suffix == ".md" and anchor not in _slugs(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, "\n".join(broken)
