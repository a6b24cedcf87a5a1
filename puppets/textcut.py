"""Where long text may be cut into parts: between grapheme clusters, preferably at a space.

A part must never end inside what a reader sees as one character: a UTF-8 sequence (cuts
are between code points), a surrogate pair, a letter and its combining marks, a Hangul
syllable written as jamo, a flag (two regional indicators) or an emoji ZWJ sequence (👩‍💻).
The rules are those of Unicode's extended grapheme clusters (UAX #29), compacted to what
``unicodedata`` can tell: Extend ≈ categories Mn/Me (plus ZWNJ, emoji modifiers and tag
characters), SpacingMark ≈ Mc, and no break after a ZWJ or a virama. They err towards
keeping more together, never less. Standard library only (``puppets`` has no dependencies
for this).
"""

from __future__ import annotations

import unicodedata

__all__ = ["breakable_space", "cluster_end", "is_boundary", "space_before"]

ZWJ = "\u200d"
# Whitespace that must not become a line break: no-break spaces, and the C0 characters
# Python counts as whitespace that IRC uses as formatting codes (\x1d italics, \x1f underline).
_NO_BREAK = frozenset("\u00a0\u2007\u202f\x1c\x1d\x1e\x1f")
# ZWNJ, halfwidth kana sound marks, Thai and Lao AM (spacing marks Python calls letters)
_EXTEND_EXTRA = frozenset("\u200c\uff9e\uff9f\u0e33\u0eb3")


def breakable_space(ch: str) -> bool:
    return ch.isspace() and ch not in _NO_BREAK


def _extends(ch: str) -> bool:
    """Joins the character before it (UAX #29 Extend, ZWJ, SpacingMark)."""
    cp = ord(ch)
    if ch == ZWJ or ch in _EXTEND_EXTRA:
        return True
    if 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:  # skin tones, tag characters
        return True
    return unicodedata.category(ch) in ("Mn", "Me", "Mc")


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _hangul(ch: str) -> str:
    """The Hangul syllable type: L, V, T, LV, LVT or "" (not Hangul)."""
    cp = ord(ch)
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    return ""


_HANGUL_JOINS = {
    "L": {"L", "V", "LV", "LVT"},
    "LV": {"V", "T"},
    "V": {"V", "T"},
    "LVT": {"T"},
    "T": {"T"},
}


def _control(ch: str) -> bool:
    return ch in "\r\n" or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def is_boundary(text: str, i: int) -> bool:
    """Whether ``text`` may be cut before index ``i`` (0 and len(text) always may)."""
    if i <= 0 or i >= len(text):
        return True
    before, after = text[i - 1], text[i]
    if before == "\r" and after == "\n":
        return False
    if _control(before) or _control(after):
        return True
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return False  # a surrogate pair (text decoded with surrogatepass)
    if _hangul(after) in _HANGUL_JOINS.get(_hangul(before), ()):
        return False
    if _extends(after):
        return False
    if (before == ZWJ or unicodedata.combining(before) == 9) and not after.isspace():
        return False  # emoji ZWJ sequences; conjuncts joined by a virama
    if _regional(before) and _regional(after):
        # Flags pair up from the start of a run of regional indicators.
        run = 0
        j = i - 1
        while j >= 0 and _regional(text[j]):
            run += 1
            j -= 1
        return run % 2 == 0
    return True


def cluster_end(text: str, start: int, end: int) -> int:
    """The last cluster boundary in (start, end]; ``end`` itself when one cluster is longer
    than the whole range (then a cut between code points is the least bad)."""
    for i in range(end, start, -1):
        if is_boundary(text, i):
            return i
    return end


def space_before(text: str, low: int, end: int) -> int:
    """Index of the last breakable space in [low, end) with cluster boundaries on both
    sides (so it can end a part, or be dropped between two parts); -1 when none."""
    for i in range(end - 1, low - 1, -1):
        if breakable_space(text[i]) and is_boundary(text, i) and is_boundary(text, i + 1):
            return i
    return -1
