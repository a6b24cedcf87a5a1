"""The cached mautrix state store (issue 14, item 3): reads that were a database round trip
per message come from memory, and what it answers is what the database holds (a real
SQLite database, mautrix's own tables)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mautrix.client.state_store.asyncpg import PgStateStore
from mautrix.types import (
    EventType,
    Member,
    Membership,
    PowerLevelStateEventContent,
    RoomID,
    UserID,
)

from msnbridge.db import Database, open_database
from msnbridge.matrix.state_cache import CachedStateStore

ROOM = RoomID("!room:x")
GHOST, OWNER = UserID("@msn_bob:x"), UserID("@owner:x")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:{tmp_path / 'cache.db'}")
    await PgStateStore.upgrade_table.upgrade(database)
    yield database
    await database.stop()


class Counting:
    """Counts the reads that reach the database (the real one, underneath)."""

    def __init__(self, db: Database) -> None:
        self.reads = 0
        for name in ("fetchval", "fetchrow"):
            real = getattr(db, name)

            async def counted(*args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
                self.reads += 1
                return await _real(*args, **kwargs)

            setattr(db, name, counted)


def levels(ghost_level: int) -> PowerLevelStateEventContent:
    return PowerLevelStateEventContent(users={GHOST: ghost_level}, events_default=50)


async def test_reads_come_from_memory_and_follow_every_write(db: Database) -> None:
    store = CachedStateStore(db)
    plain = PgStateStore(db)  # the database's own answer
    await store.set_member(ROOM, GHOST, Member(membership=Membership.JOIN, displayname="Bob"))
    await store.set_power_levels(ROOM, levels(100))
    counter = Counting(db)

    for _ in range(5):  # what one message to the room asks
        assert await store.is_joined(ROOM, GHOST)
        assert await store.has_power_levels_cached(ROOM)
        assert not await store.has_create_cached(ROOM)
        assert await store.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)
    # First pass: the levels and the (absent) create event once each; then nothing.
    assert counter.reads == 2

    # Writes go through: the store and the database agree.
    await store.set_membership(ROOM, GHOST, Membership.LEAVE)
    assert not await store.is_joined(ROOM, GHOST)
    assert (await plain.get_member(ROOM, GHOST)).membership == Membership.LEAVE
    await store.set_power_levels(ROOM, levels(0))
    assert not await store.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)
    await store.set_members(ROOM, {OWNER: Member(membership=Membership.JOIN)})
    assert await store.get_member(ROOM, GHOST) is None  # the full list replaced the rows
    assert await store.is_joined(ROOM, OWNER)

    # A caller changing the levels it was given does not change the cache.
    given = await store.get_power_levels(ROOM)
    assert given is not None
    given.users[GHOST] = 100
    assert not await store.has_power_level(ROOM, GHOST, EventType.ROOM_MESSAGE)


async def test_the_cache_is_bounded(db: Database) -> None:
    store = CachedStateStore(db, max_members=10, max_rooms=3)
    for n in range(50):
        room = RoomID(f"!r{n}:x")
        await store.set_member(room, GHOST, Member(membership=Membership.JOIN))
        await store.get_power_levels(room)
        await store.get_create(room)
    assert len(store._members) == 10 and len(store._levels) == 3 and len(store._creates) == 3
    # What fell out is read again from the database, right.
    assert await store.is_joined(RoomID("!r0:x"), GHOST)
