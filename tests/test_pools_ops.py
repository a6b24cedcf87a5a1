"""Running pools: their metrics, and a new pool taking its share (real Redis, the shared
database, `msnbridge pool` processes and the MSNP test server on MSNP18; no core needed:
a pool reads the logged-in users from the database itself).

- A pool serves /metrics (sessions it holds, lease moves, the events stream's lag) with
  its instance name on every pool series.
- Events a pool could not keep because the core was down past pools.max_core_downtime
  reach their owner as one notice in Matrix once the core is back.
- A second pool started beside one holding 4 sessions gets 2 of them, handed over without a
  sign-out (MPOP: the new endpoint is online before the old one leaves).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from msnbridge.config import load_config
from msnbridge.db import open_database
from msnbridge.db import user as user_db
from msnbridge.pools.redis_link import Keys, key_prefix
from msnbridge.secrets import SecretBox
from tests.msnp_server import MSNPTestServer
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.synapse_server import (
    SynapseServer,
    bot_id,
    free_port,
    is_notice_from,
    msn_settings,
    room_events,
    wait_for_event,
)
from tests.test_faults_msn import fast_friend
from tests.test_faults_process import daemon, daemon_logging, database_url
from tests.test_matrix_portals import ALICE, BOB, PASSWORD, alice_seen_online, log_in, until
from tests.test_pools_restart import pool_process
from tests.test_pools_rounds import owner_of

pytestmark = pytest.mark.timeout(300)
TTL = 3
USERS = [f"user{i}@hotmail.com" for i in range(4)]


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer(versions=(18, 18)) as server:
        for passport in USERS:
            server.add_account(passport, PASSWORD)
        server.add_account(ALICE, PASSWORD, nick="Alice")
        server.add_account(BOB, PASSWORD, nick="Bob")
        server.add_contact(ALICE, BOB, ("FL", "AL"))
        server.add_contact(BOB, ALICE, ("FL", "AL"))
        yield server


def pool_yaml(config: Path, name: str, port: int, ttl: int | None = None) -> Path:
    """The shared bridge.yaml with this pool's instance name and metrics port (pools on
    one machine need ports of their own), and another lease TTL if given."""
    data = json.loads(config.read_text())  # JSON is YAML
    data["pools"]["instance"] = name
    if ttl is not None:
        data["pools"]["lease_ttl"] = ttl
    data["metrics"] = {"enabled": True, "listen_address": "127.0.0.1", "port": port}
    path = config.with_name(f"{name}.yaml")
    path.write_text(json.dumps(data, indent=2))
    return path


async def store_logins(config: Path, passports: list[str]) -> None:
    """Users logged in through the core earlier: encrypted passwords in the database."""
    settings = load_config(str(config))
    box = SecretBox(settings["bridge.secret_key"])
    db = await open_database(settings["database"])
    try:
        for passport in passports:
            owner = owner_of(passport)
            await user_db.save(db, user_db.User(
                owner, "matrix", passport, box.encrypt(PASSWORD, context=owner),
                state="logged_in",
            ))  # fmt: skip
    finally:
        await db.stop()


async def scrape(port: int) -> dict[str, float]:
    """Series (name with labels, as printed) → value."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


@pytest.fixture
async def shared(
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[tuple[Path, Callable]]:  # type: ignore[type-arg]
    """(bridge.yaml shared by the pools, holders() → {owner: pool name or None})."""
    async with database_url("postgres", tmp_path) as db:
        config = bridge_config(
            **msn_settings(msn, services=True), database=db,
            logging=daemon_logging(tmp_path / "pools.log"),
            pools={"redis_url": redis_url, "lease_ttl": TTL, "command_timeout": 20},
        )  # fmt: skip
        keys = Keys(key_prefix(load_config(str(config))["appservice.id"]))
        r = aioredis.Redis.from_url(redis_url, decode_responses=True)

        async def holders() -> dict[str, str | None]:
            names = await r.mget([keys.lease(owner_of(p)) for p in USERS])
            return {
                owner_of(p): n.rsplit(".", 1)[0] if n else None
                for p, n in zip(USERS, names, strict=True)
            }

        try:
            yield config, holders
        finally:
            await r.aclose()


async def split_evenly(holders: Callable) -> bool:  # type: ignore[type-arg]
    """pool-a and pool-b hold two of the four sessions each."""
    held = list((await holders()).values())
    return held.count("pool-a") == 2 and held.count("pool-b") == 2


async def test_a_pool_serves_its_metrics_with_its_instance_name(
    shared: tuple[Path, Callable],
    msn: MSNPTestServer,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    config, holders = shared
    await store_logins(config, USERS[:2])
    port = free_port()
    async with pool_process(pool_yaml(config, "pool-a", port), tmp_path, "a"):
        await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS[:2]), timeout=60)
        assert set((await holders()).values()) == {"pool-a", None}

        # One measuring round sets the gauges one after another, and a session counts
        # before it is online and before its snapshot is in the events stream: wait for a
        # scrape in which the round has seen both sessions through.
        async def settled() -> bool:
            m = await scrape(port)
            return (
                m.get('msnbridge_pool_sessions{pool="pool-a"}') == 2
                and m.get('msnbridge_puppet_sessions{state="online"}') == 2
                and m.get('msnbridge_pool_stream_lag{pool="pool-a",state="unread"}', 0) >= 2
            )

        await until(settled, timeout=3 * TTL)
        metrics = await scrape(port)
        assert metrics['msnbridge_pool_lease_moves_total{move="taken",pool="pool-a"}'] == 2
        assert metrics['msnbridge_pool_lease_moves_total{move="lost",pool="pool-a"}'] == 0
        assert metrics['msnbridge_pool_events_dropped_total{pool="pool-a"}'] == 0
        assert metrics['msnbridge_puppet_sessions{state="online"}'] == 2
        # No core reads the events stream: the snapshots of both sessions wait in it.
        assert metrics['msnbridge_pool_stream_lag{pool="pool-a",state="unread"}'] >= 2
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as response:
                health = await response.json()
        assert health["checks"]["sessions"] == 2 and health["checks"]["pool"] == "pool-a"


async def test_a_new_pool_takes_its_share_without_a_sign_out(
    shared: tuple[Path, Callable],
    msn: MSNPTestServer,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    config, holders = shared
    await store_logins(config, USERS)
    port_a, port_b = free_port(), free_port()
    async with pool_process(pool_yaml(config, "pool-a", port_a), tmp_path, "a"):
        await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), timeout=60)
        assert set((await holders()).values()) == {"pool-a"}
        logins_before = dict(msn.stats.account_logins)
        async with pool_process(pool_yaml(config, "pool-b", port_b), tmp_path, "b"):
            await until(lambda: split_evenly(holders), timeout=6 * TTL + 30)

            def moved() -> list[str]:
                return [p for p in USERS if msn.stats.account_logins[p] > logins_before[p]]

            # Each moved session logged in once more (the new endpoint), and none signed
            # out: the old endpoint left only after the new one was online.
            await until(lambda: len(moved()) == 2, timeout=30)
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), timeout=30)
            assert sum(msn.stats.sign_outs.values()) == 0, msn.stats.as_dict()
            # And it settles: no more moves once the share is even.
            await asyncio.sleep(2 * TTL)
            held = list((await holders()).values())
            assert held.count("pool-a") == 2 and held.count("pool-b") == 2
            assert len(moved()) == 2 and sum(msn.stats.sign_outs.values()) == 0
            moves_a = await scrape(port_a)
            assert (
                moves_a['msnbridge_pool_lease_moves_total{move="handed_over",pool="pool-a"}'] == 2
            )
            assert moves_a['msnbridge_pool_sessions{pool="pool-a"}'] == 2
            moves_b = await scrape(port_b)
            assert moves_b['msnbridge_pool_lease_moves_total{move="taken",pool="pool-b"}'] == 2


async def test_a_killed_pools_sessions_are_taken_once_its_leases_expire(
    shared: tuple[Path, Callable],
    msn: MSNPTestServer,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    # Two pools sharing four sessions evenly; one is SIGKILLed. The other takes its two
    # as soon as their leases expire (a TTL after the dead pool's last renewal, then a
    # round of TTL/3), not only once the dead pool stops counting towards the share
    # (3 TTLs without a heartbeat: until then the survivor's share was 2, and it held 2).
    config, holders = shared
    ttl = 6  # the two outcomes 8 s apart at least, whatever the machine's load
    await store_logins(config, USERS)
    a_yaml = pool_yaml(config, "pool-a", free_port(), ttl)
    b_yaml = pool_yaml(config, "pool-b", free_port(), ttl)
    async with pool_process(a_yaml, tmp_path, "a") as pool_a:
        await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), timeout=60)
        async with pool_process(b_yaml, tmp_path, "b"):
            await until(lambda: split_evenly(holders), timeout=6 * ttl + 30)
            pool_a.kill()
            await pool_a.wait()
            loop = asyncio.get_running_loop()
            killed = loop.time()

            async def all_on_b() -> bool:
                return set((await holders()).values()) == {"pool-b"}

            await until(all_on_b, timeout=6 * ttl + 30)
            taken_after = loop.time() - killed
            # At most a TTL and a round after the kill (+ slack for a loaded machine);
            # counting the dead pool as live for 3 TTLs took 3 TTLs less a round at least.
            assert taken_after < ttl + ttl / 3 + 4, taken_after
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), timeout=30)


async def test_events_dropped_while_the_core_was_away_are_told_to_the_owner(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    bob, bob_events = await fast_friend(msn, BOB)
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with database_url("postgres", tmp_path) as db:
            config = bridge_config(
                **msn_settings(msn, services=True), database=db,
                logging=daemon_logging(tmp_path / "core.log"),
                pools={"redis_url": redis_url, "lease_ttl": TTL, "max_core_downtime": 1,
                       "command_timeout": 20},
            )  # fmt: skip
            keys = Keys(key_prefix(load_config(str(config))["appservice.id"]))
            async with pool_process(config, tmp_path, "pool"):
                async with daemon(synapse, config, tmp_path) as core:
                    management = await log_in(synapse, owner)
                    await alice_seen_online(bob_events)
                    core.kill()
                    await core.wait()

                async def core_gone() -> bool:
                    return not await r.exists(keys.core)

                await until(core_gone, timeout=2 * TTL)
                # The pool notices within TTL/3, then keeps events for max_core_downtime.
                await asyncio.sleep(TTL / 3 + 1 + 2)
                for i in range(2):
                    assert (await bob.conversation([ALICE]).send_text(f"while away {i}")).ok
                async with daemon(synapse, config, tmp_path):
                    notice = await wait_for_event(
                        synapse, owner, management, is_notice_from(bot, "could not be kept"), 30
                    )
                    count = re.search(r"(\d+) events", notice["content"]["body"])
                    assert count and int(count.group(1)) >= 2, notice["content"]["body"]
                    await asyncio.sleep(TTL)  # told once
                    events = await room_events(synapse, owner, management)
                    assert (
                        len([e for e in events if is_notice_from(bot, "could not be kept")(e)]) == 1
                    )
    finally:
        await bob.stop()
        await r.aclose()


async def test_sessions_nobody_takes_over_stay_up_where_they_were(
    shared: tuple[Path, Callable],  # type: ignore[type-arg]
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A pool with room that never takes the sessions handed to it (it beats, but its
    rounds are stuck): the handing pool takes them back, still up, with no sign-out."""
    config, holders = shared
    await store_logins(config, USERS)
    keys = Keys(key_prefix(load_config(str(config))["appservice.id"]))
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    port = free_port()

    async def stuck_pool() -> None:
        while True:
            await r.zadd(keys.pools, {"stuck.000000": time.time()})
            await asyncio.sleep(0.5)

    try:
        async with pool_process(pool_yaml(config, "pool-a", port), tmp_path, "a"):
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), timeout=60)
            logins_before = dict(msn.stats.account_logins)
            beating = asyncio.create_task(stuck_pool())
            try:
                handed = 'msnbridge_pool_lease_moves_total{move="handed_over",pool="pool-a"}'

                async def handed_and_back() -> bool:
                    metrics = await scrape(port)
                    return metrics[handed] >= 2 and set((await holders()).values()) == {"pool-a"}

                await until(handed_and_back, timeout=6 * TTL + 10)
            finally:
                beating.cancel()
            taken = 'msnbridge_pool_lease_moves_total{move="taken",pool="pool-a"}'
            assert (await scrape(port))[taken] >= len(USERS) + 2
            assert all(msn.online_sessions(p) == 1 for p in USERS)
            assert sum(msn.stats.sign_outs.values()) == 0, msn.stats.as_dict()
            assert dict(msn.stats.account_logins) == logins_before
    finally:
        await r.aclose()
