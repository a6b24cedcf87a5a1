"""Offline messages on MSNP13-18: waiting at login (in order, with their original time,
deleted after delivery, never twice), arriving while online, and sent to an offline
contact as an OIM (lock-key challenge answered) with its own delivery status."""

from __future__ import annotations

import asyncio
import time

import pytest

from puppets import Client
from puppets.conversation import WITHDRAWN
from puppets.event.conversation import DeliveryStatus
from puppets.event.offline import OfflineMessageReceived
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    Recorder,
    add_friends,
    make_config,
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

VERSIONS = list(range(13, 19))


async def _poll(condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Wait for a server-side condition no client event announces."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - server state, no event to wait on
            await asyncio.sleep(0.05)


def _pair(server: MSNPTestServer, tag: str) -> tuple[str, str]:
    return add_friends(
        server, f"oa{tag}@example.com", f"ob{tag}@example.com", (f"Alice {tag}", f"Bob {tag}")
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_oims_both_ways(server: MSNPTestServer, version: int) -> None:
    a, b = _pair(server, str(version))
    earlier = time.time() - 3600
    server.add_oim(a, b, "second ñ", earlier + 60, nick="Bob")
    server.add_oim(a, b, "first", earlier, nick="Bob")
    alice, rec = await online_client(
        server, a, "pw", min_version=version, max_version=version, reconnect=False
    )
    try:
        await rec.until(lambda: len(rec.of(OfflineMessageReceived)) == 2)
        got = rec.of(OfflineMessageReceived)
        assert [m.text for m in got] == ["first", "second ñ"]
        assert [m.sender for m in got] == [b, b]
        assert abs(got[0].sent_at - earlier) < 1 and abs(got[1].sent_at - earlier - 60) < 1
        assert got[0].nick == "Bob"
        await _poll(lambda: not server.oims(a))  # deleted on the server
        assert {m.id for m in got} <= alice.seen_offline_ids
        # One arriving while online is fetched at the server's notice.
        server.add_oim(a, b, "while online", time.time())
        late = await rec.wait_for(OfflineMessageReceived, lambda e: e.text == "while online")
        assert late.sender == b
        # Alice writes to Bob, who is offline: stored as an OIM, reported as such.
        result = await alice.conversation([b]).send_text("are you there?")
        assert result.status is DeliveryStatus.SENT_AS_OIM and result.ok
        assert [o.text for o in server.oims(b)] == ["are you there?"]
        assert server.oims(b)[0].sender == a and server.oims(b)[0].nick == "Alice " + str(version)
        # The same Client stopped and started again still stores offline messages.
        await alice.stop()
        await alice.start()
        await alice.wait_online(timeout=15)
        again = await alice.send_offline(b, "after a restart")
        assert again.status is DeliveryStatus.SENT_AS_OIM, again.reason
    finally:
        await alice.stop()
    bob, bob_rec = await online_client(
        server, b, "pw", min_version=version, max_version=version, reconnect=False
    )
    try:
        await bob_rec.until(lambda: len(bob_rec.of(OfflineMessageReceived)) == 2)
        got = [(m.sender, m.text) for m in bob_rec.of(OfflineMessageReceived)]
        assert got == [(a, "are you there?"), (a, "after a restart")]
    finally:
        await bob.stop()


async def test_seen_ids_survive_a_restart(server: MSNPTestServer) -> None:
    """An id delivered before (persisted by the caller) is not delivered again, even if
    the server still holds it (say the delete was lost), and it is deleted then."""
    a, b = _pair(server, "seen")
    kept = server.add_oim(a, b, "already seen", time.time() - 100)
    server.add_oim(a, b, "new one", time.time() - 50)
    client = Client(make_config(server, a, "pw", reconnect=False), seen_offline_ids=[kept])
    rec = Recorder(client)
    await client.start()
    try:
        await client.wait_online(timeout=15)
        got = await rec.wait_for(OfflineMessageReceived)
        assert got.text == "new one"
        await _poll(lambda: not server.oims(a))
        assert [m.text for m in rec.of(OfflineMessageReceived)] == ["new one"]
        assert kept in client.seen_offline_ids
    finally:
        await client.stop()


async def test_oim_to_a_non_user_is_reported(server: MSNPTestServer) -> None:
    a, _b = _pair(server, "nouser")
    server.add_contact(a, "ghost@example.com")  # exists only as a contact: cannot sign in
    alice, _rec = await online_client(server, a, "pw", reconnect=False)
    try:
        result = await alice.send_offline("ghost@example.com", "hello?")
        assert result.status is DeliveryStatus.FAILED
        assert "InvalidRecipient" in result.reason
    finally:
        await alice.stop()


async def test_before_write_runs_before_an_offline_message_is_stored(
    server: MSNPTestServer,
) -> None:
    """A text to an offline contact is stored as an OIM: the hook runs first, and False
    keeps it from being stored."""
    a, b = _pair(server, "hook")
    alice, _rec = await online_client(server, a, "pw", reconnect=False)
    stored_when_asked: list[int] = []

    async def hook() -> bool:
        stored_when_asked.append(len(server.oims(b)))
        return True

    async def withdraw() -> bool:
        return False

    try:
        result = await alice.conversation([b]).send_text("one", before_write=hook)
        assert result.status is DeliveryStatus.SENT_AS_OIM, result
        assert stored_when_asked == [0]
        withdrawn = await alice.conversation([b]).send_text("two", before_write=withdraw)
        assert not withdrawn.ok and withdrawn.reason == WITHDRAWN
        assert [o.text for o in server.oims(b)] == ["one"]
    finally:
        await alice.stop()


async def test_deleted_only_after_the_owner_acknowledges(server: MSNPTestServer) -> None:
    """With an offline_ack the messages stay on the server until it returns (a process
    killed while they were only in memory loses nothing); when it raises they stay there,
    are not counted as seen, and the next fetch delivers them again (once)."""
    a, b = _pair(server, "ack")
    server.add_oim(a, b, "first", time.time() - 100)
    server.add_oim(a, b, "second", time.time() - 50)
    client = Client(make_config(server, a, "pw", reconnect=False))
    rec = Recorder(client)
    acked: list[list[str]] = []
    release = asyncio.Event()
    fail = True

    async def ack(events) -> None:  # type: ignore[no-untyped-def]
        acked.append([e.text for e in events])
        # Emitted to the listeners before the acknowledgement is asked.
        assert [e.text for e in rec.of(OfflineMessageReceived)][-len(events) :] == acked[-1]
        await release.wait()
        if fail:
            raise RuntimeError("could not store them")

    client.offline_ack = ack
    await client.start()
    try:
        await client.wait_online(timeout=15)
        await rec.until(lambda: len(acked) == 1)
        await asyncio.sleep(0.3)  # time for a delete that must not come
        assert [o.text for o in server.oims(a)] == ["first", "second"]
        release.set()  # ... and the owner fails to store them
        await _poll(lambda: not client.offline._lock.locked())
        assert [o.text for o in server.oims(a)] == ["first", "second"]
        assert not {o.id for o in server.oims(a)} & client.seen_offline_ids
        fail = False  # the next fetch brings them again, and now they are taken
        assert await client.offline.fetch() == 2
        assert acked == [["first", "second"], ["first", "second"]]
        await _poll(lambda: not server.oims(a))
        assert len(client.seen_offline_ids) == 2
        # Fetched once more (nothing left): no third delivery.
        assert await client.offline.fetch() == 0
        assert [m.text for m in rec.of(OfflineMessageReceived)] == ["first", "second"] * 2
    finally:
        await client.stop()
