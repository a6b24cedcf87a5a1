"""mIRC-formatted IRC text → RichText."""

from __future__ import annotations

import re
from dataclasses import replace

from .mirc_colors import color_of
from .model import MessageKind, RichText, Span

__all__ = ["from_mirc", "strip_mirc"]

BOLD, COLOR, HEX_COLOR, RESET = "\x02", "\x03", "\x04", "\x0f"
MONOSPACE, REVERSE, ITALIC, STRIKE, UNDERLINE = "\x11", "\x16", "\x1d", "\x1e", "\x1f"

_TOGGLES = {BOLD: "bold", ITALIC: "italic", UNDERLINE: "underline", STRIKE: "strike"}
_TOGGLES[MONOSPACE] = "code"
# One formatting code, or another control character (CTCP \x01, NUL, CR…) to drop.
_CODE = re.compile(
    r"\x03(?:(\d{1,2})(?:,\d{1,2})?)?"
    r"|\x04(?:([0-9a-fA-F]{6})(?:,[0-9a-fA-F]{6})?)?"
    r"|[\x00-\x08\x0b-\x1f\x7f]"
)


def from_mirc(line: str, kind: MessageKind = MessageKind.TEXT) -> RichText:
    """Parse one IRC message. Backgrounds and reverse video are dropped: no other side has them."""
    spans: list[Span] = []
    style = Span("")
    pos = 0
    for match in _CODE.finditer(line):
        if match.start() > pos:
            spans.append(style.with_text(line[pos : match.start()]))
        pos = match.end()
        code = match.group(0)
        first = code[0]
        if first in _TOGGLES:
            name = _TOGGLES[first]
            style = replace(style, **{name: not getattr(style, name)})
        elif first == COLOR:
            number = match.group(1)
            style = replace(style, color=color_of(int(number)) if number else None)
        elif first == HEX_COLOR:
            value = match.group(2)
            style = replace(style, color=int(value, 16) if value else None)
        elif first == RESET:
            style = Span("")
        # REVERSE and other control characters: dropped.
    if pos < len(line):
        spans.append(style.with_text(line[pos:]))
    return RichText(spans, kind).merged()


def strip_mirc(line: str) -> str:
    """``line`` without formatting codes or control characters."""
    return from_mirc(line).plain()
