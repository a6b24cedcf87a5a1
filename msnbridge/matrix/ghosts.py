"""Ghost users: one Matrix user per MSN contact, named after their MSN nick, with their
presence mirrored (and refreshed, since Synapse lets API-set presence expire)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mautrix.appservice import AppService, IntentAPI
from mautrix.errors import MatrixError
from mautrix.types import ContentURI, PresenceState
from mautrix.util.async_db import Database

from puppets.contacts import Contact

from ..core.text_safety import one_line
from ..db import ghost as ghost_db
from ..db import media as media_db
from .ids import GhostIds

log = logging.getLogger("msnbridge.matrix.ghosts")

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
    ) -> None:
        self.az = az
        self.db = db
        self.ids = ids
        self.template = displayname_template
        self.refresh_interval = refresh_interval
        self._presence: dict[str, tuple[PresenceState, str | None]] = {}  # online ghosts
        # Last presence sent per ghost: every owner with that contact reports the same
        # change, and a login's contact list repeats what is shown already.
        self._sent: dict[str, tuple[PresenceState, str | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Ghost rows and intents, kept once made: every contact event of every owner asks
        # for them, and nothing but this class writes ghosts.
        self._stored: dict[str, ghost_db.Ghost] = {}
        self._intents: dict[str, IntentAPI] = {}
        self._refresher: asyncio.Task[None] | None = None

    def intent(self, passport: str) -> IntentAPI:
        intent = self._intents.get(passport)
        if intent is None:
            intent = self._intents[passport] = self.az.intent.user(self.ids.mxid(passport))
        return intent

    def displayname(self, passport: str, nick: str) -> str:
        # A nick is one line of text: CR/LF, NUL and escape codes from MSN go.
        nick = one_line(nick)
        return self.template.replace("{nick}", nick or passport).replace("{passport}", passport)

    async def ensure(self, passport: str, nick: str = "") -> IntentAPI:
        """The ghost, registered, with the displayname of ``nick`` (kept if nick is empty)."""
        passport = passport.lower()
        intent = self.intent(passport)
        async with self._locks.setdefault(passport, asyncio.Lock()):
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
        async with self._locks.setdefault(passport, asyncio.Lock()):
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
        if stored is None or not stored.avatar_set or not stored.avatar_url:
            return True
        return stored.avatar_url != await media_db.get(self.db, sha1d)

    async def update(self, contact: Contact) -> None:
        """Name and presence of a contact, as the owner's session sees them now."""
        await self.ensure(contact.passport, contact.nick)
        await self.set_presence(contact.passport, contact.status, contact.psm)

    async def set_presence(self, passport: str, status: str, psm: str = "") -> None:
        state, message = matrix_presence(status, psm)
        passport = passport.lower()
        if state is PresenceState.OFFLINE:
            self._presence.pop(passport, None)
        else:
            self._presence[passport] = (state, message)
        if self._sent.get(passport) == (state, message):
            return  # shown already; the refresher keeps an online ghost's presence alive
        await self.intent(passport).set_presence(state, message, ignore_cache=True)
        self._sent[passport] = (state, message)

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
        while True:
            await asyncio.sleep(self.refresh_interval)
            for passport, (state, message) in list(self._presence.items()):
                try:
                    await self.intent(passport).set_presence(state, message, ignore_cache=True)
                except MatrixError as e:
                    log.debug("Refreshing the presence of a ghost failed: %s", e)
