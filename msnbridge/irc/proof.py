"""Proof that the nick speaking to the bot is the IRC user who made an MSN login.

A services account (``irc:account:…``) is vouched for by the server and needs no proof. A
bare nick (``irc:nick:…``, a network without services) proves nothing: anyone can take it
once its holder disconnects. So a bare-nick identity that owns a stored MSN login has
``user`` rights over it only on an IRC connection that has proven itself, by sending the
bot that login's MSN password (checked against the stored, encrypted one; never logged).

A proof belongs to one IRC connection, told apart by WHOIS (``user@host`` and signon
time). It ends when the bot sees the nick quit or change, or when a WHOIS shows another
connection behind the nick. The bot invites a bare-nick owner to a channel, or tells it
anything about the login, only while the proof holds. ``irc.trust_bare_nicks: true``
turns all of this off (insecure: whoever takes the nick takes the login).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from mautrix.util.async_db import Database

from ..db import user as user_db
from ..secrets import SecretBox, SecretKeyError
from .identity import Identity, IdentityResolver, identity_for

log = logging.getLogger(__name__)

MAX_FAILURES = 5  # wrong passwords in a row before a pause
LOCKOUT = 600.0  # seconds a nick may not try again after MAX_FAILURES


class NickProofs:
    def __init__(
        self,
        resolver: IdentityResolver,
        db: Database,
        secrets: SecretBox,
        *,
        trust_bare_nicks: bool = False,
        shares: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.resolver = resolver
        self.db = db
        self.secrets = secrets
        self.trust_bare_nicks = trust_bare_nicks
        self.shares = shares  # whether the bot shares a channel with the nick (sees its QUIT)
        self._proven: dict[str, str] = {}  # identity id → the proven connection (WHOIS)
        self._confirmed: set[str] = set()  # lower nicks checked since last seen to go
        self._failures: dict[str, tuple[int, float]] = {}  # identity id → (count, last)

    def _needs_proof(self, identity: Identity) -> bool:
        return not identity.vouched and not self.trust_bare_nicks

    async def _has_login(self, owner: str) -> bool:
        stored = await user_db.get(self.db, owner)
        return stored is not None and stored.password is not None

    async def holds(self, identity: Identity) -> bool:
        """Whether this nick, now, may act as the owner of ``identity``'s MSN login."""
        if not self._needs_proof(identity) or not await self._has_login(identity.id):
            return True  # vouched for, trusted by configuration, or nothing to take over
        return await self._current(identity)

    async def reaches(self, owner: str, nick: str) -> bool:
        """Whether ``nick`` is ``owner`` now: asked before the bot invites the owner's nick
        anywhere or tells it something about the login."""
        if owner.startswith("irc:account:"):
            cached, account = self.resolver.cached(nick)
            if not cached:
                answer = await self.resolver.whois(nick)
                account = answer.account if answer is not None else None
            return identity_for(nick, account).id == owner
        identity = identity_for(nick, None)
        return identity.id == owner.lower() and await self.holds(identity)

    async def _current(self, identity: Identity) -> bool:
        stamp = self._proven.get(identity.id)
        if stamp is None:
            return False
        key = identity.nick.lower()
        if key in self._confirmed:
            return True
        answer = await self.resolver.whois(identity.nick)
        if answer is None:
            return False  # no answer: not now (the proof stays)
        if answer.connection != stamp:
            self._proven.pop(identity.id, None)  # someone else holds the nick now
            log.info("The IRC connection that proved %s is gone", identity.id)
            return False
        if self.shares(identity.nick):
            self._confirmed.add(key)
        return True

    def proven(self, owner: str) -> bool:
        """Without asking the server: whether the owner's nick may read what is theirs
        (a vouched or trusted identity, or a proof the bot has not seen end)."""
        if not owner.startswith("irc:nick:") or self.trust_bare_nicks:
            return True
        return owner in self._proven

    def locked(self, identity: Identity) -> bool:
        count, last = self._failures.get(identity.id, (0, 0.0))
        if count >= MAX_FAILURES and time.monotonic() - last < LOCKOUT:
            return True
        if count >= MAX_FAILURES:
            self._failures.pop(identity.id, None)
        return False

    async def prove(self, identity: Identity, password: str) -> bool:
        """Checks the MSN password against the stored login; on success this connection
        of the nick is proven. The password is compared, never kept or logged."""
        if self.locked(identity):
            return False
        stored = await user_db.get(self.db, identity.id)
        if stored is None or stored.password is None:
            return False
        try:
            real = self.secrets.decrypt(stored.password, context=identity.id)
        except SecretKeyError:
            return False
        if not hmac.compare_digest(real.encode(), password.encode()):
            count, _ = self._failures.get(identity.id, (0, 0.0))
            self._failures[identity.id] = (count + 1, time.monotonic())
            log.warning("Wrong MSN password from IRC nick %s proving its login", identity.nick)
            return False
        self._failures.pop(identity.id, None)
        return await self.mark(identity)

    async def mark(self, identity: Identity) -> bool:
        """This connection of the nick showed the password (a proof, or a login)."""
        if not self._needs_proof(identity):
            return True
        answer = await self.resolver.whois(identity.nick)
        if answer is None or answer.connection is None:
            return False
        self._proven[identity.id] = answer.connection
        if self.shares(identity.nick):
            self._confirmed.add(identity.nick.lower())
        return True

    def gone(self, nick: str) -> None:
        """The bot saw ``nick`` quit or change nick: its proof ends."""
        self._confirmed.discard(nick.lower())
        self._proven.pop(identity_for(nick, None).id, None)

    def left(self, nick: str) -> None:
        """The nick left a channel: the bot may no longer see it go; check it again."""
        self._confirmed.discard(nick.lower())
