"""Ghost users: one Matrix user per MSN contact, named after their MSN nick, with their
presence mirrored where someone can see it.

Synapse puts a user who does not /sync offline ``presence.sync_online_timeout`` (30 s by
default) after the last presence it was given, so the presence of an online ghost is sent
again before that (``bridge.presence_refresh_interval``). Refreshes are spread over the
interval, and only ghosts in a portal room are shown at all: Synapse lets nobody who
shares no room with a user see that user's presence, so for the others it would be work
for nothing."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
from collections.abc import AsyncIterator, Callable

from mautrix.appservice import AppService, IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import ContentURI, PresenceState, UserID
from mautrix.util.async_db import Database

from puppets.contacts import Contact

from ..core.text_safety import one_line
from ..db import ghost as ghost_db
from .ghost_intent import ghost_intent
from .ids import GhostIds

log = logging.getLogger("msnbridge.matrix.ghosts")
_REFRESH_IN_FLIGHT = 8  # refresh PUTs at once (one slow answer must not let others lapse)

# MSN status → Matrix presence and the words shown as status message.
_PRESENCE: dict[str, tuple[PresenceState, str]] = {
    "NLN": (PresenceState.ONLINE, ""),
    "AWY": (PresenceState.UNAVAILABLE, ""),
    "BRB": (PresenceState.UNAVAILABLE, ""),
    "LUN": (PresenceState.UNAVAILABLE, ""),
    "IDL": (PresenceState.UNAVAILABLE, ""),
    "BSY": (PresenceState.UNAVAILABLE, "Busy"),
    "PHN": (PresenceState.UNAVAILABLE, "On the phone"),
}

Shown = tuple[PresenceState, "str | None"]


def matrix_presence(status: str, psm: str = "") -> tuple[PresenceState, str | None]:
    """(presence, status message) for an MSN status and personal message."""
    state, words = _PRESENCE.get(status, (PresenceState.OFFLINE, ""))
    text = " — ".join(part for part in (words, psm.strip()) if part)
    return state, (text or None)


class Ghosts:
    def __init__(
        self,
        az: AppService,
        db: Database,
        ids: GhostIds,
        displayname_template: str,
        refresh_interval: float,
        make_intent: Callable[[UserID], IntentAPI] | None = None,
    ) -> None:
        self.az = az
        # One light intent per ghost (ghost_intent.py); unit tests give their own.
        self._make_intent = make_intent or self._ghost_intent
        self.db = db
        self.ids = ids
        self.template = displayname_template
        self.refresh_interval = refresh_interval
        self._presence: dict[str, Shown] = {}  # online ghosts
        # Last presence sent per ghost: every owner with that contact reports the same
        # change, and a login's contact list repeats what is shown already.
        self._sent: dict[str, Shown] = {}
        # Ghosts in a portal room (None until loaded at start): only these are shown.
        self._visible: set[str] | None = None
        # When each shown online ghost is to be refreshed (loop time), and a heap of the
        # same (entries whose time no longer matches _due are stale and skipped).
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        # A lock per ghost being changed, and how many hold or wait for it: dropped when
        # none do (a lock kept per ghost forever was ~0.7 KiB once it had been waited on).
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # Ghost rows and intents, kept once made: every contact event of every owner asks
        # for them, and nothing but this class writes ghosts.
        self._stored: dict[str, ghost_db.Ghost] = {}
        self._intents: dict[str, IntentAPI] = {}
        self._refresher: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def _locked(self, passport: str) -> AsyncIterator[None]:
        entry = self._locks.get(passport)
        if entry is None:
            entry = self._locks[passport] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[passport]

    def _ghost_intent(self, mxid: UserID) -> IntentAPI:
        return ghost_intent(self.az.intent, mxid)  # az.intent exists once az has started

    def intent(self, passport: str) -> IntentAPI:
        intent = self._intents.get(passport)
        if intent is None:
            intent = self._intents[passport] = self._make_intent(self.ids.mxid(passport))
        return intent

    def displayname(self, passport: str, nick: str) -> str:
        # A nick is one line of text: CR/LF, NUL and escape codes from MSN go.
        nick = one_line(nick)
        return self.template.replace("{nick}", nick or passport).replace("{passport}", passport)

    async def ensure(self, passport: str, nick: str = "") -> IntentAPI:
        """The ghost, registered, with the displayname of ``nick`` (kept if nick is empty)."""
        passport = passport.lower()
        intent = self.intent(passport)
        async with self._locked(passport):
            stored = self._stored.get(passport) or await ghost_db.get(self.db, passport)
            if stored is None:
                stored = ghost_db.Ghost(passport, intent.mxid)
            wanted = self.displayname(passport, nick) if nick or not stored.name_set else None
            if wanted is not None and (wanted != stored.displayname or not stored.name_set):
                await intent.ensure_registered()
                await intent.set_displayname(wanted)
                stored.displayname, stored.name_set = wanted, True
                await ghost_db.save(self.db, stored)
            elif stored.name_set:
                await intent.ensure_registered()
            self._stored[passport] = stored
        return intent

    async def set_avatar(self, passport: str, mxc: str) -> None:
        """Show ``mxc`` as the ghost's avatar (nothing is sent when it is shown already)."""
        passport = passport.lower()
        intent = await self.ensure(passport)
        async with self._locked(passport):
            stored = self._stored.get(passport) or await ghost_db.get(self.db, passport)
            if stored is None:
                stored = ghost_db.Ghost(passport, intent.mxid)
            if stored.avatar_set and stored.avatar_url == mxc:
                return
            await intent.set_avatar_url(ContentURI(mxc))
            stored.avatar_url, stored.avatar_set = mxc, True
            await ghost_db.save(self.db, stored)
            self._stored[passport] = stored

    async def needs_avatar(self, passport: str, sha1d: str) -> bool:
        """False when the ghost shows the picture with this SHA1D already."""
        passport = passport.lower()
        stored = self._stored.get(passport) or await ghost_db.get(self.db, passport)
        return not await ghost_db.shows_picture(self.db, stored, sha1d)

    async def update(self, contact: Contact) -> None:
        """Name and presence of a contact, as the owner's session sees them now."""
        await self.ensure(contact.passport, contact.nick)
        await self.set_presence(contact.passport, contact.status, contact.psm)

    def is_visible(self, passport: str) -> bool:
        return self._visible is None or passport in self._visible

    async def set_presence(self, passport: str, status: str, psm: str = "") -> None:
        state, message = matrix_presence(status, psm)
        passport = passport.lower()
        if state is PresenceState.OFFLINE:
            self._presence.pop(passport, None)
        else:
            self._presence[passport] = (state, message)
        if self.is_visible(passport):
            await self._show(passport)

    async def in_room(self, passport: str) -> None:
        """The ghost is in a portal room now: its presence can be seen, so show it."""
        passport = passport.lower()
        if self._visible is not None and passport not in self._visible:
            self._visible.add(passport)
            try:
                await self._show(passport)
            except MatrixError as e:  # presence is not worth failing the room's message
                log.warning("Showing the presence of %s failed: %s", passport, e)

    async def _show(self, passport: str) -> None:
        shown = self._presence.get(passport, (PresenceState.OFFLINE, None))
        if self._sent.get(passport, (PresenceState.OFFLINE, None)) == shown:
            return  # shown already; the refresher keeps an online ghost's presence alive
        await self.intent(passport).set_presence(shown[0], shown[1], ignore_cache=True)
        self._sent[passport] = shown
        if shown[0] is PresenceState.OFFLINE:
            self._due.pop(passport, None)
        else:
            # A first refresh somewhere in the second half of the interval: ghosts shown
            # together (an owner's contact list) are not refreshed together.
            now = asyncio.get_running_loop().time()
            self._schedule(passport, now + self.refresh_interval * random.uniform(0.5, 1.0))

    def _schedule(self, passport: str, when: float) -> None:
        self._due[passport] = when
        heapq.heappush(self._heap, (when, passport))

    async def load_visible(self) -> None:
        """Ghosts in portal rooms, from the database (at start)."""
        rows = await self.db.fetch("SELECT key FROM portals WHERE room_id IS NOT NULL")
        visible: set[str] = set()
        for row in rows:
            visible.update(p for p in row["key"].split(",") if p)
        self._visible = visible

    def start(self) -> None:
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh(), name="ghost-presence-refresh"
        )

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(1.0, self.refresh_interval / 10)
        while True:
            await asyncio.sleep(tick)
            batch = self.due_refreshes(loop.time(), tick)
            for start in range(0, len(batch), _REFRESH_IN_FLIGHT):
                await asyncio.gather(
                    *(self._refresh_one(p) for p in batch[start : start + _REFRESH_IN_FLIGHT])
                )

    def due_refreshes(self, now: float, tick: float) -> list[str]:
        """The ghosts to refresh in this tick, rescheduled: every one that is due, and
        (to even out bursts) up to this tick's share of the rest that are past the middle
        of their interval."""
        interval = self.refresh_interval
        share = math.ceil(len(self._due) * tick / interval)
        batch: list[str] = []
        if len(self._heap) > 4 * len(self._due) + 64:  # drop stale entries now and then
            self._heap = [(t, p) for p, t in self._due.items()]
            heapq.heapify(self._heap)
        heap = self._heap
        while heap:
            when, passport = heap[0]
            if self._due.get(passport) != when:
                heapq.heappop(heap)  # stale
                continue
            if when > now and (share <= 0 or when > now + interval / 2):
                break
            heapq.heappop(heap)
            if when > now:
                share -= 1
            batch.append(passport)
            self._schedule(passport, now + interval)
        return batch

    async def _refresh_one(self, passport: str) -> None:
        shown = self._sent.get(passport)
        if shown is None or shown[0] is PresenceState.OFFLINE:
            return
        try:
            await self.intent(passport).set_presence(shown[0], shown[1], ignore_cache=True)
        except MatrixError as e:
            log.debug("Refreshing the presence of a ghost failed: %s", e)
