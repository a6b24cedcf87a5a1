"""What a pool's periodic round reads (real Redis, PostgreSQL and the MSNP test server on
MSNP18; the pools run in this process, the test stands in for the core: it stores logins
and bumps the change counter as RemoteSessions does).

- A pool alone takes every stored session in its first round.
- Idle rounds read no stored login and look at no lease but the pool's own: the logins
  are read again when the core says one changed, and in the periodic full round.
- A pool that dies (no heartbeat, no renewal, no release) still has its sessions come
  back on the other pool, found through its holds set and the unheld set, not through a
  full round.

Redis commands are counted from the server's INFO commandstats: the test's server (one per
test worker, tests/redis_server.py) serves one test at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from msnbridge.config import load_config
from msnbridge.db import open_database
from msnbridge.db import user as user_db
from msnbridge.pools.pool import Pool
from msnbridge.secrets import SecretBox
from tests.msnp_server import MSNPTestServer
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.test_faults_process import database_url

pytestmark = pytest.mark.timeout(120)
TTL = 2
PASSWORD = "pw"
USERS = [f"user{i}@hotmail.com" for i in range(5)]
READ_LOGINS = "FROM users WHERE passport IS NOT NULL"  # user_db.get_all(with_login=True)


def owner_of(passport: str) -> str:
    return f"@{passport.split('@')[0]}:test"


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer(versions=(18, 18)) as server:
        for passport in USERS:
            server.add_account(passport, PASSWORD)
        yield server


@pytest.fixture
async def config(
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Path]:
    """A bridge.yaml for pools (no homeserver is contacted by a pool)."""
    async with database_url("postgres", tmp_path) as db:
        appservice = {
            "address": "http://127.0.0.1:9",
            "hostname": "127.0.0.1",
            "port": 9,
            "id": f"rounds{secrets.token_hex(3)}",
            "bot_username": "msnbot",
            "as_token": "a",
            "hs_token": "h",
            "username_template": "msn_{passport}",
            "displayname_template": "{nick} (MSN)",
        }
        msn_section = {
            "dispatch_host": msn.host,
            "dispatch_port": msn.dispatch_port,
            "nexus_url": msn.nexus_url,
            "services_url": msn.services_url,
            "verify_tls": False,
        }
        settings: dict[str, Any] = {
            "homeserver": {"address": "http://127.0.0.1:9", "domain": "test"},
            "appservice": appservice,
            "bridge": {"permissions": {"test": "user"}, "secret_key": secrets.token_urlsafe(32)},
            "database": db,
            "msn": msn_section,
            "irc": {"enabled": False},
            "metrics": {"enabled": False},
            "logging": {"version": 1, "disable_existing_loggers": False},
            "pools": {"redis_url": redis_url, "lease_ttl": TTL},
        }
        path = tmp_path / "bridge.yaml"
        path.write_text(json.dumps(settings))  # JSON is YAML
        yield path


async def store_logins(config: Path, passports: list[str], state: str = "logged_in") -> None:
    """What the core stores for a login (and, with state logged_out, a logout)."""
    settings = load_config(str(config))
    box = SecretBox(settings["bridge.secret_key"])
    db = await open_database(settings["database"])
    try:
        for passport in passports:
            owner = owner_of(passport)
            user = user_db.User(owner, "matrix", passport, box.encrypt(PASSWORD, context=owner),
                                state=state)  # fmt: skip
            if state == "logged_out":
                user.passport = user.password = None
            await user_db.save(db, user)
    finally:
        await db.stop()


class Queries:
    """The SQL a pool's database is asked (the real database answers)."""

    def __init__(self, pool: Pool) -> None:
        self.seen: list[str] = []
        db = pool.db
        assert db is not None
        for name in ("fetch", "fetchrow", "fetchval", "execute"):
            method = getattr(db, name)

            async def counted(query: str, *args: Any, _method: Any = method, **kw: Any) -> Any:
                self.seen.append(query)
                return await _method(query, *args, **kw)

            setattr(db, name, counted)

    def logins_read(self) -> int:
        return sum(READ_LOGINS in q for q in self.seen)


async def mgets(r: aioredis.Redis) -> int:
    return int((await r.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0))


async def until(condition: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_pool(config: Path) -> AsyncIterator[Pool]:
    pool = Pool(load_config(str(config)), login_timeout=30)
    await pool.start()
    try:
        yield pool
    finally:
        if not pool.leaving:
            await pool.stop(hand_over=False)


async def crash(pool: Pool) -> None:
    """As a SIGKILL leaves things: no more heartbeats or renewals, nothing released; the
    MSN connections close."""
    pool.leaving = True  # the `running_pool` exit leaves it alone
    await stop_ticking(pool)
    await pool.link.stop()
    for owner in list(pool.clients):
        client = pool.executor.detach(owner)
        if client is not None:
            await client.stop()
    await pool.executor.close()
    if pool._factory is not None:
        await pool._factory.stop()
    assert pool.db is not None
    await pool.db.stop()
    await pool.redis.aclose()


async def stop_ticking(pool: Pool) -> None:
    assert pool._tick is not None
    pool._tick.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pool._tick


async def test_a_pool_takes_its_whole_share_in_one_round(config: Path, msn: MSNPTestServer) -> None:
    """(Sessions being started were counted twice against the share: a pool alone took
    3 of 5 in its first round.)"""
    await store_logins(config, USERS)
    async with running_pool(config) as pool:
        await stop_ticking(pool)  # only the round of start()
        await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), 30)


async def test_idle_rounds_read_no_login_and_no_lease_but_their_own(
    config: Path,
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
) -> None:
    await store_logins(config, USERS)
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with running_pool(config) as pool:
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), 30)
            await stop_ticking(pool)  # the rounds are the test's to run from here
            queries = Queries(pool)
            before = await mgets(r)
            for _ in range(5):
                await pool._round()
            assert queries.seen == [], queries.seen
            assert await mgets(r) == before  # no lease looked at but by renewing its own
            lease = pool.keys.lease(owner_of(USERS[0]))
            assert await r.get(lease) == pool.name and await r.pttl(lease) > TTL * 1000 / 2

            # The core logs one user out (stored, then the counter bumped): the next
            # round reads the logins once and signs that session out.
            await store_logins(config, USERS[:1], state="logged_out")
            await r.incr(pool.keys.logins)
            await pool._round()
            assert queries.logins_read() == 1
            assert msn.online_sessions(USERS[0]) == 0 and owner_of(USERS[0]) not in pool.clients
            assert await r.get(lease) is None
            assert not await r.sismember(pool.keys.unheld, owner_of(USERS[0]))  # not for others
            await pool._round()
            assert queries.logins_read() == 1

            # The periodic full round reads everything again, changed or not.
            pool.full_round_interval = 0
            await pool._round()
            assert queries.logins_read() == 2 and await mgets(r) == before + 1
            assert all(msn.online_sessions(p) == 1 for p in USERS[1:])
    finally:
        await r.aclose()


async def test_a_dead_pools_sessions_come_back_without_a_full_round(
    config: Path,
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
) -> None:
    await store_logins(config, USERS)
    async with running_pool(config) as a:
        await until(lambda: len(a.leases.held) == len(USERS), 30)
        async with running_pool(config) as b:
            b.full_round_interval = 1e9  # from here on, only what changed
            queries = Queries(b)
            # B takes its share: A hands sessions over (MPOP: no sign-out) until 3 / 2.
            await until(lambda: len(b.leases.held) == 2 and not a._handing, 40)
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), 30)
            assert len(a.leases.held) == 3
            await crash(a)
            # The lease TTL passes; B finds A's sessions through A's holds set (its share
            # allows one more while A still counts as live) and, once A is forgotten, the
            # rest through the unheld set.
            await until(lambda: set(b.clients) == {owner_of(p) for p in USERS}, 6 * TTL + 20)
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS), 30)
            assert queries.logins_read() == 0, queries.seen


async def test_a_lease_that_expired_unseen_comes_back_without_a_full_round(
    config: Path,
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
) -> None:
    """A pool that stalled past the TTL finds a lease gone that nobody took: it leaves the
    session and the lease is where the pools look, so it is started again."""
    await store_logins(config, USERS[:2])
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with running_pool(config) as pool:
            await until(lambda: all(msn.online_sessions(p) == 1 for p in USERS[:2]), 30)
            await stop_ticking(pool)
            pool.full_round_interval = 1e9
            queries = Queries(pool)
            owner = owner_of(USERS[0])
            await r.delete(pool.keys.lease(owner))  # as if it had expired
            await pool._round()  # lost, left, and taken again
            await until(lambda: owner in pool.clients and not pool._starting, 30)
            await until(lambda: msn.online_sessions(USERS[0]) == 1, 30)
            assert await r.get(pool.keys.lease(owner)) == pool.name
            assert not await r.sismember(pool.keys.unheld, owner)
            assert queries.logins_read() == 0
    finally:
        await r.aclose()
