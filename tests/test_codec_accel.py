"""The C parser (puppets/_codec.c) against the pure-Python one, on the same byte streams:
same commands, same errors, same reader state afterwards.

tests/test_command.py runs all its tests on both parsers as well; here the two are fed
random and hostile streams side by side (hypothesis), cut at random points.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from puppets import command
from puppets.command import (
    CLIENT_NO_TRID,
    CLIENT_PAYLOAD_COMMANDS,
    SERVER_NO_TRID,
    SERVER_PAYLOAD_COMMANDS,
    Command,
    CommandReader,
)
from puppets.errors import ProtocolError

pytestmark = pytest.mark.skipif(
    not command.ACCELERATED,
    reason="puppets._codec is not built here (no C compiler at install, or "
    "PUPPETS_PURE_PYTHON set): only the pure-Python parser exists to test",
)


class PurePythonReader(CommandReader):
    __slots__ = ()
    _c_drain = None


def _readers(**config: Any) -> tuple[CommandReader, CommandReader]:
    c, py = CommandReader(**config), PurePythonReader(**config)
    assert c._c_drain is not None and py._c_drain is None
    return c, py


def _snapshot(cmds: list[Command]) -> list[tuple[Any, ...]]:
    # Types too: an int trid is not a bool, a payload is bytes, every argument a str.
    return [
        (
            type(c),
            c.name,
            type(c.name),
            c.trid,
            type(c.trid),
            list(c.args),
            [type(a) for a in c.args],
            c.payload,
            type(c.payload),
        )
        for c in cmds
    ]


def _state(reader: CommandReader) -> tuple[Any, ...]:
    pending = reader._pending
    if pending is not None:
        pending = (_snapshot([pending[0]]), pending[1], type(pending[1]))
    return (bytes(reader._buf), pending, reader.buffered)


def _feed(reader: CommandReader, chunk: bytes) -> tuple[str, Any]:
    try:
        return "ok", _snapshot(reader.feed(chunk))
    except ProtocolError as e:
        return "error", (type(e), e.args, _snapshot(e.parsed))


def assert_same(chunks: list[bytes], **config: Any) -> None:
    c, py = _readers(**config)
    for chunk in chunks:
        got, want = _feed(c, chunk), _feed(py, chunk)
        assert got == want, chunk
        assert _state(c) == _state(py)
        if got[0] == "error":
            # Poisoned: the same error again, whatever comes next.
            assert _feed(c, b"QNG 1\r\n") == _feed(py, b"QNG 1\r\n")
            assert (c._failed is None) == (py._failed is None)
            return


# Pieces a hostile or broken peer might send, glued together in any order.
PIECES = [
    b"MSG",
    b"msg",
    b"QNG",
    b"ADL",
    b"RML",
    b"NLN",
    b"CHL",
    b"LST",
    b"UBX",
    b"911",
    b"241",
    b"0",
    b"00",
    b"5",
    b"17",
    b"999999999",
    b"1234567890",
    b"9" * 19,
    b"9" * 5000,
    b"OK",
    b"ok",
    b" ",
    b"  ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\r\n",
    b"\n\r",
    b"a@b.c",
    b"%20",
    b"N=x",
    b"\xc3\xb1",  # ñ
    b"\xc3",  # a truncated sequence
    b"\xff\xfe",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf0\x9f\x98",  # a truncated emoji
    "٣".encode(),  # an Arabic-Indic digit: str.isdigit() but not ASCII
    "²".encode(),  # superscript two: isdigit() too
    "１２".encode(),  # fullwidth digits
    b"\x00",
    b"\t",
    b"ABCDE",
    b"x" * 150,
]

TOKENS = [
    *(p for p in PIECES if b" " not in p and b"\n" not in p),
    b"",
    b"ABCD",
    b"Ab1",
    b"X",
    b"1" + b"0" * 17,  # 18 digits
    b"1" + b"0" * 18,  # 19 digits: past what the parsers turn into an int
]
# Streams of lines: tokens joined by spaces, each line ended one way or another.
lines = st.lists(
    st.tuples(
        st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=6),
        st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b" \r\n", b""]),
    ).map(lambda t: b" ".join(t[0]) + t[1]),
    max_size=12,
).map(b"".join)
# ... and streams of anything, glued from pieces and random bytes.
streams = st.one_of(
    lines,
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=60).map(b"".join),
)

configs = st.fixed_dictionaries(
    {
        "payload_commands": st.one_of(
            st.just(SERVER_PAYLOAD_COMMANDS),
            st.just(CLIENT_PAYLOAD_COMMANDS),
            st.frozensets(st.sampled_from(["MSG", "QNG", "911", "ADL", "A", "X"])),
        ),
        "no_trid": st.one_of(
            st.just(SERVER_NO_TRID),
            st.just(CLIENT_NO_TRID),
            st.frozensets(st.sampled_from(["MSG", "CHL", "LST", "241", "5"])),
        ),
        "max_line": st.one_of(st.integers(0, 200), st.just(command.DEFAULT_MAX_LINE)),
        "max_payload": st.one_of(
            st.integers(0, 300),
            st.just(command.DEFAULT_MAX_PAYLOAD),
            st.just(10**30),  # over what C holds in an integer: clamped, same answers
        ),
    }
)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams, cuts=st.lists(st.integers(0, 10_000), max_size=8), config=configs)
@example(data=b"MSG a b 3\r\nabcQNG 5\r\n", cuts=[12], config={})
@example(data=b"241 1 \xd9\xa3\r\n", cuts=[], config={})  # a non-ASCII digit as length
@example(data=b"MSG a b 99999999999999999999\r\n", cuts=[], config={})
@example(data=b"MSG\r\n", cuts=[], config={})
@example(data=b"ADL 5 OK\r\nADL 6 3\r\nabc", cuts=[3, 15], config={})
@example(data=b"N\xc3LN x\r\n", cuts=[], config={})
@example(data=b"ABCDE 1\r\n", cuts=[], config={})  # a name of five characters
@example(data=b"MSG a 1000000000000000000\r\n", cuts=[], config={"max_payload": 10**30})
@example(data=b"QNG 5\r\n" + b"A" * 100, cuts=[], config={"max_line": 50})
def test_c_and_python_parse_streams_alike(
    data: bytes, cuts: list[int], config: dict[str, Any]
) -> None:
    assert_same(_cut(data, cuts), **config)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), cut=st.integers(1, 64), config=configs)
def test_c_and_python_agree_on_random_bytes(data: bytes, cut: int, config: dict) -> None:
    assert_same([data[i : i + cut] for i in range(0, len(data), cut)], **config)


@settings(max_examples=300, deadline=None)
@given(
    cmds=st.lists(
        st.builds(
            Command,
            name=st.sampled_from(["MSG", "CHL", "ILN", "ADL", "QNG", "911", "UUX", "X1"]),
            trid=st.none() | st.integers(0, 10**12),
            args=st.lists(st.text(max_size=8).map(command.encode_arg), max_size=4),
            payload=st.none() | st.binary(max_size=50),
        ),
        max_size=10,
    ),
    cut=st.integers(1, 30),
)
def test_c_and_python_agree_on_encoded_commands(cmds: list[Command], cut: int) -> None:
    wire = b"".join(c.encode() for c in cmds)
    for config in ({}, {"payload_commands": CLIENT_PAYLOAD_COMMANDS, "no_trid": CLIENT_NO_TRID}):
        assert_same([wire[i : i + cut] for i in range(0, len(wire), cut)], **config)


def test_pending_command_crosses_parsers() -> None:
    # The reader's state is the same objects either way: a command waiting for its payload,
    # made by one parser, is completed by the other.
    c = CommandReader()
    assert c.feed(b"QNG 5\r\nMSG a b 5\r\nab") == [Command("QNG", None, ["5"])]
    py = PurePythonReader()
    py._pending, py._buf = c._pending, c._buf
    assert py.feed(b"cdeCHL 0 1\r\n") == [
        Command("MSG", None, ["a", "b"], b"abcde"),
        Command("CHL", 0, ["1"]),
    ]
    py2 = PurePythonReader()
    assert py2.feed(b"MSG a b 5\r\nab") == []
    c2 = CommandReader()
    c2._pending, c2._buf = py2._pending, py2._buf
    assert c2.feed(b"cde") == [Command("MSG", None, ["a", "b"], b"abcde")]


def _heap_growth(fn: Any, rounds: int) -> int:
    fn()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "stream",
    [
        b"MSG a b 3\r\nabcQNG 5\r\nCHL 0 1\r\nADL 3 OK\r\n241 1 2\r\nxy\r\n",
        b"QNG 5\r\n\xff\xfe bad\r\n",  # not a command
        b"MSG a b x\r\n",  # length not a number
        b"MSG a b 999999\r\n",  # over max_payload
        b"MSG\r\n",  # no length
        b"QNG " + b"A" * 20_000,  # line too long
    ],
)
def test_the_c_parser_leaks_nothing(stream: bytes) -> None:
    # Every object the C code makes or drops on the success and error paths is freed:
    # 2,000 readers fed the stream leave the traced heap where it was.
    def once() -> None:
        reader = CommandReader()
        try:
            reader.feed(stream[:7])
            reader.feed(stream[7:])
        except ProtocolError:
            pass

    assert _heap_growth(once, 2000) < 20_000
