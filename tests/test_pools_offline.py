"""Offline messages (MSNP13+) of a session held in a pool: the MSN server deletes them only
once they are in the link (Redis, in production), not while in the pool's outbox, so a
pool killed before publishing loses none; a muted session (being handed over) leaves them
on the server for its next holder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from msnbridge.pools.link import Envelope
from msnbridge.pools.memory_link import MemoryLink
from puppets.event.offline import OfflineMessageReceived
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder
from tests.test_pools_proxy import ALICE, BOB, OWNER, start_pool, stop_pool, until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer(versions=(2, 18)) as server:
        for passport, nick in ((ALICE, "Alice"), (BOB, "Bob")):
            server.add_account(passport, "pw", nick=nick)
        server.add_contact(ALICE, BOB, ("FL", "AL"))
        server.add_contact(BOB, ALICE, ("FL", "AL"))
        yield server


def offline_texts(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, OfflineMessageReceived)]


async def test_deleted_only_once_published(msn: MSNPTestServer) -> None:
    link = MemoryLink()
    publish = link.pool.publish
    down = False

    async def flaky(envelope: Envelope) -> None:
        if down:
            raise ConnectionError("the link is down")
        await publish(envelope)

    link.pool.publish = flaky  # type: ignore[method-assign]
    pool = await start_pool(msn, link)
    rec = Recorder(pool.client)
    try:
        down = True
        msn.add_oim(ALICE, BOB, "while the link is down", time.time() - 30, nick="Bob")
        await rec.wait_for(OfflineMessageReceived)  # fetched, emitted, in the outbox
        await asyncio.sleep(0.5)  # time for a delete that must not come
        assert [o.text for o in msn.oims(ALICE)] == ["while the link is down"]
        assert offline_texts(pool.core_events) == []
        down = False  # published at the outbox's next attempt, then deleted
        await until(lambda: not msn.oims(ALICE), timeout=10)
        await pool.link.drain()
        assert offline_texts(pool.core_events) == ["while the link is down"]
    finally:
        await stop_pool(pool)


async def test_a_muted_session_leaves_them_on_the_server(msn: MSNPTestServer) -> None:
    pool = await start_pool(msn)
    rec = Recorder(pool.client)
    try:
        pool.executor.mute(OWNER)  # being handed over: its events are not published
        msn.add_oim(ALICE, BOB, "during a handover", time.time() - 30, nick="Bob")
        event = await rec.wait_for(OfflineMessageReceived)
        await until(lambda: not pool.client.offline._lock.locked())
        assert [o.text for o in msn.oims(ALICE)] == ["during a handover"]
        assert event.id not in pool.client.seen_offline_ids  # the next holder delivers it
        assert offline_texts(pool.core_events) == []
    finally:
        await stop_pool(pool)
