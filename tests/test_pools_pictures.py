"""Contacts' display pictures of a session held in a pool reach the core: a real
puppets.Client on the MSNP test server, set up by `Sessions.fetch_pictures` as the pool
process sets up every client it starts, ↔ SessionExecutor ↔ the in-memory link ↔
RemoteClient ↔ the core's Router, whose sides turn a picture into a ghost's avatar.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from msnbridge.config import load_config
from msnbridge.core.router import Router
from msnbridge.core.sessions import Sessions
from msnbridge.db import ghost as ghost_db
from msnbridge.db import media as media_db
from msnbridge.db import open_database
from msnbridge.db import user as user_db
from msnbridge.pools import codec
from msnbridge.pools.executor import SessionExecutor
from msnbridge.pools.memory_link import MemoryDoneStore, MemoryLink
from msnbridge.pools.pool import Pool
from msnbridge.pools.redis_link import Keys, RedisCoreLink, key_prefix
from msnbridge.pools.remote_client import RemoteClient
from msnbridge.secrets import SecretBox
from puppets import Client
from puppets.event.transfer import DisplayPictureReceived
from tests.core_fixtures import ALICE, BOB, CAROL, OWNER, RecordingSide, until, write_offline_config
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import make_config, online_client
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.test_pools_proxy import PoolSessions

pytestmark = pytest.mark.timeout(60)


class PictureSide(RecordingSide):
    """A side showing pictures (as the Matrix side does with ghost avatars)."""

    async def contact_picture(self, owner: str, passport: str, sha1d: str, data: bytes) -> None:
        self.calls.append(("picture", (owner, passport, sha1d, data)))


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        for passport in (ALICE, BOB, CAROL):
            server.add_account(passport, "pw")
        for friend in (BOB, CAROL):
            server.add_contact(ALICE, friend, ("FL", "AL"))
            server.add_contact(friend, ALICE, ("FL", "AL"))
        yield server


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    """The pool process's Sessions (its client configs, its one PictureCache)."""
    path = tmp_path / "bridge.yaml"
    write_offline_config(path)
    config = load_config(str(path))
    db = await open_database(config["database"])
    held = Sessions(config, db, SecretBox(config["bridge.secret_key"]))
    try:
        yield held
    finally:
        await held.stop()
        await db.stop()


async def _hold_in_pool(
    msn: MSNPTestServer, sessions: Sessions, remote: RemoteClient, link: MemoryLink
) -> tuple[Client, SessionExecutor]:
    """ALICE's session held in the pool for OWNER; ``remote`` is the core's end of it."""
    executor = SessionExecutor(link.pool, MemoryDoneStore(), pool="pool-a")
    client = Client(make_config(msn, ALICE, "pw"))
    sessions.fetch_pictures(OWNER, client)  # what pool.py does with every client it starts

    async def on_event(envelope: Any) -> None:
        remote.apply(envelope)

    link.core.on_event(on_event)
    executor.attach(OWNER, client)
    await client.start()
    await client.wait_online(timeout=15)
    return client, executor


async def test_a_contacts_display_picture_reaches_the_cores_sides(
    msn: MSNPTestServer, sessions: Sessions, tmp_path: Path
) -> None:
    picture = os.urandom(20_000)
    bob, _ = await online_client(msn, BOB, "pw")
    obj = await bob.set_display_picture(picture)
    assert obj is not None
    link = MemoryLink()
    remote = RemoteClient(OWNER, ALICE, link.core, command_timeout=10)
    events: list[object] = []
    remote.add_listener(events.append)
    core_db = await open_database(f"sqlite:{tmp_path / 'core.db'}")
    router = Router(PoolSessions(sessions.config, {OWNER: remote}), core_db)  # type: ignore[arg-type]
    side = PictureSide("matrix")
    router.add_side(side)
    client, executor = await _hold_in_pool(msn, sessions, remote, link)
    try:
        await until(lambda: side.of("picture"), timeout=20)
        [(owner, passport, sha1d, data)] = side.of("picture")
        assert (owner, passport, sha1d) == (OWNER, BOB, obj.sha1d)
        assert data == picture and obj.matches(data)
        [received] = [e for e in events if isinstance(e, DisplayPictureReceived)]
        assert received.msnobject == obj and received.data == picture
        assert sessions.pictures.fetches == 1  # the pool's one cache has it now
        assert sessions.pictures.get(obj) == picture
    finally:
        await router.events.drain()
        await router.stop()
        await core_db.stop()
        await client.stop()
        await executor.close()
        await link.close()
        await remote.close()
        await bob.stop()


async def test_a_picture_over_the_bound_is_not_carried_and_says_so(
    msn: MSNPTestServer,
    sessions: Sessions,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(codec, "MAX_OBJECT_BYTES", 10_000)
    caplog.set_level(logging.WARNING, logger="msnbridge.pools.executor")
    bob, _ = await online_client(msn, BOB, "pw")
    carol, _ = await online_client(msn, CAROL, "pw")
    big = await bob.set_display_picture(os.urandom(10_001))
    small = await carol.set_display_picture(os.urandom(9_000))
    assert big is not None and small is not None
    link = MemoryLink()
    remote = RemoteClient(OWNER, ALICE, link.core, command_timeout=10)
    events: list[object] = []
    remote.add_listener(events.append)
    client, executor = await _hold_in_pool(msn, sessions, remote, link)
    try:
        # Both are fetched in the pool; only the one within the bound travels.
        await until(lambda: "not carried" in caplog.text, timeout=20)
        await until(lambda: any(isinstance(e, DisplayPictureReceived) for e in events))
        await executor.flush(5)
        await link.drain()
        pictures = [e for e in events if isinstance(e, DisplayPictureReceived)]
        assert [(p.passport, p.msnobject.sha1d) for p in pictures] == [(CAROL, small.sha1d)]
        assert f"DisplayPictureReceived from {BOB} is 10001 bytes" in caplog.text
        assert sessions.pictures.fetches == 2
    finally:
        await client.stop()
        await executor.close()
        await link.close()
        await remote.close()
        await bob.stop()
        await carol.stop()


# --- the pool process (real Redis) ---


async def test_the_pool_process_fetches_pictures_its_ghosts_do_not_show_yet(
    msn: MSNPTestServer,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`Pool` as `msnbridge pool` runs it: it starts the stored login, fetches BOB's
    picture and the core's RemoteClient receives it; CAROL's ghost shows hers already
    (as after a restart), so it is not fetched again."""
    path = tmp_path / "pool.yaml"
    write_offline_config(path, msn, pools={"redis_url": redis_url, "lease_ttl": 3})
    config = load_config(str(path))
    bob, _ = await online_client(msn, BOB, "pw")
    carol, _ = await online_client(msn, CAROL, "pw")
    bob_picture, carol_picture = os.urandom(15_000), os.urandom(15_000)
    bob_obj = await bob.set_display_picture(bob_picture)
    carol_obj = await carol.set_display_picture(carol_picture)
    assert bob_obj is not None and carol_obj is not None
    db = await open_database(config["database"])
    try:
        box = SecretBox(config["bridge.secret_key"])
        secret = box.encrypt("pw", context=OWNER)
        await user_db.save(db, user_db.User(OWNER, "matrix", ALICE, secret, state="logged_in"))
        mxc = "mxc://example.com/carol"
        await media_db.save(db, carol_obj.sha1d, mxc, "image/png", len(carol_picture))
        await ghost_db.save(db, ghost_db.Ghost(CAROL, "@msn_carol:example.com", "Carol", mxc,
                                               name_set=True, avatar_set=True))  # fmt: skip
    finally:
        await db.stop()

    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    core = RedisCoreLink(r, Keys(key_prefix(config["appservice.id"])), lease_ttl=3)
    remote = RemoteClient(OWNER, ALICE, core, command_timeout=10)
    events: list[object] = []
    remote.add_listener(events.append)

    async def on_event(envelope: Any) -> None:
        if envelope.owner == OWNER:
            remote.apply(envelope)

    core.on_event(on_event)
    await core.start()
    pool = Pool(config, login_timeout=15)
    try:
        await pool.start()
        await until(lambda: any(isinstance(e, DisplayPictureReceived) for e in events), 20)
        await until(lambda: msn.online_sessions(CAROL) > 0)  # (long seen online by ALICE)
        [received] = [e for e in events if isinstance(e, DisplayPictureReceived)]
        assert received.passport == BOB and received.msnobject.sha1d == bob_obj.sha1d
        assert received.data == bob_picture
        assert pool._factory is not None and pool._factory.pictures.fetches == 1
        assert pool._factory.pictures.get(carol_obj) is None  # not fetched: shown already
    finally:
        await pool.stop(hand_over=False)
        await core.stop()
        await r.aclose()
        await remote.close()
        await bob.stop()
        await carol.stop()
