"""The P2P v2 framing on the wire: chosen when both puppets are MSNP16+ and announce it
in their extended capabilities, v1 otherwise; v2's acknowledgements (RAK and the
sequence number just past the frame) and its SYN, read from the relayed bytes."""

from __future__ import annotations

import itertools
import os
import re
import struct

import pytest

from puppets.event.contact import PresenceChanged
from puppets.event.transfer import DisplayPictureReceived, FileOffered
from tests.msnp_server import MSNPTestServer
from tests.p2p_wire import WireFrame, tap, untap
from tests.puppet_helpers import (
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

_ids = itertools.count()
RAK, SYN = 0x2, 0x1


async def _pair(server: MSNPTestServer, alice_kw: dict, bob_kw: dict):
    n = next(_ids)
    a, b = f"va{n}@example.com", f"vb{n}@example.com"
    for who in (a, b):
        server.add_account(who, "pw")
    server.add_contact(a, b)
    server.add_contact(b, a)
    alice, aev = await online_client(server, a, "pw", **alice_kw)
    bob, bev = await online_client(server, b, "pw", **bob_kw)
    # Each has seen the other's presence (and so its capabilities) before P2P starts.
    await aev.wait_for(PresenceChanged, lambda e: e.passport == b)
    await bev.wait_for(PresenceChanged, lambda e: e.passport == a)
    return (a, alice, aev), (b, bob, bev)


async def _file_and_picture(alice, aev, a, bob, bev, b, tmp_path) -> bytes:
    """Alice sends Bob a file; Alice fetches Bob's picture. Returns the file's bytes."""
    data = os.urandom(40_000)
    src = tmp_path / "v.bin"
    src.write_bytes(data)
    picture = os.urandom(5_000)
    obj = await bob.set_display_picture(picture)
    preview = os.urandom(3_000)  # the INVITE spans several chunks
    sending = alice.p2p.manager.send_file(b, src, preview=preview)
    offer = await bev.wait_for(FileOffered)
    assert offer.preview == preview
    dest = tmp_path / "got.bin"
    offer.transfer.accept(dest)
    assert await sending.wait(timeout=30) == "completed", sending.reason
    assert dest.read_bytes() == data
    fetched = await alice.p2p.manager.fetch_picture(b, obj, timeout=20)
    assert fetched == picture
    pic = await aev.wait_for(DisplayPictureReceived)
    assert pic.msnobject.sha1d == obj.sha1d
    return data


def _unacked(frames: list[WireFrame], asker: str, answerer: str) -> list[WireFrame]:
    acks = {
        struct.unpack(">I", f.tlvs()[2])[0]
        for f in frames
        if f.sender == answerer and f.framing == "v2" and 2 in f.tlvs()
    }
    return [
        f
        for f in frames
        if f.sender == asker
        and f.framing == "v2"
        and f.opcode & RAK
        and (f.sequence + f.message_size) & 0xFFFFFFFF not in acks
    ]


async def test_a_v2_capable_pair_uses_v2_on_the_wire(server, tmp_path):
    pinned = {"min_version": 18, "max_version": 18}
    (a, alice, aev), (b, bob, bev) = await _pair(server, pinned, pinned)
    wire = tap(server)
    try:
        # Both announce P2P v2 (0x20) after "caps:" and see it in each other's presence.
        assert server.account(a).ext_caps & 0x20 and server.account(b).ext_caps & 0x20
        assert alice.contacts.get(b).ext_caps & 0x20
        await _file_and_picture(alice, aev, a, bob, bev, b, tmp_path)
        assert set(wire.framings(a)) == {"v2"} and set(wire.framings(b)) == {"v2"}
        mine = [f for f in wire.frames if f.sender == a]
        theirs = [f for f in wire.frames if f.sender == b]
        # Alice's first frame is a SYN asking for an ack, with her peer info (TLV 1);
        # Bob answers with his own SYN and acks it.
        assert mine[0].opcode == SYN | RAK and len(mine[0].tlvs()[1]) == 12
        syn_ack = next(f for f in theirs if 2 in f.tlvs())
        assert syn_ack.opcode == SYN | RAK and 1 in syn_ack.tlvs()
        # Every frame asking for an ack gets one from the other side: the sequence number
        # just past it (sequence + message size), big-endian in TLV 2. (The last acks
        # may still be on their way when the transfers end.)
        await wire.until(
            lambda: not _unacked(wire.frames, a, b) and not _unacked(wire.frames, b, a)
        )
        mine = [f for f in wire.frames if f.sender == a]
        theirs = [f for f in wire.frames if f.sender == b]
        # The file data: TF 6 (+1 on the first chunk); the sequence advances by each
        # frame's message size; the last data frame asks for the ack that completes it.
        data = [f for f in mine if f.tf in (6, 7)]
        assert data[0].tf == 7 and all(f.tf == 6 for f in data[1:])
        for prev, nxt in itertools.pairwise(mine):
            assert nxt.sequence == (prev.sequence + prev.message_size) & 0xFFFFFFFF
        assert data[-1].opcode & RAK and not any(f.opcode & RAK for f in data[:-1])
        # P2P-Src names Alice's endpoint.
        src = re.search(rb"P2P-Src: ([^\r]+)", mine[0].headers)
        assert src and src.group(1).decode() == f"{a};{alice.machine_guid}"
    finally:
        untap(server, wire)
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize(
    "bob_kw",
    [
        {"min_version": 18, "max_version": 18, "ext_caps": 0},  # does not announce v2
        {"min_version": 15, "max_version": 15},  # MSNP15: no extended capabilities
    ],
    ids=["msnp18-without-v2", "msnp15"],
)
async def test_a_v1_only_peer_gets_v1(server, tmp_path, bob_kw):
    (a, alice, aev), (b, bob, bev) = await _pair(
        server, {"min_version": 18, "max_version": 18}, bob_kw
    )
    wire = tap(server)
    try:
        assert alice.contacts.get(b).ext_caps & 0x20 == 0
        await _file_and_picture(alice, aev, a, bob, bev, b, tmp_path)
        assert set(wire.framings()) == {"v1"}
        assert alice.p2p.manager.framing_for(b) == 1
    finally:
        untap(server, wire)
        await alice.stop()
        await bob.stop()


async def _send(alice, b, bev, tmp_path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(os.urandom(10_000))
    sending = alice.p2p.manager.send_file(b, src)
    offer = await bev.wait_for(FileOffered)
    offer.transfer.accept(tmp_path / f"got-{name}")
    assert await sending.wait(timeout=30) == "completed", sending.reason
    assert (tmp_path / f"got-{name}").read_bytes() == src.read_bytes()


async def test_a_contact_back_on_a_v1_client_gets_v1(server, tmp_path):
    pinned = {"min_version": 18, "max_version": 18}
    (_a, alice, aev), (b, bob, bev) = await _pair(server, pinned, pinned)
    wire = tap(server)
    try:
        await _send(alice, b, bev, tmp_path, "first.bin")
        assert set(wire.framings()) == {"v2"}
        await bob.stop()
        await aev.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "FLN")
        wire.frames.clear()
        seen = len(aev.events)
        bob, bev = await online_client(server, b, "pw", min_version=15, max_version=15)
        await aev.until(
            lambda: any(
                isinstance(e, PresenceChanged) and e.passport == b and e.status == "NLN"
                for e in aev.events[seen:]
            )
        )
        await _send(alice, b, bev, tmp_path, "again.bin")
        assert set(wire.framings()) == {"v1"}
    finally:
        untap(server, wire)
        await alice.stop()
        await bob.stop()
