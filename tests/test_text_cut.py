"""Long text cut into parts (puppets.message.split_text for MSN, msnbridge.irc.lines.split_utf8
for IRC): every part fits, the parts give back the text, no part ends inside a grapheme
cluster, and a part ends at a space whenever the tail of its room had one.

The text is built from known grapheme clusters ("atoms"), so where a cut may fall is
known without asking the code under test."""

from __future__ import annotations

import itertools
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from msnbridge.irc import lines
from puppets.message import TextMessage, build_text, parse_payload, split_text
from puppets.textcut import breakable_space, cluster_end, is_boundary
from puppets.textformat import TextFormat

ATOMS = [
    "a", "b", "ñ", "€", "😀", "e\u0301", "a\u0301\u0302", "\u00a0",
    "👩\u200d💻",  # emoji ZWJ sequence
    "👨\u200d👩\u200d👧\u200d👦",
    "🇫🇷", "🇩🇪",  # flags: regional indicator pairs
    "👍🏽",  # emoji modifier
    "❤\ufe0f", "1\ufe0f\u20e3",  # variation selector, keycap
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tag sequence
    "한", "\u1112\u1161\u11ab",  # a Hangul syllable, precomposed and as jamo
    "क्ष",  # a conjunct (virama)
]  # fmt: skip
SPACES = [" ", " ", " ", "\t"]
# Text with spaces, and without (where only the cluster rules decide the cut).
atoms = st.one_of(
    st.lists(st.sampled_from(ATOMS + SPACES), max_size=600),
    st.lists(st.sampled_from(ATOMS), min_size=20, max_size=600),
)


def boundaries(parts: list[str]) -> set[int]:
    out, at = {0}, 0
    for part in parts:
        at += len(part)
        out.add(at)
    return out


def fitting(text: str, start: int, budget: int, size) -> int:  # type: ignore[no-untyped-def]
    """How many characters from ``start`` fit in ``budget`` bytes."""
    used, end = 0, start
    while end < len(text) and used + size(text[end]) <= budget:
        used += size(text[end])
        end += 1
    return end - start


def _wire(ch: str) -> int:
    return 2 if ch == "\n" else len(ch.encode("utf-8"))


# -- MSN: puppets.message.split_text -------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    parts=st.one_of(
        st.lists(st.sampled_from([*ATOMS, *SPACES, "\n"]), max_size=800),
        st.lists(st.sampled_from(ATOMS), min_size=50, max_size=800),
    ),
    limit=st.integers(200, 1700),
)
@example(parts=re.split("( )", "The quick brown fox jumps over the lazy dog. " * 60), limit=1664)
@example(parts=["👩\u200d💻"] * 300, limit=1664)
@example(parts=["e\u0301", "🇫🇷", "👍🏽"] * 200, limit=500)
def test_msn_parts(parts: list[str], limit: int) -> None:
    text = "".join(parts)
    fmt = TextFormat("Arial", bold=True)
    payloads = split_text(text, fmt, limit)
    got = []
    for payload in payloads:
        assert len(payload) <= limit
        message = parse_payload(payload)
        assert isinstance(message, TextMessage)
        got.append(message.text)
    assert "".join(got) == text
    assert boundaries(got) <= boundaries(parts), "a part ends inside a cluster"
    budget = limit - len(build_text("", fmt))
    start = 0
    for part in got[:-1]:
        if not breakable_space(part[-1]):
            span = fitting(text, start, budget, _wire)
            tail = text[start + span // 2 : start + span]
            assert not any(breakable_space(ch) for ch in tail), "not cut at the space in reach"
        start += len(part)


def test_msn_cuts_at_the_last_space_not_mid_word() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 100
    got = [parse_payload(p).text for p in split_text(text)]  # type: ignore[union-attr]
    assert len(got) > 2 and "".join(got) == text
    assert all(part.endswith(" ") for part in got[:-1])


# -- IRC: msnbridge.irc.lines.split_utf8 ---------------------------------------------------


def chunk_spans(chunks: list[str], line: str) -> list[tuple[int, int]]:
    """(start, end) of every chunk in ``line``; a chunk may follow one dropped space."""
    spans, at = [], 0
    for chunk in chunks:
        if not line.startswith(chunk, at):
            assert breakable_space(line[at]), "something other than one space was dropped"
            at += 1
        assert line.startswith(chunk, at)
        spans.append((at, at + len(chunk)))
        at += len(chunk)
    assert at == len(line)
    return spans


@settings(max_examples=300, deadline=None)
@given(parts=atoms, budget=st.integers(40, 510))
@example(parts=["jumps", " ", "over", " ", "the", " ", "lazy", " ", "dog"] * 40, budget=100)
def test_irc_chunks(parts: list[str], budget: int) -> None:
    line = "".join(parts)
    chunks = lines.split_utf8(line, budget)
    assert all(chunks) and all(lines.utf8_len(c) <= budget for c in chunks)
    spans = chunk_spans(chunks, line)
    allowed = boundaries(parts)
    for start, end in spans:
        assert start in allowed and end in allowed, "a chunk ends inside a cluster"
    for (start, end), (following, _) in itertools.pairwise(spans):
        if following == end:  # a hard cut: no space was in reach
            room = fitting(line, start, budget, lambda ch: len(ch.encode("utf-8")))
            tail = line[start + room // 2 + 1 : start + room + 1]
            assert not any(breakable_space(ch) for ch in tail), "not cut at the space in reach"


def test_irc_splits_words_not_inside_them() -> None:
    line = "the quick brown fox jumps over the lazy dog " * 30
    chunks = lines.split_utf8(line.strip(), 100)
    words = set(line.split())
    assert all(set(chunk.split()) <= words for chunk in chunks)


# -- the cluster rules themselves ------------------------------------------------------------


def test_cluster_rules() -> None:
    assert not is_boundary("\ud83d\ude00", 1)  # a surrogate pair
    assert not is_boundary("\r\n", 1)
    assert not is_boundary("👩\u200d💻", 1) and not is_boundary("👩\u200d💻", 2)
    assert not is_boundary("🇫🇷", 1) and is_boundary("🇫🇷🇩🇪", 2)
    assert is_boundary("\u200d ", 1)  # a space after a stray ZWJ is its own
    assert not breakable_space("\u00a0") and not breakable_space("\x1f")  # NBSP, underline
    assert cluster_end("a" + "\u0301" * 50, 0, 10) == 10  # one cluster longer than the room
    assert cluster_end("ab\u0301\u0302c", 0, 3) == 1
