"""Files, emoticons, voice clips and the owner's picture through a connection pool: a real
puppets.Client on the MSNP test server held by a SessionExecutor, the core's RemoteClient
and Router (with its MsnFileRouter) on the other end, over the in-memory link here and
over a real Redis with the real `Pool` class (tests/test_pools_media_redis.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from msnbridge.config import load_config
from msnbridge.core.portal import Portal
from msnbridge.core.router import Router
from msnbridge.db import open_database
from msnbridge.db import user as user_db
from msnbridge.db.user import User
from msnbridge.pools import transfers as transfers_mod
from msnbridge.pools.executor import SessionExecutor
from msnbridge.pools.memory_link import MemoryDoneStore, MemoryLink
from msnbridge.pools.remote_client import RemoteClient
from msnbridge.pools.transfers import MemoryTransfers
from puppets import Client
from puppets.event.contact import PresenceChanged
from puppets.event.transfer import FileOffered, TransferFinished
from puppets.msnobject import TYPE_EMOTICON, TYPE_VOICE_CLIP, MSNObject
from puppets.p2p.manager import ObjectFetchError
from puppets.p2p.transfer import OutgoingFile
from tests.core_fixtures import ALICE, BOB, OWNER, RecordingSide, until, write_offline_config
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import make_config, online_client
from tests.test_pools_proxy import PoolSessions

pytestmark = pytest.mark.timeout(90)
MB = 1024 * 1024


class FileSide(RecordingSide):
    """A side carrying files (as the Matrix side does): keeps what it was given."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.files: list[tuple[str, str, bytes]] = []  # (peer, name, data)
        self.release = asyncio.Event()
        self.release.set()

    async def deliver_file(
        self, portal: Portal, peer: str, nick: str, path: Path, name: str, size: int
    ) -> None:
        await self.release.wait()
        data = await asyncio.to_thread(path.read_bytes)
        assert len(data) == size
        self.files.append((peer, name, data))


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        for passport, nick in ((ALICE, "Alice"), (BOB, "Bob")):
            server.add_account(passport, "pw", nick=nick)
        server.add_contact(ALICE, BOB, ("FL", "AL"))
        server.add_contact(BOB, ALICE, ("FL", "AL"))
        yield server


class Held:
    """ALICE's session in a pool (memory link) for OWNER, and the core's Router over it."""

    def __init__(
        self, link: MemoryLink, executor: SessionExecutor, client: Client,
        remote: RemoteClient, router: Router, side: FileSide, db: Any,
    ) -> None:  # fmt: skip
        self.link, self.executor, self.client = link, executor, client
        self.remote, self.router, self.side, self.db = remote, router, side, db
        self.events: list[object] = []
        remote.add_listener(self.events.append)

    async def settle(self) -> None:
        await self.executor.flush(5)
        await self.link.drain()
        await self.router.events.drain()


@pytest.fixture
async def held(msn: MSNPTestServer, tmp_path: Path) -> AsyncIterator[Held]:
    path = tmp_path / "bridge.yaml"
    write_offline_config(
        path, files={"max_incoming_size": 32 * MB, "temp_dir": str(tmp_path / "core-tmp")}
    )
    config = load_config(str(path))
    db = await open_database(config["database"])
    await user_db.save(db, User(OWNER, "matrix", ALICE, state="logged_in"))
    link = MemoryLink()
    executor = SessionExecutor(
        link.pool, MemoryDoneStore(), pool="pool-a", temp_dir=str(tmp_path / "pool-tmp")
    )
    client = Client(make_config(msn, ALICE, "pw"))
    remote = RemoteClient(OWNER, ALICE, link.core, command_timeout=10)
    router = Router(PoolSessions(config, {OWNER: remote}), db)  # type: ignore[arg-type]
    side = FileSide("matrix")
    router.add_side(side)
    h = Held(link, executor, client, remote, router, side, db)

    async def on_event(envelope: Any) -> None:
        remote.apply(envelope)

    link.core.on_event(on_event)
    executor.attach(OWNER, client)
    await client.start()
    await client.wait_online(timeout=15)
    await h.settle()
    try:
        yield h
    finally:
        await router.events.drain()
        await router.stop()
        await client.stop()
        await executor.close()
        await link.close()
        await remote.close()
        await db.stop()


def leftovers(tmp_path: Path) -> list[Path]:
    return [p for d in ("core-tmp", "pool-tmp") if (tmp_path / d).exists()
            for p in (tmp_path / d).iterdir()]  # fmt: skip


async def paced_source(total: int) -> AsyncIterator[bytes]:
    """``total`` bytes in 4 KiB blocks, the first 256 KiB at once, then one per 10 ms."""
    block, sent = os.urandom(4096), 0
    while sent < total:
        yield block
        sent += len(block)
        if sent > 256 * 1024:
            await asyncio.sleep(0.01)


def send_long_file(bob: Client) -> OutgoingFile:
    """16 MiB from ``bob`` to ALICE as long.bin, at paced_source's pace: still being sent
    seconds later whatever the machine, so a test can act midway (read from a file, a
    quiet machine had all of it in the pool's disk first)."""
    return bob.p2p.manager.send_file(ALICE, paced_source(16 * MB), name="long.bin", size=16 * MB)


# --- a contact's file to the owner ---


async def test_a_contacts_multi_megabyte_file_reaches_the_owner_intact(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    data = os.urandom(3 * MB + 12345)
    source = tmp_path / "holiday.bin"
    source.write_bytes(data)
    try:
        sending = bob.p2p.manager.send_file(ALICE, source)
        assert await sending.wait(timeout=60) == "completed"
        await until(lambda: held.side.files, timeout=30)
        [(peer, name, got)] = held.side.files
        assert (peer, name) == (BOB, "holiday.bin")
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        # Never more than the window in flight, and nothing left behind.
        assert 0 < held.link.transfers.most_waiting <= transfers_mod.WINDOW
        await held.settle()
        assert held.link.transfers.channels == {}
        assert leftovers(tmp_path) == []
        [offer] = [e for e in held.events if isinstance(e, FileOffered)]
        assert offer.size == len(data) and offer.transfer.status == "completed"
    finally:
        await bob.stop()


async def test_a_file_over_the_limit_is_declined_and_the_owner_told(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    source = tmp_path / "huge.bin"
    source.write_bytes(b"\0" * (32 * MB + 1))
    try:
        sending = bob.p2p.manager.send_file(ALICE, source)
        assert await sending.wait(timeout=30) == "declined"  # the contact hears it
        await held.settle()
        (notice,) = [n for n in held.side.of("notice") if "huge.bin" in n.text]
        assert "larger than the bridge's limit" in notice.text
        assert held.side.files == [] and leftovers(tmp_path) == []
    finally:
        await bob.stop()


async def test_a_contact_who_cancels_midway_is_told_to_the_owner(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        sending = send_long_file(bob)
        await until(lambda: sending.done > MB, timeout=30)
        sending.cancel("changed my mind")
        await until(lambda: any("long.bin" in n.text for n in held.side.of("notice")), 30)
        (notice,) = [n for n in held.side.of("notice") if "long.bin" in n.text]
        assert "did not arrive" in notice.text
        assert held.side.files == []
        await until(lambda: leftovers(tmp_path) == [], timeout=10)
    finally:
        await bob.stop()


async def test_the_core_stopping_midway_cancels_the_file_and_the_contact_hears_it(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    # The contact's client holds the rest of the file until the core has stopped: on a
    # loaded machine a file read from disk could be all in the pool before the stop.
    rest = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        yield os.urandom(2 * MB)
        await rest.wait()
        yield os.urandom(14 * MB)

    try:
        sending = bob.p2p.manager.send_file(ALICE, source(), name="long.bin", size=16 * MB)
        await until(lambda: sending.done > MB, timeout=30)
        await held.remote.close()  # the core stops (its RemoteClients are closed)
        assert await sending.wait(timeout=30) == "cancelled"
        assert "contact cancelled" in sending.reason
        await until(lambda: leftovers(tmp_path) == [], timeout=10)
    finally:
        rest.set()
        await bob.stop()


async def test_a_core_gone_without_a_word_cancels_the_file_after_the_stall(
    held: Held, msn: MSNPTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The core was killed: nobody reads. The pool's pump gives up after the stall and the
    # contact hears a BYE; nothing stays behind.
    monkeypatch.setattr(transfers_mod.Transfers, "stall", 2.0)
    bob, _ = await online_client(msn, BOB, "pw")
    held.side.release.clear()
    try:
        sending = send_long_file(bob)
        await until(lambda: sending.done > 256 * 1024, timeout=30)
        # What a SIGKILL does to the core's reader: gone, and nothing said (its last words
        # go nowhere).
        held.remote.transfers = MemoryTransfers()
        [transfer] = list(held.remote._transfers.values())
        assert transfer._task is not None
        transfer._task.cancel()
        assert await sending.wait(timeout=30) == "cancelled"
        channel = held.link.transfers.channels[transfer.tid]
        assert channel.cancelled is not None and "nothing was taken for 2 s" in channel.cancelled
        await until(lambda: leftovers(tmp_path) == [], timeout=10)
    finally:
        held.side.release.set()
        await bob.stop()


async def test_a_pool_gone_fails_the_file_for_the_owner(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        sending = send_long_file(bob)
        await until(lambda: sending.done > MB, timeout=30)
        # The pool dies: its pump stops unannounced (its last words go nowhere) and its
        # lease goes.
        assert held.executor.transfers is not None
        held.executor.transfers.transfers = MemoryTransfers()
        for entry in held.executor.transfers._incoming.values():
            assert entry.pump is not None
            entry.pump.cancel()
        held.link.gone.add("pool-a")
        await until(lambda: any("long.bin" in n.text for n in held.side.of("notice")), 30)
        (notice,) = [n for n in held.side.of("notice") if "long.bin" in n.text]
        assert "connection pool holding the session stopped" in notice.text
        assert await sending.wait(timeout=30) == "cancelled"  # and the contact is told
    finally:
        await bob.stop()


async def test_a_pool_that_stops_tells_the_core_and_the_contact(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        sending = send_long_file(bob)
        await until(lambda: sending.done > MB, timeout=30)
        await held.executor.close()  # what Pool.stop does after handing sessions over
        await until(lambda: any("long.bin" in n.text for n in held.side.of("notice")), 10)
        (notice,) = [n for n in held.side.of("notice") if "long.bin" in n.text]
        assert "the connection pool stopped" in notice.text
        assert await sending.wait(timeout=30) == "cancelled"
        assert sending.reason == "the contact cancelled the transfer"
        await until(lambda: leftovers(tmp_path) == [], timeout=10)
    finally:
        await bob.stop()


# --- the owner's file to a contact ---


async def test_the_owners_file_reaches_the_contact_intact(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, bob_events = await online_client(msn, BOB, "pw")
    data = os.urandom(3 * MB + 7)
    source = tmp_path / "to-bob.bin"
    source.write_bytes(data)
    try:
        transfer = held.remote.p2p.manager.send_file(BOB, source, name="photos.zip")
        offer = await bob_events.wait_for(FileOffered, timeout=30)
        assert (offer.sender, offer.name, offer.size) == (ALICE, "photos.zip", len(data))
        dest = tmp_path / "got.bin"
        offer.transfer.accept(dest)
        assert await offer.transfer.wait(timeout=60) == "completed"
        assert await transfer.wait(timeout=30) == "completed"
        assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()
        assert held.link.transfers.most_waiting <= transfers_mod.WINDOW
        await held.settle()
        assert held.link.transfers.channels == {}
        assert held.executor.transfers is not None and held.executor.transfers._outgoing == {}
        finished = [e for e in held.events if isinstance(e, TransferFinished)]
        assert [(e.status, e.incoming) for e in finished] == [("completed", False)]
    finally:
        await bob.stop()


async def test_the_owners_file_declined_by_the_contact_is_a_failure(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, bob_events = await online_client(msn, BOB, "pw")
    source = tmp_path / "to-bob.bin"
    source.write_bytes(os.urandom(2 * MB))  # over the window: the core waits to put more
    try:
        transfer = held.remote.p2p.manager.send_file(BOB, source)
        offer = await bob_events.wait_for(FileOffered, timeout=30)
        await asyncio.sleep(0.3)
        offer.transfer.decline()
        assert await transfer.wait(timeout=30) == "declined"
        # The core stops putting, and what it had put is dropped.
        await until(lambda: transfer._task.done())
        assert transfer.tid not in held.link.transfers.channels
    finally:
        await bob.stop()


async def test_the_owners_file_fails_when_the_pool_is_gone(
    held: Held, msn: MSNPTestServer, tmp_path: Path
) -> None:
    bob, bob_events = await online_client(msn, BOB, "pw")
    source = tmp_path / "to-bob.bin"
    source.write_bytes(os.urandom(2 * MB))
    try:
        transfer = held.remote.p2p.manager.send_file(BOB, source)
        await bob_events.wait_for(FileOffered, timeout=30)
        held.link.gone.add("pool-a")
        assert await transfer.wait(timeout=30) == "failed"
        assert "connection pool holding the session stopped" in transfer.reason
    finally:
        await bob.stop()


# --- objects: emoticons, voice clips; the owner's picture ---


async def test_an_object_fetched_through_the_pool_comes_whole_in_chunks(
    held: Held, msn: MSNPTestServer
) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    clip = os.urandom(600_000)  # a long voice clip: three chunks
    obj = MSNObject.for_data(BOB, clip, TYPE_VOICE_CLIP)
    bob.p2p.manager.serve_object(obj, clip)
    unknown = MSNObject.for_data(BOB, os.urandom(1000), TYPE_EMOTICON)
    try:
        got = await held.remote.p2p.manager.fetch_object(BOB, obj, timeout=20)
        assert got == clip
        with pytest.raises(ObjectFetchError):
            await held.remote.p2p.manager.fetch_object(BOB, unknown, timeout=3)
        await held.settle()
        assert held.link.transfers.channels == {}
    finally:
        await bob.stop()


async def test_the_owners_picture_is_set_in_the_pool_and_set_again_on_a_fresh_session(
    held: Held, msn: MSNPTestServer
) -> None:
    bob, bob_events = await online_client(msn, BOB, "pw")
    picture = os.urandom(300_000)  # over one chunk
    try:
        await held.remote.set_display_picture(picture)
        assert held.client._own_picture is not None
        assert held.client._own_picture[1] == picture
        seen = await bob_events.wait_for(
            PresenceChanged, lambda e: e.passport == ALICE and e.msnobject is not None, 20
        )
        assert await bob.p2p.manager.fetch_object(ALICE, seen.msnobject, timeout=20) == picture
        # The session starts afresh on a pool without it (moved, restarted): set again.
        await held.client.set_display_picture(None)
        held.executor.publish_snapshot(OWNER)
        await until(lambda: held.client._own_picture is not None, timeout=10)
        assert held.client._own_picture is not None and held.client._own_picture[1] == picture
        # A snapshot that shows it already sets nothing again.
        before = len(held.link.commands)
        held.executor.publish_snapshot(OWNER)
        await held.settle()
        await asyncio.sleep(0.2)
        assert [c.kind for c in held.link.commands[before:]] == []
    finally:
        await bob.stop()
