"""Every relative link in README.md and docs/*.md resolves: the file exists inside the
repository and the #anchor names a heading of it (GitHub's slugs). Links outside code
spans and code blocks only; web links are not fetched."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced and indented code blocks, code spans blanked."""
    lines, fenced, previous_blank = [], False, True
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        indented = (
            line.startswith("    ")
            and previous_blank
            and not line.lstrip().startswith(("-", "*", "|", "1"))
        )
        previous_blank = not line.strip() or (indented and previous_blank)
        if fenced or indented:
            continue
        lines.append((number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case; letters, digits, marks, '_', '-' and
    spaces kept, spaces become hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in ("L", "N", "M"))
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    return [
        (number, m.group(1))
        for number, line in prose_lines(path.read_text(encoding="utf-8"))
        for m in _LINK.finditer(line)
    ]


def test_the_documents_exist() -> None:
    names = {p.name for p in DOCUMENTS}
    assert {"README.md", "architecture.md", "protocol.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    broken = []
    for number, target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (document.parent / file_part).resolve() if file_part else document
        where = f"{document.relative_to(REPO)}:{number}: {target}"
        if not resolved.is_relative_to(REPO):
            broken.append(f"{where} points outside the repository")
        elif not resolved.exists():
            broken.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where}: no heading with that anchor in {resolved.name}")
    assert not broken, "\n".join(broken)


def test_no_document_sends_readers_to_notes_outside_the_repository() -> None:
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for name in ("DESIGN.md", "PROTOCOL.md", "../shared"):
            assert name not in text, f"{document.relative_to(REPO)} mentions {name}"


def test_the_checker_finds_broken_links(tmp_path: Path) -> None:
    # The checks above must be able to fail: a missing file, a missing anchor, a link
    # inside code that must be ignored.
    (tmp_path / "a.md").write_text(
        "# Title: One\n\n[ok](#title-one) [bad](#nope) [gone](missing.md) `[code](x.md)`\n"
        "\n```\n[fenced](y.md)\n```\n"
    )
    assert links(tmp_path / "a.md") == [(3, "#title-one"), (3, "#nope"), (3, "missing.md")]
    assert anchors(tmp_path / "a.md") == {"title-one"}
    assert slug("MSNP13–18 (in progress)") == "msnp1318-in-progress"
    assert slug("Challenges (CHL/QRY)") == "challenges-chlqry"
