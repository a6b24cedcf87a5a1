"""Two pools, one core, on MSNP18 (real Redis, PostgreSQL, Synapse, the MSNP test server):

- SIGTERM of the pool holding a session: it moves to the other pool and contacts see no
  sign-out (MPOP: the new endpoint is online before the old one signs out its own).
- SIGKILL of the pool holding a session: after the lease TTL the other pool has it online
  again; every message sent meanwhile, either way, is delivered or reported.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from msnbridge.config import load_config
from msnbridge.pools.redis_link import Keys, key_prefix
from puppets.event.contact import PresenceChanged
from tests.msn_fixtures import msn18_fixture  # noqa: F401 (the msn fixture)
from tests.msnp_server import MSNPTestServer
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.synapse_server import SynapseServer, msn_settings, send_text
from tests.test_faults_msn import fast_friend, texts
from tests.test_faults_process import daemon, daemon_logging, database_url
from tests.test_matrix_portals import ALICE, BOB, _dm_room, alice_seen_online, bot_id, log_in, until
from tests.test_pools_restart import pool_process
from tests.test_restart_stream import all_room_events

pytestmark = pytest.mark.timeout(300)
TTL = 3


def settings(server: MSNPTestServer) -> dict[str, object]:
    return msn_settings(server, services=True)  # MSNP18 logs in through the SOAP services


@contextlib.asynccontextmanager
async def two_pools(
    synapse: SynapseServer, config: Path, tmp_path: Path, owner_id: str
) -> AsyncIterator[tuple[dict[int, asyncio.subprocess.Process], Callable]]:  # type: ignore[type-arg]
    """The core and two pools; yields the pools by pid and `holder()` → the pid of the
    pool holding the owner's lease (None: nobody)."""
    keys = Keys(key_prefix(load_config(str(config))["appservice.id"]))
    r = aioredis.Redis.from_url(load_config(str(config))["pools.redis_url"], decode_responses=True)

    def pid_of(name: str) -> int:
        return int(name.rsplit(".", 1)[0].rsplit("-", 1)[1])

    async def holder() -> int | None:
        name = await r.get(keys.lease(owner_id))
        return pid_of(name) if name else None

    try:
        async with (
            daemon(synapse, config, tmp_path),
            pool_process(config, tmp_path, "a") as a,
            pool_process(config, tmp_path, "b") as b,
        ):
            # Both pools serving before the test starts: on a loaded machine a pool may
            # take longer to start than a login waits, and a failover needs the other.
            async def both_up() -> bool:
                return {a.pid, b.pid} <= {pid_of(n) for n in await r.zrange(keys.pools, 0, -1)}

            await until(both_up, timeout=90)
            yield {a.pid: a, b.pid: b}, holder
    finally:
        await r.aclose()


def bot_reports(events: list[dict], bot: str) -> list[str]:  # type: ignore[type-arg]
    return [
        e["content"].get("body", "")
        for e in events
        if (e["sender"] == bot and "elivered" in e["content"].get("body", ""))
        or (e["sender"] == bot and "may not have arrived" in e["content"].get("body", ""))
    ]


async def test_pool_sigterm_moves_the_session_without_a_sign_out(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with database_url("postgres", tmp_path) as db:
            config = bridge_config(
                **msn_settings(msn, services=True), database=db,
                logging=daemon_logging(tmp_path / "core.log"),
                pools={"redis_url": redis_url, "lease_ttl": TTL},
            )  # fmt: skip
            async with two_pools(synapse, config, tmp_path, owner.user_id) as (pools, holder):
                await log_in(synapse, owner)
                await alice_seen_online(bob_events)
                room = await _dm_room(synapse, owner, bob, "before the move")
                first = await holder()
                assert first in pools
                assert msn.stats.sign_outs[ALICE] == 0
                pools[first].terminate()
                assert await asyncio.wait_for(pools[first].wait(), 90) == 0
                other = next(p for p in pools if p != first)
                await until(lambda: holder(), timeout=2 * TTL)
                assert await holder() == other
                # Contacts saw no sign-out: the account never went offline.
                assert msn.stats.sign_outs[ALICE] == 0, msn.stats.as_dict()
                assert not [
                    e for e in bob_events.of(PresenceChanged)
                    if e.passport == ALICE and e.status == "FLN"
                ]  # fmt: skip
                assert msn.online_sessions(ALICE) == 1
                # And the conversation goes on, both ways, through the new pool.
                await send_text(synapse, owner, room, "after the move")
                await bob_events.until(lambda: "after the move" in texts(bob_events), timeout=30)
                assert (await bob.conversation([ALICE]).send_text("back to you")).ok

                async def arrived() -> bool:
                    events = await all_room_events(synapse, owner, room)
                    return any(e["content"].get("body") == "back to you" for e in events)

                await until(arrived, timeout=30)
    finally:
        await bob.stop()


async def test_pool_sigkill_sessions_come_back_on_the_other_pool(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with database_url("postgres", tmp_path) as db:
            config = bridge_config(
                **msn_settings(msn, services=True), database=db,
                logging=daemon_logging(tmp_path / "core.log"),
                pools={"redis_url": redis_url, "lease_ttl": TTL, "command_timeout": 20},
            )  # fmt: skip
            async with two_pools(synapse, config, tmp_path, owner.user_id) as (pools, holder):
                await log_in(synapse, owner)
                await alice_seen_online(bob_events)
                room = await _dm_room(synapse, owner, bob, "before the kill")
                first = await holder()
                assert first in pools
                pools[first].kill()
                await pools[first].wait()
                killed = asyncio.get_running_loop().time()
                other = next(p for p in pools if p != first)
                # Sent while no pool holds the session.
                to_msn = [f"m2n {i}" for i in range(3)]
                for text in to_msn:
                    await send_text(synapse, owner, room, text)
                undelivered = []
                for i in range(3):
                    result = await bob.conversation([ALICE]).send_text(f"n2m {i}")
                    if not result.ok:
                        undelivered.append(f"n2m {i}")  # reported to bob by his client
                await until(lambda: msn.online_sessions(ALICE) == 1, timeout=3 * TTL + 15)
                back_after = asyncio.get_running_loop().time() - killed
                assert await holder() == other
                # Lease TTL, a round of the other pool (TTL/3), the login itself.
                assert back_after < TTL + TTL / 3 + 10, back_after

                # Bob's client reported the others to him; these it confirmed (ACK, or
                # stored as offline messages for the session the other pool fetches).
                delivered_n2m = {f"n2m {i}" for i in range(3)} - set(undelivered)

                async def missing() -> tuple[list[str], list[str]]:
                    """Neither delivered nor reported yet: (Matrix → MSN, MSN → Matrix)."""
                    events = await all_room_events(synapse, owner, room)
                    got = set(texts(bob_events))
                    reports = bot_reports(events, bot_id(synapse))
                    in_matrix = {e["content"].get("body") for e in events}
                    to_bob = [
                        t for t in to_msn if t not in got and not any(t in r for r in reports)
                    ]
                    return to_bob, sorted(delivered_n2m - in_matrix)

                async def settled() -> bool:
                    return not any(await missing())

                # The two ways travel separately (offline messages through the core's
                # queue once the other pool fetched them): one done says nothing of the other.
                with contextlib.suppress(AssertionError, TimeoutError):
                    # A deadline: `until` counts polls, and each one reads the whole room.
                    await asyncio.wait_for(until(settled, timeout=600), 60)
                assert await missing() == ([], []), "lost: neither delivered nor reported"
                bodies = [
                    e["content"].get("body") for e in await all_room_events(synapse, owner, room)
                ]
                assert all(bodies.count(t) == 1 for t in delivered_n2m), bodies  # and once
                # And it works again both ways.
                await send_text(synapse, owner, room, "after the failover")
                await bob_events.until(
                    lambda: "after the failover" in texts(bob_events), timeout=30
                )
    finally:
        await bob.stop()
