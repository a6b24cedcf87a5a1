"""mautrix's database state store with the per-message reads kept in memory.

Every message the bridge sends into a room made mautrix read the room's state from the
database several times (``IntentAPI.send_message_event`` checks power levels: whether they
and the create event are stored, then both again, parsed from JSON; ``ensure_joined`` and
the owner's membership check read a member row): five round trips to the database, each a
hop to aiosqlite's thread, for facts that change only when a state event arrives. The
bridge is the only writer of these tables, and every write goes through this store, so
the cache is written through and stays right; it is bounded (least recently used out).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mautrix.appservice.state_store.asyncpg import PgASStateStore
from mautrix.types import (
    EventType,
    Member,
    Membership,
    MemberStateEventContent,
    PowerLevelStateEventContent,
    RoomID,
    StateEvent,
    UserID,
)
from mautrix.util.async_db import Database

MAX_MEMBERS = 50_000  # (room, user) rows kept
MAX_ROOMS = 10_000  # rooms whose power levels and create event are kept

_MISSING = object()


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def get_fresh(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


class CachedStateStore(PgASStateStore):
    def __init__(
        self, db: Database, *, max_members: int = MAX_MEMBERS, max_rooms: int = MAX_ROOMS
    ) -> None:
        super().__init__(db)
        self._members = _Lru(max_members)  # (room, user) → Member | None
        self._levels = _Lru(max_rooms)  # room → PowerLevelStateEventContent | None
        self._creates = _Lru(max_rooms)  # room → StateEvent | None
        # Bumped by every write: a read that raced one does not store what it read.
        self._writes = 0

    # --- members ---

    async def get_member(self, room_id: RoomID, user_id: UserID) -> Member | None:
        cached = self._members.get_fresh((room_id, user_id))
        if cached is not _MISSING:
            return cached
        writes = self._writes
        member = await super().get_member(room_id, user_id)
        if writes == self._writes:
            self._members.put((room_id, user_id), member)
        return member

    async def set_member(
        self, room_id: RoomID, user_id: UserID, member: Member | MemberStateEventContent
    ) -> None:
        self._members.pop((room_id, user_id), None)  # a failed write leaves no stale row
        self._writes += 1
        await super().set_member(room_id, user_id, member)
        self._writes += 1
        self._members.put(
            (room_id, user_id),
            Member(
                membership=member.membership,
                displayname=member.displayname,
                avatar_url=member.avatar_url,
            ),
        )

    async def set_membership(
        self, room_id: RoomID, user_id: UserID, membership: Membership
    ) -> None:
        # Only the membership column changes: drop the row, the next read fetches it.
        self._members.pop((room_id, user_id), None)
        self._writes += 1
        await super().set_membership(room_id, user_id, membership)
        self._writes += 1
        self._members.pop((room_id, user_id), None)

    async def set_members(
        self,
        room_id: RoomID,
        members: dict[UserID, Member | MemberStateEventContent],
        only_membership: Membership | None = None,
    ) -> None:
        for key in [k for k in self._members if k[0] == room_id]:
            del self._members[key]  # rare (a full member list): the room's rows go
        self._writes += 1
        await super().set_members(room_id, members, only_membership)
        self._writes += 1
        for key in [k for k in self._members if k[0] == room_id]:
            del self._members[key]  # and any read while the write ran

    # --- power levels and the create event ---

    async def has_power_levels_cached(self, room_id: RoomID) -> bool:
        return await self._power_levels(room_id) is not None

    async def get_power_levels(self, room_id: RoomID) -> PowerLevelStateEventContent | None:
        levels = await self._power_levels(room_id)
        # Callers may change what they get (to send new levels): give them a copy.
        return (
            None if levels is None else PowerLevelStateEventContent.deserialize(levels.serialize())
        )

    async def _power_levels(self, room_id: RoomID) -> PowerLevelStateEventContent | None:
        cached = self._levels.get_fresh(room_id)
        if cached is not _MISSING:
            return cached
        writes = self._writes
        levels = await super().get_power_levels(room_id)
        if writes == self._writes:
            self._levels.put(room_id, levels)
        return levels

    async def set_power_levels(
        self, room_id: RoomID, content: PowerLevelStateEventContent | dict[str, Any]
    ) -> None:
        self._levels.pop(room_id, None)
        self._writes += 1
        await super().set_power_levels(room_id, content)
        self._writes += 1
        self._levels.pop(room_id, None)  # the next read parses what was stored

    async def has_create_cached(self, room_id: RoomID) -> bool:
        return await self.get_create(room_id) is not None

    async def get_create(self, room_id: RoomID) -> StateEvent | None:
        cached = self._creates.get_fresh(room_id)
        if cached is not _MISSING:
            return cached
        writes = self._writes
        create = await super().get_create(room_id)
        if writes == self._writes:
            self._creates.put(room_id, create)
        return create

    async def set_create(self, event: StateEvent) -> None:
        self._creates.pop(event.room_id, None)
        self._writes += 1
        await super().set_create(event)
        self._writes += 1
        self._creates.pop(event.room_id, None)

    async def has_power_level(
        self, room_id: RoomID, user_id: UserID, event_type: EventType
    ) -> bool | None:
        # As mautrix's, on the cached levels (read only here, so no copy).
        levels = await self._power_levels(room_id)
        if not levels:
            return None
        create = await self.get_create(room_id)
        return levels.get_user_level(user_id, create) >= levels.get_event_level(event_type)
