"""MSNC binary framing, MSNSLP messages and the file context: exact bytes, round trips,
and hypothesis fuzzing (the parsers raise their own clear errors and nothing else)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puppets.message import MAX_PAYLOAD
from puppets.p2p import slp
from puppets.p2p.filecontext import FileContext, FileContextError
from puppets.p2p.header import (
    Flags,
    Frame,
    FrameV2,
    Header,
    P2PFormatError,
    parse_frame,
    parse_frame_v2,
)
from puppets.p2p.slp import SLPError, parse_slp
from puppets.p2p.transport import build_payload, chunk_size, parse_payload

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


def test_v1_header_layout_is_48_little_endian_bytes_and_a_big_endian_footer():
    h = Header(7, 1000, 1202, 5000, 3, Flags.FILE_DATA, 55, 0, 0)
    raw = Frame(h, b"abc", 2).build()
    assert len(raw) == 48 + 3 + 4
    assert raw[:4] == (7).to_bytes(4, "little")
    assert raw[8:16] == (1202).to_bytes(8, "little")
    assert raw[16:24] == (5000).to_bytes(8, "little")
    assert raw[28:32] == bytes.fromhex("30000001")
    assert raw[48:51] == b"abc" and raw[-4:] == b"\x00\x00\x00\x02"
    assert parse_frame(raw) == Frame(h, b"abc", 2)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x00" * 47, "48 bytes"),
        (Header(length=10, total_size=10).pack() + b"x" * 5, "announces 10"),
        (Header(offset=8, length=4, total_size=10).pack() + b"x" * 4, "past"),
        (Header(length=1, total_size=1).pack() + b"x" + b"12", "stray"),
    ],
)
def test_v1_refuses_malformed_frames(raw, why):
    with pytest.raises(P2PFormatError, match=why):
        parse_frame(raw)


@given(u32, u32, u64, u32, u32, u32, u32, u64, st.binary(max_size=64), u32)
def test_v1_round_trip(sid, ident, offset, flags, ack_id, ack_uid, app, ack_size, data, _):
    total = offset + len(data)
    if total >= 2**64:
        return
    h = Header(sid, ident, offset, total, len(data), flags, ack_id, ack_uid, ack_size)
    assert parse_frame(Frame(h, data, app).build()) == Frame(h, data, app)


@given(st.binary(max_size=300))
def test_v1_parser_fuzz(raw):
    try:
        frame = parse_frame(raw)
    except P2PFormatError:
        return
    assert frame.header.length == len(frame.data)


def test_v2_round_trip_and_layout():
    frame = FrameV2(
        sequence=0x01020304,
        opcode=2,
        tlvs=[(1, b"\x00" * 12)],
        tf=6,
        package=9,
        session_id=77,
        data_tlvs=[(1, struct.pack(">Q", 5000))],
        data=b"hello",
        app_id=2,
    )
    raw = frame.build()
    assert raw[0] == 8 + 16  # 14-byte TLV padded to 16
    assert raw[4:8] == bytes.fromhex("01020304")
    assert parse_frame_v2(raw) == frame
    bare = FrameV2(sequence=5, opcode=0, tlvs=[(2, b"\x00\x00\x00\x05")], has_data_header=False)
    assert parse_frame_v2(bare.build()) == bare


@given(st.binary(max_size=300))
def test_v2_parser_fuzz(raw):
    try:
        parse_frame_v2(raw)
    except P2PFormatError:
        pass


def test_payload_envelope_fits_the_switchboard_limit():
    dest = "someone.with.a.long.name@example.com"
    size = chunk_size(dest)
    assert size == 1202
    payload = build_payload(dest, Frame(Header(1, 2, 0, size, size), b"x" * size, 1))
    assert len(payload) <= MAX_PAYLOAD
    assert payload.startswith(b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\n")
    got_dest, frame = parse_payload(payload)
    assert got_dest == dest and frame.data == b"x" * size
    long_dest = "x" * 400 + "@example.com"
    big = chunk_size(long_dest)
    payload = build_payload(long_dest, Frame(Header(1, 2, 0, big, big), b"y" * big, 1))
    assert big < 1202 and len(payload) <= MAX_PAYLOAD


def _invite() -> slp.SLPMessage:
    return slp.request(
        "INVITE",
        "bob@example.com",
        "alice@example.com",
        call_id="{11111111-2222-3333-4444-555555555555}",
        branch="{AAAAAAAA-2222-3333-4444-555555555555}",
        body={
            "EUF-GUID": slp.EUF_FILE,
            "SessionID": "1234",
            "AppID": "2",
            "Context": "AAAA",
        },
    )


def test_slp_invite_bytes():
    raw = _invite().build()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"INVITE MSNMSGR:bob@example.com MSNSLP/1.0"
    assert b"Via: MSNSLP/1.0/TLP ;branch={AAAAAAAA-2222-3333-4444-555555555555}" in head
    assert body.endswith(b"\r\n\r\n\x00")
    assert f"Content-Length: {len(body)}".encode() in head
    msg = parse_slp(raw)
    assert (msg.method, msg.sender, msg.recipient) == (
        "INVITE",
        "alice@example.com",
        "bob@example.com",
    )
    assert msg.session_id == 1234 and msg.field("EUF-GUID") == slp.EUF_FILE
    assert msg.branch == "{AAAAAAAA-2222-3333-4444-555555555555}"


@pytest.mark.parametrize(("status", "reason"), [(200, "OK"), (603, "Decline")])
def test_slp_responses_echo_the_request(status, reason):
    invite = _invite()
    answer = parse_slp(slp.response(invite, status, reason, {"SessionID": "1234"}).build())
    assert (answer.status, answer.reason) == (status, reason)
    assert answer.call_id == invite.call_id and answer.branch == invite.branch
    assert (answer.sender, answer.recipient) == ("bob@example.com", "alice@example.com")
    assert answer.get("CSeq") == "1"


def test_slp_bye_and_ack():
    for method in ("BYE", "ACK"):
        msg = slp.request(
            method, "b@x.com", "a@x.com", call_id="{C}", content_type=slp.CT_SESSION_CLOSE
        )
        got = parse_slp(msg.build())
        assert got.method == method and got.content_type == slp.CT_SESSION_CLOSE


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"INVITE MSNMSGR:b MSNSLP/1.0\r\nCall-ID: x\r\n", "blank line"),
        (b"HELLO\r\n\r\n", "start line"),
        (b"FOO MSNMSGR:b MSNSLP/1.0\r\nCall-ID: x\r\n\r\n", "unknown SLP method"),
        (b"MSNSLP/1.0 200 OK\r\nCall-ID: x\r\nContent-Length: 99\r\n\r\nab", "only 2"),
        (b"MSNSLP/1.0 200 OK\r\nno colon\r\n\r\n", "malformed"),
        (b"MSNSLP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "Call-ID"),
        (b"MSNSLP/1.0 200 OK\r\nCall-ID: x\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    ],
)
def test_slp_refuses_garbage(raw, why):
    with pytest.raises(SLPError, match=why):
        parse_slp(raw)


@given(st.binary(max_size=400))
def test_slp_parser_fuzz(raw):
    try:
        parse_slp(raw)
    except SLPError:
        pass


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z-]{0,10}", fullmatch=True),
        st.from_regex(r"[ -~]{0,30}", fullmatch=True).map(str.strip),
        max_size=5,
    )
)
def test_slp_body_round_trip(body):
    msg = slp.request("INVITE", "b@x.com", "a@x.com", call_id="{C}", body=body)
    assert parse_slp(msg.build()).body == body


def test_file_context_layout():
    raw = FileContext("photo é.jpg", 5 * 2**32 + 7, b"PNGDATA").build()
    assert len(raw) == 574 + 7
    length, version, size, kind = struct.unpack_from("<IIQI", raw)
    assert (length, version, size, kind) == (574, 2, 5 * 2**32 + 7, 0)
    assert raw[20:42].decode("utf-16-le") == "photo é.jpg"
    got = FileContext.parse(raw)
    assert (got.name, got.size, got.preview) == ("photo é.jpg", 5 * 2**32 + 7, b"PNGDATA")
    v3 = FileContext("a.txt", 3, version=3).build()
    assert len(v3) == 638 and FileContext.parse(v3).preview == b""


def test_file_context_names_are_never_paths():
    raw = FileContext("..\\..\\windows\\evil.exe", 1).build()
    assert FileContext.parse(raw).name == "evil.exe"
    with pytest.raises(FileContextError):
        FileContext.parse(b"\x00" * 100)


@given(st.binary(max_size=700))
def test_file_context_fuzz(raw):
    try:
        ctx = FileContext.parse(raw)
    except FileContextError:
        return
    assert "/" not in ctx.name and "\\" not in ctx.name


def test_context_survives_base64_in_an_invite():
    ctx = FileContext("x.bin", 10, b"p" * 2000)
    invite = slp.request(
        "INVITE",
        "b@x.com",
        "a@x.com",
        call_id="{C}",
        body={"Context": base64.b64encode(ctx.build()).decode()},
    )
    got = parse_slp(invite.build())
    assert FileContext.parse(base64.b64decode(got.field("Context"))) == ctx


class _NullLink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def post(self, peer, payload):
        self.sent.append(payload)

        async def ok():
            from puppets.event.conversation import DeliveryResult, DeliveryStatus

            return DeliveryResult(DeliveryStatus.ACKED)

        return ok()


@given(st.lists(st.binary(max_size=200), max_size=8), st.booleans())
async def test_manager_feed_never_raises(pieces, wrap):
    # A unit test of one piece with a stand-in link: the proof of the layer is the
    # end-to-end suite in test_p2p_transfer.py.
    from puppets.p2p.manager import P2PManager

    link = _NullLink()
    manager = P2PManager("me@example.com", link, lambda e: None)
    for piece in pieces:
        if wrap:
            piece = build_payload(
                "me@example.com", Frame(Header(0, 1, 0, len(piece), len(piece)), piece)
            )
        manager.feed("peer@example.com", piece)
    await manager.close()


async def test_v2_messages_are_chunked_sequenced_and_ask_for_their_ack():
    # One piece with a stand-in link: what the sender writes for a multi-chunk message.
    from puppets.p2p.sending import MessageSender

    link = _NullLink()
    sender = MessageSender(link)
    sender.framing = lambda peer: 2
    sender.source = lambda: "me@example.com;{AAAAAAAA-0000-0000-0000-000000000000}"
    data = bytes(range(256)) * 20  # 5120 bytes: five chunks
    waiting = asyncio.ensure_future(
        sender.send("bob@example.com", 77, data, Flags.FILE_DATA, 2, wait_ack=True)
    )
    for _ in range(20):  # let it write every chunk (no awaits block with a 16 window)
        await asyncio.sleep(0)
    assert len(link.sent) == 5
    frames = []
    for payload in link.sent:
        assert len(payload) <= MAX_PAYLOAD
        assert b"P2P-Src: me@example.com;{AAAAAAAA" in payload
        _dest, frame = parse_payload(payload, (2,))
        frames.append(frame)
    assert b"".join(f.data for f in frames) == data
    assert [f.tf for f in frames] == [7, 6, 6, 6, 6]  # file data, +1 on the first chunk
    assert len({f.package for f in frames}) == 1 and frames[0].session_id == 77
    assert [f.remaining for f in frames] == [len(data) - 1202 * (i + 1) for i in range(4)] + [0]
    for prev, nxt in itertools.pairwise(frames):
        assert nxt.sequence == prev.sequence + prev.message_size
    # The first frame to a peer is a SYN with our peer info; only the last asks for an ack.
    assert frames[0].opcode == 3 and frames[0].tlv(1) is not None
    assert [f.opcode & 2 for f in frames[1:]] == [0, 0, 0, 2]
    assert not waiting.done()
    sender.acked("bob@example.com", frames[-2].sequence + frames[-2].message_size, 2)
    await asyncio.sleep(0)
    assert not waiting.done()  # an ack of another frame completes nothing
    sender.acked("bob@example.com", frames[-1].sequence + frames[-1].message_size, 2)
    await asyncio.wait_for(waiting, 1)


def test_payloads_are_read_in_the_expected_framing_first():
    v1 = build_payload("me@example.com", Frame(Header(0, 1, 0, 3, 3), b"abc"))
    v2 = build_payload("me@example.com", FrameV2(tf=1, data=b"abc"))
    assert isinstance(parse_payload(v1, (2, 1))[1], Frame)
    assert isinstance(parse_payload(v2, (1, 2))[1], FrameV2)
    with pytest.raises(P2PFormatError):
        parse_payload(v2, (1,))  # v2 only where we announced it


def test_presence_caps_carry_extended_caps_from_msnp16():
    from puppets.listformat import parse_presence

    p = parse_presence(["NLN", "bob@example.com", "Bob", "2789003324:48", "%3Cmsnobj%2F%3E"])
    assert (p.caps, p.ext_caps, p.msnobject) == (2789003324, 48, "<msnobj/>")
    old = parse_presence(["NLN", "bob@example.com", "Bob", "268435456"])
    assert (old.caps, old.ext_caps) == (268435456, 0)


@given(st.lists(st.binary(max_size=200), max_size=8), st.sampled_from([1, 2]))
async def test_manager_feed_never_raises_in_either_framing(pieces, framing):
    from puppets.p2p.manager import P2PManager

    manager = P2PManager("me@example.com", _NullLink(), lambda e: None)
    manager.own_v2 = lambda: True
    manager.peer_v2 = lambda peer: framing == 2
    for i, piece in enumerate(pieces):
        frame = FrameV2(
            opcode=i % 4, tf=i % 8, session_id=0 if i % 2 else 9, data=piece, sequence=i
        )
        manager.feed("peer@example.com", build_payload("me@example.com", frame))
        manager.feed("peer@example.com", piece)
    await manager.close()
