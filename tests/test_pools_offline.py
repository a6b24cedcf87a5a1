"""Offline messages (MSNP13+) of a session held in a pool: the MSN server deletes them only
once they are in the link (Redis, in production), not while in the pool's outbox, so a
pool killed before publishing loses none; a muted session (being handed over) leaves them
on the server for its next holder; and the core acknowledges their events only once they
are in its database, so a core SIGKILLed before they reached Matrix delivers them after
its restart (core and pool as processes, real Redis, PostgreSQL and Synapse)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from msnbridge.pools.link import Envelope
from msnbridge.pools.memory_link import MemoryLink
from puppets.event.offline import OfflineMessageReceived
from tests.core_fixtures import ALICE, BOB, OWNER, until
from tests.homeserver_gate import HomeserverGate
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.synapse_server import (
    SynapseServer,
    matrix_login,
    msn_settings,
    room_events,
    wait_for_event,
)
from tests.test_faults_process import daemon, daemon_logging, database_url, rows_of
from tests.test_matrix_portals import ghost_id, is_message_from, join, wait_invite
from tests.test_matrix_portals import until as until_async
from tests.test_pools_proxy import start_pool, stop_pool
from tests.test_pools_restart import pool_process

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


@pytest.mark.timeout(300)
async def test_core_sigkill_before_matrix_loses_none(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    gate = HomeserverGate(synapse.url)
    homeserver = {"address": await gate.start(), "domain": synapse.domain, "verify_ssl": True}
    owner = await synapse.register_user()
    written = round(time.time()) - 3600
    texts = ["first while away", "second while away", "third while away"]
    try:
        async with database_url("postgres", tmp_path) as db:
            config = bridge_config(
                **msn_settings(msn, services=True), database=db, homeserver=homeserver,
                logging=daemon_logging(tmp_path / "core.log"),
                pools={"redis_url": redis_url, "lease_ttl": 3, "command_timeout": 30},
            )  # fmt: skip
            async with pool_process(config, tmp_path, "pool-a"):
                async with daemon(synapse, config, tmp_path) as core:
                    await matrix_login(synapse, owner, ALICE, "pw")
                    gate.close()
                    for n, text in enumerate(texts):
                        msn.add_oim(ALICE, BOB, text, written + 60 * n, nick="Bob")
                    room = await wait_invite(synapse, owner)
                    await join(synapse, owner, room)
                    await until_async(lambda: not msn.oims(ALICE) and gate.held >= 1, 30)
                    await asyncio.sleep(0.3)
                    core.kill()
                    await core.wait()
                gate.drop_held()
                gate.open()
                ghost = ghost_id(synapse, BOB)
                async with daemon(synapse, config, tmp_path) as core:
                    await wait_for_event(
                        synapse, owner, room, is_message_from(ghost, texts[-1]), timeout=60
                    )
                    await asyncio.sleep(1.0)  # time for a second copy that must not come
                    events = [
                        e
                        for e in await room_events(synapse, owner, room)
                        if e["type"] == "m.room.message" and e["sender"] == ghost
                    ]
                    assert [e["content"]["body"] for e in events] == texts
                    for n, event in enumerate(events):
                        assert abs(event["origin_server_ts"] - (written + 60 * n) * 1000) < 2000
                    assert await rows_of(db, "SELECT msn_id FROM msn_inbox") == []
                    assert msn.online_sessions(ALICE) == 1  # the pool kept the session
                    core.terminate()
                    await asyncio.wait_for(core.wait(), 15)
    finally:
        await gate.stop()
