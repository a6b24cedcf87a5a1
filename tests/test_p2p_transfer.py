"""File transfers and display pictures between two puppets through the test server
(MSNSLP over switchboards), byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import os

import pytest

from puppets import Client
from puppets.event.contact import PresenceChanged
from puppets.event.transfer import (
    DisplayPictureReceived,
    FileOffered,
    TransferFinished,
    TransferProgress,
)
from puppets.msnobject import MSNObject
from puppets.p2p import PictureCache
from tests.msnp_server import MSNPTestServer
from tests.p2p_wire import tap, untap
from tests.puppet_helpers import (
    Recorder,
    make_config,
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

# MSNP9 (the first with MSNSLP), 12 and 18 (SSO, MPOP; both puppets announce P2P v2 in
# their extended capabilities, so the v2 framing carries everything: see ``wire``).
VERSIONS = [9, 12, 18]
BIG = 5 * 1024 * 1024

_ids = itertools.count()


@pytest.fixture
def wire(server, request):
    """The P2P frames relayed during the test; at the end, every one was in the framing
    the version calls for (v2 at MSNP18, v1 below)."""
    tapped = tap(server)
    yield tapped
    untap(server, tapped)
    version = (
        request.node.callspec.params.get("version") if hasattr(request.node, "callspec") else None
    )
    if version is not None:
        assert tapped.frames, "no P2P frame travelled"
        assert set(tapped.framings()) == {"v2" if version >= 16 else "v1"}


async def _pair(server: MSNPTestServer, version: int, **kw):
    n = next(_ids)
    a, b = f"fa{n}@example.com", f"fb{n}@example.com"
    for who in (a, b):
        server.add_account(who, "pw")
    server.add_contact(a, b)
    server.add_contact(b, a)
    pinned = {"min_version": version, "max_version": version, **kw}
    alice, aev = await online_client(server, a, "pw", **pinned)
    bob, bev = await online_client(server, b, "pw", **pinned)
    return (a, alice, aev), (b, bob, bev)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_5mb_file_arrives_byte_for_byte(server, wire, version, tmp_path):
    (a, alice, aev), (b, bob, bev) = await _pair(server, version)
    src = tmp_path / "random.bin"
    data = os.urandom(BIG)
    src.write_bytes(data)
    try:
        sending = alice.p2p.manager.send_file(b, src)
        offer = await bev.wait_for(FileOffered)
        assert (offer.sender, offer.name, offer.size) == (a, "random.bin", BIG)
        dest = tmp_path / "got.bin"
        offer.transfer.accept(dest)
        status = await sending.wait(timeout=120)
        assert status == "completed", (sending.reason, aev.events[-5:], bev.events[-5:])
        assert await offer.transfer.wait(timeout=10) == "completed"
        assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()
        sent = aev.of(TransferFinished)[-1]
        assert (sent.status, sent.incoming, sent.by_peer) == ("completed", False, False)
        progress = bev.of(TransferProgress)
        assert progress and progress[-1].done == BIG and len(progress) <= 25
        # Every chunk stayed within the switchboard payload limit (the server enforces it
        # by closing the link, which would have failed the transfer).
        assert server.stats.closes.get("payload_too_large", 0) == 0
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_decline(server, wire, version, tmp_path):
    (_a, alice, aev), (b, bob, bev) = await _pair(server, version)
    src = tmp_path / "x.txt"
    src.write_bytes(b"hello")
    try:
        sending = alice.p2p.manager.send_file(b, src)
        offer = await bev.wait_for(FileOffered)
        offer.transfer.decline()
        assert await sending.wait(timeout=20) == "declined"
        finished = await aev.wait_for(TransferFinished)
        assert finished.by_peer and finished.status == "declined"
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_offer_times_out_unanswered(server, wire, version, tmp_path):
    (_a, alice, _aev), (b, bob, bev) = await _pair(server, version)
    src = tmp_path / "x.txt"
    src.write_bytes(b"hello")
    try:
        sending = alice.p2p.manager.send_file(b, src, answer_timeout=1.0)
        offer = await bev.wait_for(FileOffered)
        assert await sending.wait(timeout=20) == "timed out"
        # The BYE reaches the receiver: its offer ends as cancelled by the peer.
        assert await offer.transfer.wait(timeout=10) == "cancelled"
    finally:
        await alice.stop()
        await bob.stop()


async def _slow_source(total: int, started: asyncio.Event):
    block = b"\x5a" * 4096
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
        if sent >= 256 * 1024:
            started.set()
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("who", ["sender", "receiver"])
async def test_cancel_midway(server, wire, version, who, tmp_path):
    (_a, alice, aev), (b, bob, bev) = await _pair(server, version)
    total = 64 * 4096 * 8
    started = asyncio.Event()
    try:
        sending = alice.p2p.manager.send_file(
            b, _slow_source(total, started), name="stream.bin", size=total
        )
        offer = await bev.wait_for(FileOffered)
        dest = tmp_path / "partial.bin"
        offer.transfer.accept(dest)
        await asyncio.wait_for(started.wait(), 20)
        await bev.wait_for(TransferProgress)
        if who == "sender":
            sending.cancel()
            assert await offer.transfer.wait(timeout=20) == "cancelled"
            assert sending.status == "cancelled"
            got = await bev.wait_for(TransferFinished)
            assert got.by_peer
        else:
            offer.transfer.cancel()
            assert await sending.wait(timeout=20) == "cancelled"
            got = await aev.wait_for(TransferFinished)
            assert got.by_peer
        assert not dest.exists()  # an unfinished file is not left behind
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_accept_into_a_stream(server, wire, version):
    (_a, alice, _aev), (b, bob, bev) = await _pair(server, version)
    data = os.urandom(100_000)

    async def source():
        for i in range(0, len(data), 7000):
            yield data[i : i + 7000]

    try:
        sending = alice.p2p.manager.send_file(b, source(), name="s.bin", size=len(data))
        offer = await bev.wait_for(FileOffered)
        sink = io.BytesIO()
        offer.transfer.accept(sink)
        assert await sending.wait(timeout=30) == "completed"
        assert sink.getvalue() == data
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_display_picture_fetched_once_for_all_owners(server, wire, version):
    n = next(_ids)
    owner1, owner2, friend = (f"{x}{n}@example.com" for x in ("o1", "o2", "pic"))
    for who in (owner1, owner2, friend):
        server.add_account(who, "pw")
    for owner in (owner1, owner2):
        server.add_contact(owner, friend)
        server.add_contact(friend, owner)
    picture = os.urandom(20_000)
    cache = PictureCache()
    friend_client, _ = await online_client(
        server, friend, "pw", min_version=version, max_version=version
    )
    owners: list[tuple[Client, Recorder]] = []
    try:
        obj = await friend_client.set_display_picture(picture)
        assert obj is not None
        for owner in (owner1, owner2):
            client = Client(
                make_config(server, owner, "pw", min_version=version, max_version=version),
                pictures=cache,
            )
            client.p2p.auto_fetch_pictures = True
            rec = Recorder(client)
            await client.start()
            owners.append((client, rec))
        for _client, rec in owners:
            got = await rec.wait_for(DisplayPictureReceived, timeout=20)
            assert got.passport == friend and got.msnobject.sha1d == obj.sha1d
            assert got.msnobject.matches(got.data) and got.data == picture
        assert cache.fetches == 1
        assert cache.get(obj) == picture
    finally:
        for client, _ in owners:
            await client.stop()
        await friend_client.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_asking_for_an_object_we_do_not_have_is_declined(server, version):
    (_a, alice, aev), (b, bob, _bev) = await _pair(server, version)
    other = MSNObject.for_data(b, b"not bob's picture")
    try:
        await bob.set_display_picture(b"bob's picture")
        from puppets.p2p import ObjectFetchError

        with pytest.raises(ObjectFetchError, match="603"):
            await alice.p2p.manager.fetch_object(b, other, timeout=10)
        ev = await aev.wait_for(PresenceChanged, lambda e: e.passport == b)
        assert ev.passport == b
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_receiver_gives_up_when_the_sender_vanishes(server, version, tmp_path):
    (_a, alice, _aev), (b, bob, bev) = await _pair(server, version)
    bob.p2p.manager.data_timeout = 1.0
    stalled = asyncio.Event()

    async def stalls():
        yield b"\x01" * 50_000
        stalled.set()
        await asyncio.Event().wait()  # never more

    try:
        alice.p2p.manager.send_file(b, stalls(), name="stall.bin", size=100_000)
        offer = await bev.wait_for(FileOffered)
        dest = tmp_path / "stall.bin"
        offer.transfer.accept(dest)
        await asyncio.wait_for(stalled.wait(), 10)
        assert await offer.transfer.wait(timeout=10) == "timed out"
        assert "no data" in offer.transfer.reason and not dest.exists()
    finally:
        await alice.stop()
        await bob.stop()


async def test_too_many_open_offers_are_declined(server, tmp_path):
    (_a, alice, _aev), (b, bob, bev) = await _pair(server, 12)
    bob.p2p.manager.max_incoming = 1
    src = tmp_path / "x.txt"
    src.write_bytes(b"x")
    try:
        first = alice.p2p.manager.send_file(b, src)
        await bev.wait_for(FileOffered)
        second = alice.p2p.manager.send_file(b, src)
        assert await second.wait(timeout=10) == "declined"
        assert not first.finished and len(bev.of(FileOffered)) == 1
    finally:
        await alice.stop()
        await bob.stop()


async def test_offering_to_an_offline_contact_fails_clearly(server, tmp_path):
    (_a, alice, _aev), (b, bob, _bev) = await _pair(server, 12)
    await bob.stop()
    src = tmp_path / "x.txt"
    src.write_bytes(b"x")
    try:
        sending = alice.p2p.manager.send_file(b, src)
        assert await sending.wait(timeout=30) == "failed"
        assert "offline" in sending.reason
        obj = MSNObject.for_data(b, b"pic")
        from puppets.p2p import ObjectFetchError

        with pytest.raises(ObjectFetchError, match="offline"):
            await alice.p2p.manager.fetch_object(b, obj, timeout=10)
    finally:
        await alice.stop()


async def test_an_empty_file(server, tmp_path):
    (_a, alice, _aev), (b, bob, bev) = await _pair(server, 12)
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    try:
        sending = alice.p2p.manager.send_file(b, src)
        offer = await bev.wait_for(FileOffered)
        dest = tmp_path / "got-empty.txt"
        offer.transfer.accept(dest)
        assert await sending.wait(timeout=20) == "completed"
        assert await offer.transfer.wait(timeout=10) == "completed"
        assert dest.exists() and dest.read_bytes() == b""
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_transfers_both_ways_at_once_do_not_mix(server, wire, version, tmp_path):
    (a, alice, aev), (b, bob, bev) = await _pair(server, version)
    files = {}
    for name in ("one.bin", "two.bin", "three.bin"):
        files[name] = os.urandom(300_000)
        (tmp_path / name).write_bytes(files[name])

    def accept_all(recorder: Recorder, where: str):
        def on(event: object) -> None:
            if isinstance(event, FileOffered):
                event.transfer.accept(tmp_path / where / event.name)

        return on

    for who in ("at_alice", "at_bob"):
        (tmp_path / who).mkdir()
    alice.add_listener(accept_all(aev, "at_alice"))
    bob.add_listener(accept_all(bev, "at_bob"))
    try:
        sends = [
            alice.p2p.manager.send_file(b, tmp_path / "one.bin"),
            alice.p2p.manager.send_file(b, tmp_path / "two.bin"),
            bob.p2p.manager.send_file(a, tmp_path / "three.bin"),
        ]
        statuses = await asyncio.gather(*(t.wait(timeout=60) for t in sends))
        assert statuses == ["completed"] * 3
        await bev.until(lambda: len(bev.of(TransferFinished)) >= 3)  # 2 received + 1 sent
        for name in ("one.bin", "two.bin"):
            assert (tmp_path / "at_bob" / name).read_bytes() == files[name]
        assert (tmp_path / "at_alice" / "three.bin").read_bytes() == files["three.bin"]
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_contact_signed_in_again_gets_the_file_not_its_stopped_client(
    server, version, tmp_path
):
    """Bob serves his picture over a switchboard, stops and signs in again: the stopped
    Client must have left every switchboard, or Alice's next offer goes to that dead
    client (which still reads and acknowledges P2P) and the new one never sees it."""
    (_a, alice, _aev), (b, bob, _bev) = await _pair(server, version)
    again = None
    src = tmp_path / "after.txt"
    src.write_bytes(b"sent after bob came back")
    try:
        obj = await bob.set_display_picture(os.urandom(5_000))
        assert obj is not None
        assert await alice.p2p.manager.fetch_object(b, obj, timeout=20)
        await bob.stop()
        again, again_events = await online_client(
            server, b, "pw", min_version=version, max_version=version
        )
        sending = alice.p2p.manager.send_file(b, src)
        offer = await again_events.wait_for(FileOffered, timeout=20)
        dest = tmp_path / "got-after.txt"
        offer.transfer.accept(dest)
        assert await sending.wait(timeout=20) == "completed", sending.reason
        assert dest.read_bytes() == src.read_bytes()
    finally:
        await alice.stop()
        await bob.stop()
        if again is not None:
            await again.stop()
