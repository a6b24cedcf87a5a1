"""The bridge's channels on IRC and what it knows of each: who is in, who may be.

Every channel the bot keeps (an IRC owner's contact-list channel, or a portal's
conversation channel) is a :class:`Channel` here, with its members as the bot sees them,
its allow list (kept in the database, mirrored as invite exceptions ``+I``) and the
invitations waiting for the bot to be in. What MSN says while no allowed IRC user is
present is held in :mod:`.catchup` and replayed in order when one joins.

Conversation channels are ``+nts`` and invite-only unless ``irc.public_conversations``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mautrix.util.async_db import Database

from ..core.router import Router
from ..db import irc_allowed as allowed_db
from ..db.irc_backlog import HeldLine
from ..db.portal import Portal
from . import channels as names
from . import lines
from .bot import BotConnection
from .catchup import CatchUp
from .options import IRCOptions
from .puppets import PuppetManager

if TYPE_CHECKING:
    from .proof import NickProofs

INVITE_SPACING = 5.0  # seconds between automatic invitations of an owner to one channel
HINT_SPACING = 300.0  # seconds between hints to an unproven owner's nick (see .proof)


@dataclass
class Channel:
    name: str
    owner: str
    portal: Portal | None  # None: the owner's contact-list channel
    allowed: set[str] = field(default_factory=set)  # lower nicks the owner allowed
    members: set[str] = field(default_factory=set)  # lower nicks present (bot's view)
    unchecked: set[str] = field(default_factory=set)  # joined, not yet known to be welcome
    invites: list[str] = field(default_factory=list)  # nicks to invite once the bot is in
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ConversationChannels:
    """The channels of the IRC side, by lower-case name. ``bot`` and ``puppets`` are set
    by the side when it starts (they need callbacks from here)."""

    def __init__(self, options: IRCOptions, db: Database, router: Router, catchup: CatchUp) -> None:
        self.options = options
        self.db = db
        self.router = router
        self.catchup = catchup
        # Renders a channel's catch-up (set by the side, which knows how lines are said).
        self.replay: Callable[[Channel, list[HeldLine]], None] | None = None
        self.channels: dict[str, Channel] = {}  # lower name → channel
        self.contact_list_of: dict[str, str] = {}  # owner → channel name
        self.owner_nicks: dict[str, str] = {}  # owner id → the nick they use now
        self._invited: dict[tuple[str, str], float] = {}  # (nick, channel) → when
        self._hinted: dict[str, float] = {}  # lower nick → when told to prove itself
        # owner → lower channel names whose INVITE waits for the owner's nick to be proven
        self._withheld: dict[str, set[str]] = {}
        self.bot: BotConnection | None = None
        self.puppets: PuppetManager | None = None
        self.proofs: NickProofs | None = None  # set by the side (needs the bot)
        self.spawn: Callable[[Coroutine[Any, Any, Any]], None] | None = None

    # --- owners ---

    def owner_nick(self, owner: str) -> str | None:
        if owner in self.owner_nicks:
            return self.owner_nicks[owner]
        if owner.startswith("irc:nick:"):
            return owner.removeprefix("irc:nick:")
        return None

    def shares(self, nick: str) -> bool:
        """Whether the bot sees ``nick`` in one of its channels (and so sees it quit)."""
        key = nick.lower()
        return any(key in channel.members for channel in self.channels.values())

    async def reaches(self, owner: str, nick: str) -> bool:
        """Whether ``nick`` is ``owner`` now (see .proof): before inviting or telling."""
        return self.proofs is None or await self.proofs.reaches(owner, nick)

    def is_ours(self, nick: str) -> bool:
        assert self.puppets is not None
        return nick.lower() in self.puppets.our_nicks()

    # --- channels ---

    def get(self, name: str | None) -> Channel | None:
        return self.channels.get((name or "").lower())

    def register(self, name: str, owner: str, portal: Portal | None) -> Channel:
        channel = self.channels.get(name.lower())
        if channel is None:
            channel = Channel(name, owner, portal)
            self.channels[name.lower()] = channel
        elif portal is not None:
            channel.portal = portal
        assert self.bot is not None
        self.bot.join(name)
        return channel

    def open_contact_list(self, owner: str, passport: str) -> str:
        name = self.contact_list_of.get(owner)
        if name is None:
            assert self.bot is not None
            name = names.contact_list_name(
                self.options.contact_list_channel, passport, self.bot.channellen, "#&"
            )
            taken = {c for c in self.channels if self.channels[c].owner != owner}
            n = 2
            base = name
            while name.lower() in taken:
                name = names.numbered(base, n, self.bot.channellen)
                n += 1
            self.contact_list_of[owner] = name
            self.register(name, owner, None)
        return name

    def contact_list_channel(self, owner: str) -> str | None:
        if not owner.startswith("irc:"):
            return None
        name = self.contact_list_of.get(owner)
        if name is None:
            client = self.router.sessions.get(owner)
            if client is None:
                return None
            name = self.open_contact_list(owner, client.config.passport)
        return name

    def channel_of(self, portal: Portal) -> Channel | None:
        if portal.irc_channel is None:
            return None
        return self.channels.get(portal.irc_channel.lower())

    def topic(self, channel: Channel) -> str:
        if channel.portal is None:
            client = self.router.sessions.get(channel.owner)
            who = client.config.passport if client is not None else channel.owner
            return f"MSN contacts of {who}"
        people = ", ".join(channel.portal.participants)
        kind = "Conversation" if channel.portal.is_direct else "Group conversation"
        return f"{kind} with {people} (MSN)"

    def is_public(self, channel: Channel) -> bool:
        return self.options.public_conversations and channel.portal is not None

    def bot_joined(self, channel: Channel, mask: str) -> None:
        assert self.bot is not None
        public = self.is_public(channel)
        self.bot.mode(channel.name, "+nt" if public else "+ntsi")
        if not public and "!" in mask:
            # An invite exception for the bot itself, so it can come back into its own
            # invite-only channel after a reconnection (servers without +I ignore it).
            self.bot.mode(channel.name, "+I", mask)
        for nick in sorted(channel.allowed):
            self.invite_exception(channel, "+I", nick)
        self.bot.topic(channel.name, self.topic(channel))
        invites, channel.invites = channel.invites, []
        for nick in invites:
            self.bot.invite(nick, channel.name)
        self.invite_owner(channel)

    # --- held backlog ---

    def present(self, channel: Channel) -> bool:
        """Whether an IRC user allowed to read this channel is in it."""
        if self.options.public_conversations and channel.portal is not None:
            return any(not self.is_ours(n) for n in channel.members)
        owner = self.owner_nick(channel.owner)
        if owner and self.proofs is not None and not self.proofs.proven(channel.owner):
            owner = None  # the owner's nick, on a connection that has not proven itself
        allowed = channel.allowed | ({owner.lower()} if owner else set())
        return bool(allowed & (channel.members - channel.unchecked))

    def joined(self, channel: Channel, nick: str) -> None:
        """Someone joined: they read along only once known to be welcome (an invitation
        the owner's earlier connection left unused is no way in for a newcomer)."""
        key = nick.lower()
        if self.is_ours(nick) or self.is_public(channel) or key in channel.allowed:
            self.flush_backlog(channel)
            return
        channel.unchecked.add(key)
        if self.spawn is not None:
            self.spawn(self._check_joiner(channel, nick))

    async def _check_joiner(self, channel: Channel, nick: str) -> None:
        welcome = channel.owner.startswith("irc:") and await self.reaches(channel.owner, nick)
        if nick.lower() not in channel.members:
            channel.unchecked.discard(nick.lower())
            return
        if welcome:
            channel.unchecked.discard(nick.lower())
            self.flush_backlog(channel)
        elif self.bot is not None:
            self.bot.kick(
                channel.name,
                nick,
                "Not yours: send me 'channels' in a private message to be invited to yours",
            )

    def show(
        self, channel: Channel, kind: str, sender: str, text: str, live: Callable[[], None]
    ) -> bool:
        """Says it now (``live``) when a reader is in, else holds it for the catch-up;
        returns whether it was said."""
        if self.present(channel) and not self.catchup.count(channel.name):
            live()
            return True
        self.catchup.hold(channel.name, kind, sender, text)
        if self.present(channel):
            self.flush_backlog(channel)  # older lines first
            return True
        self.invite_owner(channel)
        return False

    def announce(self, channel_name: str, text: str) -> None:
        channel = self.channels.get(channel_name.lower())
        bot = self.bot
        if channel is not None and bot is not None:
            self.show(channel, "announce", "", text, lambda: bot.notice(channel.name, text))

    def flush_backlog(self, channel: Channel) -> None:
        if self.replay is not None and self.catchup.count(channel.name) and self.present(channel):
            self.replay(channel, self.catchup.take(channel.name))

    # --- invitations ---

    def invite_owner(self, channel: Channel) -> None:
        nick = self.owner_nick(channel.owner)
        if not nick or nick.lower() in channel.members:
            return
        now = time.monotonic()
        key = (nick.lower(), channel.name.lower())
        if now - self._invited.get(key, -INVITE_SPACING) >= INVITE_SPACING:
            self._invited[key] = now
            if self.spawn is None:
                self.request_invite(nick, channel.name)
            else:
                self.spawn(self._invite_if_owner(channel, nick))

    def left(self, channel: Channel, nick: str) -> None:
        """``nick`` left the channel: the next reason to invite them does so at once."""
        self._invited.pop((nick.lower(), channel.name.lower()), None)

    async def _invite_if_owner(self, channel: Channel, nick: str) -> None:
        if await self.reaches(channel.owner, nick):
            self.request_invite(nick, channel.name)
            return
        # Sent once the nick is proven (invite_withheld): right after a login from IRC the
        # proof comes after the session's first events (offline messages among them).
        self._withheld.setdefault(channel.owner, set()).add(channel.name.lower())
        self._invited.pop((nick.lower(), channel.name.lower()), None)
        # Not proven on this connection (e.g. after a restart of the bridge): say only
        # that there is something, and how to get it.
        now = time.monotonic()
        if (
            self.bot is not None
            and now - self._hinted.get(nick.lower(), -HINT_SPACING) >= HINT_SPACING
        ):
            self._hinted[nick.lower()] = now
            self.bot.notice(
                nick,
                "There is news on the MSN login of this nick. Send me 'channels' to be "
                "invited (I will ask for its MSN password first).",
            )

    def invite_withheld(self, owner: str, nick: str) -> None:
        """``nick`` was just proven to be ``owner``: the INVITEs withheld until then."""
        for name in sorted(self._withheld.pop(owner, set())):
            channel = self.channels.get(name)
            if channel is not None and nick.lower() not in channel.members:
                self._invited[(nick.lower(), name)] = time.monotonic()
                self.request_invite(nick, channel.name)

    def request_invite(self, nick: str, channel_name: str) -> None:
        assert self.bot is not None
        channel = self.channels.get(channel_name.lower())
        if channel_name.lower() in self.bot.joined:
            self.bot.invite(nick, channel_name)
        elif channel is not None and nick not in channel.invites:
            channel.invites.append(nick)

    # --- allow lists ---

    async def allow(self, channel: Channel, nick: str) -> str:
        """Let ``nick`` into a conversation channel (kept in the database, with an invite
        exception so they can come back without an INVITE); returns the answer."""
        assert self.bot is not None and channel.portal is not None
        if not lines.is_nick(nick):
            return f"'{nick}' is not an IRC nick."
        portal = channel.portal
        channel.allowed.add(nick.lower())
        await allowed_db.add(self.db, portal.owner, portal.key, nick)
        self.invite_exception(channel, "+I", nick)
        self.bot.invite(nick, channel.name)
        if nick.lower() in channel.members:
            self.flush_backlog(channel)
        return f"{nick} may join {channel.name} now (invited)."

    async def disallow(self, channel: Channel, nick: str) -> str:
        assert self.bot is not None and channel.portal is not None
        if not lines.is_nick(nick):
            return f"'{nick}' is not an IRC nick."
        portal = channel.portal
        channel.allowed.discard(nick.lower())
        await allowed_db.remove(self.db, portal.owner, portal.key, nick)
        self.invite_exception(channel, "-I", nick)
        if nick.lower() in channel.members:
            self.bot.kick(channel.name, nick, "No longer allowed in this conversation")
        return f"{nick} may no longer join {channel.name}."

    def invite_exception(self, channel: Channel, change: str, nick: str) -> None:
        """An invite exception (+I) per allowed nick: the channel stays +i for everyone
        else, while an allowed user can join without asking the bot for an invitation."""
        if self.bot is not None and not self.is_public(channel):
            self.bot.mode(channel.name, change, f"{nick}!*@*")

    async def rename_allowed(self, old: str, new: str, portals: list[Portal]) -> None:
        """An allowed user changed nick: the stored allow lists follow."""
        for portal in portals:
            await allowed_db.remove(self.db, portal.owner, portal.key, old)
            await allowed_db.add(self.db, portal.owner, portal.key, new)
