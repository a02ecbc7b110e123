"""The README and docs/ as a reader uses them: every make target listed, every relative link reachable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "events" / "README.md"]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"(?m)^#+ (.+)$", markdown)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings}


def test_the_readme_lists_every_make_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = re.search(r"(?m)^\.PHONY: (.+)$", makefile)
    assert targets
    readme = (ROOT / "README.md").read_text()
    missing = [t for t in targets.group(1).split() if f"`make {t}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_reach_a_file_and_its_heading(doc: Path) -> None:
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: {target}"
        if anchor:
            assert anchor in _anchors(linked.read_text()), f"{doc.name}: {target}"
