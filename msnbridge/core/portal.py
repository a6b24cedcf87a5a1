"""Portals: one conversation of one bridged user, found by its people, kept in the database.

A portal is keyed by (owner, the other participants' passports): a 1:1 portal has one,
a group portal several. It outlives switchboards; the live puppet Conversation carrying
it right now is bound to it by the Router (see ``PortalStore.bind``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

from mautrix.util.async_db import Database

from puppets.conversation import Conversation

from ..db import portal as portal_db
from ..db.portal import Portal, portal_key

__all__ = ["Portal", "PortalStore", "portal_key"]


class PortalStore:
    def __init__(
        self, db: Database, *, relay_default: bool = False, relay_allowed: bool = True
    ) -> None:
        self.db = db
        # bridge.relay.enabled (the switch) and bridge.relay.on_in_new_rooms.
        self.relay_allowed = relay_allowed
        self.relay_default = relay_default and relay_allowed
        self._cache: dict[tuple[str, str], Portal] = {}
        # Room ID → cached portal: every Matrix event is looked up by its room.
        self._by_room: dict[str, Portal] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # The live conversation of each portal, and back (weak: conversations come and go).
        self._conversations: dict[tuple[str, str], Conversation] = {}
        self._portal_of: weakref.WeakKeyDictionary[Conversation, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )

    def lock(self, owner: str, key: str) -> asyncio.Lock:
        """Held while a portal's room/channel is being created, so it is created once."""
        return self._locks.setdefault((owner, key), asyncio.Lock())

    def relays(self, portal: Portal) -> bool:
        """Whether the portal relays people without a login: the room's choice, under the
        bridge's switch."""
        return self.relay_allowed and portal.relay_enabled

    async def get(self, owner: str, participants: Iterable[str]) -> Portal | None:
        key = portal_key(participants)
        cached = self._cache.get((owner, key))
        if cached is not None:
            return cached
        stored = await portal_db.get(self.db, owner, key)
        if stored is not None:
            stored = self._cache.setdefault((owner, key), stored)
        return stored

    async def get_or_create(self, owner: str, participants: Iterable[str]) -> Portal:
        people = {p.strip().lower() for p in participants if p.strip()}
        if not people:
            raise ValueError("a portal needs at least one participant")
        key = portal_key(people)
        portal = await self.get(owner, people)
        if portal is None:
            fresh = Portal(owner, key, is_direct=len(people) == 1, relay_enabled=self.relay_default)
            # Two conversations' lanes may create the same portal at once: one object wins
            # (no await between the look and the insert), so one room is made for it.
            portal = self._cache.setdefault((owner, key), fresh)
            if portal is fresh:
                await portal_db.save(self.db, portal)
        return portal

    async def by_room(self, room_id: str) -> Portal | None:
        indexed = self._by_room.get(room_id)
        if indexed is not None and indexed.room_id == room_id:
            return indexed
        for portal in self._cache.values():  # a room ID set without save(): look them over
            if portal.room_id == room_id:
                self._by_room[room_id] = portal
                return portal
        stored = await portal_db.get_by_room(self.db, room_id)
        if stored is not None:
            stored = self._cache.setdefault((stored.owner, stored.key), stored)
            self._by_room[room_id] = stored
        return stored

    async def by_channel(self, channel: str) -> Portal | None:
        for portal in self._cache.values():
            if portal.irc_channel is not None and portal.irc_channel.lower() == channel.lower():
                return portal
        stored = await portal_db.get_by_channel(self.db, channel)
        if stored is not None:
            stored = self._cache.setdefault((stored.owner, stored.key), stored)
        return stored

    async def all_of(self, owner: str) -> list[Portal]:
        return [
            self._cache.setdefault((p.owner, p.key), p)
            for p in await portal_db.get_all(self.db, owner)
        ]

    async def count(self) -> dict[str, int]:
        """How many portals have a Matrix room and an IRC channel (for metrics)."""
        rooms = await self.db.fetchval("SELECT COUNT(*) FROM portals WHERE room_id IS NOT NULL")
        channels = await self.db.fetchval(
            "SELECT COUNT(*) FROM portals WHERE irc_channel IS NOT NULL"
        )
        return {"matrix": int(rooms or 0), "irc": int(channels or 0)}

    async def save(self, portal: Portal) -> None:
        await portal_db.save(self.db, portal)
        self._cache[(portal.owner, portal.key)] = portal
        if portal.room_id:
            self._by_room[portal.room_id] = portal

    async def forget_owner(self, owner: str) -> None:
        for cache_key in [k for k in self._cache if k[0] == owner]:
            portal = self._cache.pop(cache_key)
            if portal.room_id and self._by_room.get(portal.room_id) is portal:
                del self._by_room[portal.room_id]
            self._conversations.pop(cache_key, None)

    # --- live conversations ---

    def bind(self, portal: Portal, conversation: Conversation) -> None:
        """The conversation carries this portal now (and no other: a 1:1 chat that grew
        into a group chat stops carrying the 1:1 portal)."""
        previous = self._portal_of.get(conversation)
        if previous is not None and self._conversations.get(previous) is conversation:
            del self._conversations[previous]
        self._conversations[(portal.owner, portal.key)] = conversation
        self._portal_of[conversation] = (portal.owner, portal.key)

    def bound_key(self, conversation: Conversation) -> tuple[str, str] | None:
        return self._portal_of.get(conversation)

    def conversation(self, portal: Portal) -> Conversation | None:
        conv = self._conversations.get((portal.owner, portal.key))
        return conv if conv is not None and not conv.closed else None
