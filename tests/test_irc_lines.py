"""msnbridge.irc.lines: splitting, sanitising and relay text (pure functions)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from msnbridge.irc import lines

FORBIDDEN = re.compile(r"[\x00\x01\x04-\x0e\x10\x12-\x15\x17-\x1c\r\n\x7f]")
# Text with plenty of the troublesome parts: line breaks, NUL and other controls,
# formatting codes, multi-byte characters, emoji, spaces.
nasty_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\r\n\x00\x01\x07\t \x02\x03\x0f\x1d,0123456789éあ😀\u200b")),
        st.characters(),
    ),
    max_size=3000,
)


def expected_lines(text: str) -> list[str]:
    """What the text should become, before splitting: one entry per non-empty line."""
    return lines.split_lines(text)


@settings(max_examples=300, deadline=None)
@given(text=nasty_text, prefix_len=st.integers(min_value=10, max_value=400))
@example(text="a" * 2000, prefix_len=100)
@example(text="\r\n\r\n\x00", prefix_len=50)
def test_every_line_fits_and_is_clean(text: str, prefix_len: int) -> None:
    budget = lines.payload_budget(prefix_len)
    out, truncated = lines.split_message(text, budget)
    assert not truncated
    for line in out:
        assert line, "empty lines cannot be sent"
        assert prefix_len + lines.utf8_len(line) <= lines.MAX_LINE_BYTES
        assert not FORBIDDEN.search(line)
        assert "\t" not in line


def rebuilds(chunks: list[str], line: str) -> bool:
    """True when ``line`` is the chunks in order, each split point having dropped at most
    one whitespace character."""
    positions = {0}
    for chunk in chunks:
        ends = {p + len(chunk) for p in positions if line.startswith(chunk, p)}
        ends |= {e + 1 for e in ends if e < len(line) and line[e].isspace()}
        positions = ends
    return len(line) in positions


@settings(max_examples=300, deadline=None)
@given(text=nasty_text, budget=st.integers(min_value=4, max_value=510))
@example(text="0\u080000\x80\x1f", budget=4)  # a chunk of only \x1f, whitespace to Python
def test_concatenation_preserves_text(text: str, budget: int) -> None:
    out, _ = lines.split_message(text, budget)
    # Each source line (the cleaned text cut at CR/LF) is rebuilt from its chunks.
    rest = list(out)
    for source in lines.split_lines(text):
        taken: list[str] = []
        while rest and not rebuilds(taken, source):
            taken.append(rest.pop(0))
        # A source may already read as rebuilt when its last character is one Python calls
        # whitespace (a split point may drop one), e.g. \x1f (underline) kept as a chunk.
        while rest and rebuilds([*taken, rest[0]], source):
            taken.append(rest.pop(0))
        assert rebuilds(taken, source), (source, taken)
    assert rest == []


@settings(max_examples=200, deadline=None)
@given(line=st.text(min_size=1, max_size=2000), budget=st.integers(min_value=4, max_value=600))
def test_split_utf8_is_exact_and_on_code_points(line: str, budget: int) -> None:
    line = lines.clean_text(line)
    chunks = lines.split_utf8(line, budget)
    assert rebuilds(chunks, line)
    assert all(chunks)
    assert all(len(c.encode("utf-8")) <= budget for c in chunks)
    # No whitespace dropped when there was none: then the chunks are the line exactly.
    if not any(ch.isspace() for ch in line):
        assert "".join(chunks) == line


def test_split_without_spaces_is_exact() -> None:
    text = "é" * 700 + "😀" * 300
    chunks = lines.split_utf8(text, 97)
    assert "".join(chunks) == text
    assert all(len(c.encode()) <= 97 for c in chunks)


def test_split_prefers_whitespace() -> None:
    words = " ".join(["word"] * 300)
    chunks = lines.split_utf8(words, 100)
    assert all(c.endswith("word") and c.startswith("word") for c in chunks)
    assert " ".join(chunks) == words


def test_split_never_cuts_a_colour_code() -> None:
    text = "a" * 98 + "\x0312,04coloured"
    chunks = lines.split_utf8(text, 100)
    assert chunks[0] == "a" * 98
    assert chunks[1].startswith("\x0312,04")


def test_line_breaks_split_and_controls_removed() -> None:
    out, truncated = lines.split_message("one\r\ntwo\rthree\n\nfour\x00five\x01\x07", 400)
    assert out == ["one", "two", "three", "fourfive"]
    assert not truncated
    # Formatting codes survive; tab becomes a space.
    assert lines.clean_text("\x02bold\x02\tand \x1ditalic\x1d") == "\x02bold\x02 and \x1ditalic\x1d"


@given(count=st.integers(min_value=1, max_value=40), cap=st.integers(min_value=1, max_value=20))
def test_line_cap_reports_truncation(count: int, cap: int) -> None:
    text = "\n".join(f"line {i}" for i in range(count))
    out, truncated = lines.split_message(text, 400, max_lines=cap)
    assert out == [f"line {i}" for i in range(min(count, cap))]
    assert truncated == (count > cap)


def test_prefix_length_counts_what_receivers_see() -> None:
    wire = ":alice!~alice@host.example PRIVMSG #chan :"
    n = lines.message_prefix_length(
        "alice", "PRIVMSG", "#chan", user_len=len("~alice"), host_len=len("host.example")
    )
    assert n == len(wire) + 2  # + CRLF
    out, _ = lines.split_message("é" * 1000, lines.payload_budget(n))
    assert all(len(wire.encode()) + len(line.encode()) + 2 <= 512 for line in out)
    assert max(len(wire.encode()) + len(line.encode()) + 2 for line in out) >= 511


@given(wanted=st.text(max_size=60), nicklen=st.integers(min_value=3, max_value=40))
def test_sanitized_nick_is_valid(wanted: str, nicklen: int) -> None:
    nick = lines.sanitize_nick(wanted, nicklen)
    assert 1 <= len(nick) <= nicklen
    assert re.fullmatch(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]*", nick)


def test_sanitize_nick_examples() -> None:
    assert lines.sanitize_nick("Zoë Smith (MSN)", 30) == "Zoe_Smith_MSN"
    assert lines.sanitize_nick("123abc", 9) == "_123abc"
    assert lines.sanitize_nick("alice@hotmail.com", 9, suffix="|msn") == "alice|msn"
    assert lines.sanitize_nick("あいう", 9) == "msn"


@given(nick=st.from_regex(r"[a-z][a-z0-9]{0,15}", fullmatch=True), nicklen=st.integers(3, 16))
def test_nick_alternatives_fit_and_differ(nick: str, nicklen: int) -> None:
    nick = nick[:nicklen]
    alternatives = lines.nick_alternatives(nick, nicklen)
    got = [next(alternatives) for _ in range(30)]
    assert all(len(a) <= nicklen for a in got)
    assert nick not in got
    assert len(set(got)) == len(got)


def test_nick_alternatives_order() -> None:
    alternatives = lines.nick_alternatives("alice", 9)
    assert [next(alternatives) for _ in range(3)] == ["alice_", "alice1", "alice2"]
    alternatives = lines.nick_alternatives("abcdefghi", 9)
    assert [next(alternatives) for _ in range(2)] == ["abcdefgh_", "abcdefgh1"]


@given(name=st.text(max_size=120), channellen=st.integers(min_value=2, max_value=60))
def test_sanitized_channel_is_valid(name: str, channellen: int) -> None:
    channel = lines.sanitize_channel(name, channellen)
    assert channel[0] == "#"
    assert 2 <= len(channel.encode("utf-8")) <= channellen
    assert not re.search(r"[\x00-\x20,:\x07\x7f]", channel)


def test_sanitize_channel_examples() -> None:
    assert lines.sanitize_channel("bob's chat, room") == "#bob's_chat_room"
    assert lines.sanitize_channel("#already") == "#already"
    assert lines.sanitize_channel("&local", chantypes="#&") == "&local"
    assert lines.sanitize_channel("é" * 40, 11) == "#" + "é" * 5


def test_dehighlight_and_relay() -> None:
    assert lines.dehighlight("Nick") == "Ni\u200bck"
    assert lines.dehighlight("Nick").replace(lines.ZWSP, "") == "Nick"
    assert lines.relay_prefix("Nick") == "<Ni\u200bck> "
    out, truncated = lines.relay_message("Nick", "hi\nthere", 100)
    assert out == ["<Ni\u200bck> hi", "<Ni\u200bck> there"]
    assert not truncated
    out, _ = lines.relay_message("Bob", "x" * 300, 100, action=True)
    assert all(line.startswith("* B\u200bob ") and len(line.encode()) <= 100 for line in out)
    assert "".join(line.removeprefix("* B\u200bob ") for line in out) == "x" * 300


def test_format_tags_escapes_values() -> None:
    assert lines.format_tags({"+typing": "active"}) == "+typing=active"
    assert lines.format_tags({"a": "x y;z\\", "b": None}) == "a=x\\sy\\:z\\\\;b"
