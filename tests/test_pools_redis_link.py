"""The Redis link and the leases against a real redis-server: events in order and again
after a core that never acknowledged them, commands routed to the lease holder and sent
again when the lease moves, trimming, leases that expire and cannot be taken back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from msnbridge.pools.leases import Leases
from msnbridge.pools.link import CommandFailed, Envelope
from msnbridge.pools.redis_link import (
    EVENTS_DROPPED,
    Keys,
    RedisCoreLink,
    RedisPoolLink,
    connect,
    events_backlog,
)
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.test_matrix_portals import until

KEYS = Keys("msnbridge:test")


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:  # noqa: F811
    r = connect(redis_url)
    yield r
    await r.aclose()


def pool_link(r: aioredis.Redis, name: str, **kw: Any) -> RedisPoolLink:
    return RedisPoolLink(r, KEYS, name, lease_ttl=kw.get("ttl", 1.5),
                         max_core_downtime=kw.get("downtime", 3600))  # fmt: skip


async def test_events_arrive_in_order_and_unacknowledged_ones_come_again(
    client: aioredis.Redis,
) -> None:
    pool = pool_link(client, "p1")
    await pool.start()
    for i in range(5):
        await pool.publish(Envelope(f"e{i}", "@a:x", "MessageReceived", {"n": i}))
    seen: list[str] = []
    stuck = asyncio.Event()

    async def dies_on_e3(envelope: Envelope) -> None:
        seen.append(envelope.id)
        if envelope.id == "e3":
            await stuck.wait()  # the core is killed while handling it

    core = RedisCoreLink(client, KEYS, lease_ttl=1.5)
    core.on_event(dies_on_e3)
    await core.start()
    await until(lambda: "e3" in seen)
    await core.stop()
    assert seen == ["e0", "e1", "e2", "e3"]
    # A new core reads what was taken and not acknowledged first, then the rest.
    again: list[str] = []

    async def record(envelope: Envelope) -> None:
        again.append(envelope.id)

    core = RedisCoreLink(client, KEYS, lease_ttl=1.5)
    core.on_event(record)
    await core.start()
    await pool.publish(Envelope("e5", "@a:x", "MessageReceived", {}))
    await until(lambda: len(again) >= 3)
    await asyncio.sleep(0.2)
    assert again == ["e3", "e4", "e5"]
    await core.stop()
    await pool.stop()


async def test_a_command_goes_to_the_lease_holder_and_follows_the_lease(
    client: aioredis.Redis,
) -> None:
    done: dict[str, list[str]] = {"p1": [], "p2": []}

    def handler(name: str, stall: bool = False) -> Any:
        async def handle(envelope: Envelope) -> dict[str, Any]:
            done[name].append(envelope.id)
            if stall:
                await asyncio.Event().wait()  # dies before answering
            if envelope.kind == "fail":
                raise CommandFailed("nope, worded for the user")
            return {"by": name}

        return handle

    p1, p2 = pool_link(client, "p1"), pool_link(client, "p2")
    p1.on_command(handler("p1", stall=True))
    p2.on_command(handler("p2"))
    await p1.start()
    await p2.start()
    l1 = Leases(client, KEYS, "p1", 1.5)
    l2 = Leases(client, KEYS, "p2", 1.5)
    assert await l1.acquire("@a:x")
    assert not await l2.acquire("@a:x")
    core = RedisCoreLink(client, KEYS, lease_ttl=1.5, watch_interval=0.2)
    await core.start()
    reply = asyncio.create_task(core.command(Envelope("c1", "@a:x", "send_text", {}), timeout=20))
    await until(lambda: done["p1"])
    # p1 dies holding it: after the TTL p2 takes the lease; the core sends c1 again.
    await p1.stop()
    await until(lambda: l2.acquire("@a:x"))
    assert await reply == {"by": "p2"}
    assert done == {"p1": ["c1"], "p2": ["c1"]}
    assert core.commands_resent == 1
    with pytest.raises(CommandFailed, match="worded for the user"):
        await core.command(Envelope("c2", "@a:x", "fail", {}), timeout=5)
    await core.stop()
    await p2.stop()


async def test_a_command_for_nobody_s_session_is_taken_by_exactly_one_pool(
    client: aioredis.Redis,
) -> None:
    taken: list[str] = []
    pools = []
    for name in ("p1", "p2", "p3"):
        link = pool_link(client, name)

        async def handle(envelope: Envelope, name: str = name) -> dict[str, Any]:
            taken.append(name)
            return {}

        link.on_command(handle)
        await link.start()
        pools.append(link)
    core = RedisCoreLink(client, KEYS, lease_ttl=1.5)
    await core.start()
    for i in range(6):
        await core.command(Envelope(f"login{i}", f"@u{i}:x", "login", {}), timeout=5)
    assert len(taken) == 6
    await core.stop()
    for link in pools:
        await link.stop()


async def test_no_pool_answers_in_time(client: aioredis.Redis) -> None:
    core = RedisCoreLink(client, KEYS, lease_ttl=1.5, watch_interval=0.1)
    await core.start()
    with pytest.raises(TimeoutError):
        await core.command(Envelope("c", "@a:x", "send_text", {}), timeout=0.5)
    await core.stop()


async def test_events_past_the_core_downtime_are_dropped_counted_and_told(
    client: aioredis.Redis,
) -> None:
    pool = pool_link(client, "p1", ttl=0.3, downtime=0.5)
    await pool.start()
    await asyncio.sleep(1.2)  # no core heartbeat for longer than max_core_downtime
    assert pool.core_gone
    await pool.publish(Envelope("m1", "@a:x", "MessageReceived", {}))
    await pool.publish(Envelope("m2", "@a:x", "MessageReceived", {}))
    await pool.publish(Envelope("s1", "@a:x", "SessionSnapshot", {}))
    assert pool.dropped_total == 2
    got: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        got.append(envelope)

    core = RedisCoreLink(client, KEYS, lease_ttl=0.3)
    core.on_event(record)
    await core.start()
    await until(lambda: any(e.kind == EVENTS_DROPPED for e in got))
    assert [e.kind for e in got] == ["SessionSnapshot", EVENTS_DROPPED]
    assert got[1].owner == "@a:x" and got[1].data == {"count": 2}
    await core.stop()
    await pool.stop()


async def test_old_events_are_trimmed(client: aioredis.Redis) -> None:
    pool = pool_link(client, "p1", downtime=1)
    for i in range(300):
        await client.xadd(KEYS.events, {"id": f"old{i}", "owner": "o", "kind": "k",
                                        "data": "{}"}, id=f"{1000 + i}-0")  # fmt: skip
    await pool.publish(Envelope("new", "o", "k", {}))
    entries = await client.xrange(KEYS.events)
    assert len(entries) < 301 and entries[-1][1]["id"] == "new"


async def test_a_lease_expires_and_its_old_holder_cannot_renew_it(
    client: aioredis.Redis,
) -> None:
    l1 = Leases(client, KEYS, "p1", 0.3)
    l2 = Leases(client, KEYS, "p2", 0.3)
    assert await l1.acquire("@a:x")
    assert await l1.renew() == set()
    await asyncio.sleep(0.5)
    assert await l1.acquire("@b:x")
    assert await l2.acquire("@a:x")
    assert await l1.renew() == {"@a:x"}
    assert l1.held == {"@b:x"} and l2.held == {"@a:x"}
    assert not await l1.release("@a:x")  # not ours any more: left alone
    assert await l2.holder("@a:x") == "p2"
    assert await l2.release("@a:x")
    assert await l2.holder("@a:x") is None


async def test_pools_share_the_sessions(client: aioredis.Redis) -> None:
    l1 = Leases(client, KEYS, "p1", 1)
    l2 = Leases(client, KEYS, "p2", 1)
    await l1.heartbeat()
    assert await l1.share(5) == 5
    await l2.heartbeat()
    assert await l1.share(5) == 3
    assert sorted(await l1.live_pools()) == ["p1", "p2"]
    await l2.leave()
    assert await l1.share(5) == 5


async def test_the_events_backlog_counts_unread_and_pending(client: aioredis.Redis) -> None:
    assert await events_backlog(client, KEYS) == (0, 0)  # no stream yet
    for i in range(5):
        await client.xadd(KEYS.events, {"n": str(i)})
    assert await events_backlog(client, KEYS) == (5, 0)  # no core yet: all unread
    await client.xgroup_create(KEYS.events, "core", id="0")
    taken = await client.xreadgroup("core", "core", {KEYS.events: ">"}, count=2)
    assert await events_backlog(client, KEYS) == (3, 2)
    await client.xack(KEYS.events, "core", taken[0][1][0][0])
    assert await events_backlog(client, KEYS) == (3, 1)
    # Deleting an entry not yet read leaves Redis's lag unknown: counted instead.
    unread = await client.xrange(KEYS.events, "-", "+")
    await client.xdel(KEYS.events, unread[3][0])
    assert (await client.xinfo_groups(KEYS.events))[0]["lag"] is None
    assert await events_backlog(client, KEYS) == (2, 1)
