"""The IRC side of the bridge: the bot, contact-list channels and conversation channels.

The bot is the only connection whose traffic is read; lines from the bridge's own nicks
(bot and puppets) are ignored. It answers the core commands in private messages
(``side="irc"``; identities in :mod:`.identity`), carries each portal of an IRC owner in a
channel, and speaks for MSN people through :mod:`.puppets`.

Conversation channels are ``+nts`` and invite-only unless ``irc.public_conversations``;
the owner is invited and may ``!allow <nick>`` others (kept in the database). Portals of
Matrix owners get a channel too (``irc.matrix_portals``); their owner allows IRC users
with ``irc allow <nick>`` in the Matrix room (:mod:`.commands`). Nothing from MSN is shown
in a channel while no allowed IRC user is in it: it waits (``BACKLOG`` lines) until one
joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from mautrix.util.async_db import Database

from puppets import Contact, Lists
from puppets.event.conversation import DeliveryResult

from ..core.commands import CommandContext, CommandProcessor
from ..core.router import Router, describe_result
from ..core.sides import ContactChange, OwnerNotice, PortalMessage
from ..db import irc_allowed as allowed_db
from ..db import user as user_db
from ..db.portal import Portal
from ..formatting import MessageKind, RichText, Span, from_mirc, to_mirc
from ..permissions import PermissionLevel, Permissions
from . import channels as names
from . import lines
from .backoff import ReconnectScheduler
from .bot import BotConnection, Names
from .commands import LOCAL_COMMANDS, irc_help, register_irc_command
from .connection import IRCRefusedError
from .contactlist import ContactListChannels
from .events import ConnectionEvent, Disconnected, IRCEvent, Kind, Registered
from .identity import IdentityResolver, identity_for
from .options import IRCOptions
from .puppets import Line, Puppet, PuppetManager

log = logging.getLogger(__name__)

BACKLOG = 200  # MSN messages held per channel while no allowed IRC user is present
MAINTENANCE_INTERVAL = 3.0  # seconds between re-invites of puppets missing a channel
INVITE_SPACING = 5.0  # seconds between automatic invitations of an owner to one channel


@dataclass
class Channel:
    name: str
    owner: str
    portal: Portal | None  # None: the owner's contact-list channel
    allowed: set[str] = field(default_factory=set)  # lower nicks the owner allowed
    members: set[str] = field(default_factory=set)  # lower nicks present (bot's view)
    backlog: list[Callable[[], None]] = field(default_factory=list)
    invites: list[str] = field(default_factory=list)  # nicks to invite once the bot is in
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class IRCSide:
    name = "irc"

    def __init__(
        self,
        options: IRCOptions,
        db: Database,
        commands: CommandProcessor,
        permissions: Permissions,
        router: Router,
    ) -> None:
        self.options = options
        self.db = db
        self.commands = commands
        self.permissions = permissions
        self.router = router
        self.channels: dict[str, Channel] = {}  # lower name → channel
        self.contact_list_of: dict[str, str] = {}  # owner → channel name
        self._owner_nicks: dict[str, str] = {}  # owner id → the nick they use now
        self._merge: dict[tuple[str, str], list[tuple[str, MessageKind]]] = {}
        self._merge_timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._group_told: set[str] = set()
        self._invited: dict[tuple[str, str], float] = {}  # (nick, channel) → when
        self._tasks: set[asyncio.Task[Any]] = set()
        self.scheduler: ReconnectScheduler | None = None
        self.bot: BotConnection | None = None
        self.puppets: PuppetManager | None = None
        self.contacts: ContactListChannels | None = None
        self.identities: IdentityResolver | None = None
        self._maintenance: asyncio.Task[None] | None = None

    # --- lifecycle ---

    async def start(self, ready_timeout: float | None = 30.0) -> None:
        o = self.options
        self.scheduler = ReconnectScheduler(concurrency=o.reconnect_concurrency)
        self.bot = BotConnection(
            o.connection_settings(o.bot_nick, bot=True),
            self._on_bot_event,
            scheduler=self.scheduler,
        )
        self.identities = IdentityResolver(self.bot)
        self.puppets = PuppetManager(
            o,
            self.bot,
            self.scheduler,
            self.db,
            request_invite=self._request_invite,
            on_joined=self._puppet_joined,
            on_relayed=self._puppet_relayed,
        )
        self.contacts = ContactListChannels(
            o, self.bot, self.puppets, self._contact_list_channel, self._announce
        )
        self.router.add_side(self)
        register_irc_command(self.commands, self)
        await self._restore_channels()
        self.bot.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="irc-maintenance")
        if ready_timeout is not None:
            try:
                await self.bot.wait_ready(ready_timeout)
            except TimeoutError:
                log.warning("The IRC bot is not connected yet; it keeps trying")
            except IRCRefusedError as e:  # banned, wrong password: retrying cannot help
                log.error("The IRC server refused the bot for good (%s); IRC is off", e)

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        for handle in self._merge_timers.values():
            handle.cancel()
        if self.contacts is not None:
            self.contacts.close()
        if self.puppets is not None:
            await self.puppets.close()
        if self.bot is not None:
            await self.bot.close("Bridge shutting down")
        for task in list(self._tasks):
            task.cancel()

    async def _restore_channels(self) -> None:
        allowed = await allowed_db.get_all(self.db)
        for stored in await user_db.get_all(self.db, with_login=True):
            if stored.side == "irc":
                if stored.management_room:
                    self._owner_nicks[stored.id] = stored.management_room
                if stored.passport:
                    self._open_contact_list(stored.id, stored.passport)
            for portal in await self.router.portals.all_of(stored.id):
                if portal.irc_channel and self.serves(portal):
                    channel = self._register(portal.irc_channel, stored.id, portal)
                    channel.allowed |= allowed.get((portal.owner, portal.key), set())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("IRC side task failed", exc_info=task.exception())

    async def _maintain(self) -> None:
        """Puppets that want a channel but are not in it get invited again (after a
        reconnection of the bot, a lost INVITE, a server restart)."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            assert self.puppets is not None and self.bot is not None
            for puppet, channel in self.puppets.missing():
                self._request_invite(puppet.irc_nick, channel)
            metrics = self.router.metrics
            if metrics is not None:
                metrics.set_irc_connections("bot", int(self.bot.registered))
                up = sum(1 for p in self.puppets.puppets.values() if p.conn and p.conn.registered)
                metrics.set_irc_connections("puppet", up)

    # --- owners ---

    def owner_nick(self, owner: str) -> str | None:
        if owner in self._owner_nicks:
            return self._owner_nicks[owner]
        if owner.startswith("irc:nick:"):
            return owner.removeprefix("irc:nick:")
        return None

    def _is_ours(self, nick: str) -> bool:
        assert self.puppets is not None
        return nick.lower() in self.puppets.our_nicks()

    # --- channels ---

    def _register(self, name: str, owner: str, portal: Portal | None) -> Channel:
        channel = self.channels.get(name.lower())
        if channel is None:
            channel = Channel(name, owner, portal)
            self.channels[name.lower()] = channel
        elif portal is not None:
            channel.portal = portal
        assert self.bot is not None
        self.bot.join(name)
        return channel

    def _open_contact_list(self, owner: str, passport: str) -> str:
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
            self._register(name, owner, None)
        return name

    def _contact_list_channel(self, owner: str) -> str | None:
        if not owner.startswith("irc:"):
            return None
        name = self.contact_list_of.get(owner)
        if name is None:
            client = self.router.sessions.get(owner)
            if client is None:
                return None
            name = self._open_contact_list(owner, client.config.passport)
        return name

    def _channel_of(self, portal: Portal) -> Channel | None:
        if portal.irc_channel is None:
            return None
        return self.channels.get(portal.irc_channel.lower())

    def _present(self, channel: Channel) -> bool:
        """Whether an IRC user allowed to read this channel is in it."""
        if self.options.public_conversations and channel.portal is not None:
            return any(not self._is_ours(n) for n in channel.members)
        owner = self.owner_nick(channel.owner)
        allowed = channel.allowed | ({owner.lower()} if owner else set())
        return bool(allowed & channel.members)

    def _show(self, channel: Channel, action: Callable[[], None]) -> None:
        if self._present(channel):
            action()
        else:
            if len(channel.backlog) >= BACKLOG:
                channel.backlog.pop(0)
            channel.backlog.append(action)
            self._invite_owner(channel)

    def _announce(self, channel_name: str, text: str) -> None:
        channel = self.channels.get(channel_name.lower())
        bot = self.bot
        if channel is not None and bot is not None:
            self._show(channel, lambda: bot.notice(channel.name, text))

    def _flush_backlog(self, channel: Channel) -> None:
        if channel.backlog and self._present(channel):
            held, channel.backlog = channel.backlog, []
            for action in held:
                action()

    def _invite_owner(self, channel: Channel) -> None:
        nick = self.owner_nick(channel.owner)
        if not nick or nick.lower() in channel.members:
            return
        now = time.monotonic()
        key = (nick.lower(), channel.name.lower())
        if now - self._invited.get(key, -INVITE_SPACING) >= INVITE_SPACING:
            self._invited[key] = now
            self._request_invite(nick, channel.name)

    def _request_invite(self, nick: str, channel_name: str) -> None:
        assert self.bot is not None
        channel = self.channels.get(channel_name.lower())
        if channel_name.lower() in self.bot.joined:
            self.bot.invite(nick, channel_name)
        elif channel is not None and nick not in channel.invites:
            channel.invites.append(nick)

    def _topic(self, channel: Channel) -> str:
        if channel.portal is None:
            client = self.router.sessions.get(channel.owner)
            who = client.config.passport if client is not None else channel.owner
            return f"MSN contacts of {who}"
        people = ", ".join(channel.portal.participants)
        kind = "Conversation" if channel.portal.is_direct else "Group conversation"
        return f"{kind} with {people} (MSN)"

    # --- the Side protocol ---

    def serves(self, portal: Portal) -> bool:
        return portal.owner.startswith("irc:") or self.options.matrix_portals

    async def ensure_portal(self, portal: Portal) -> None:
        assert self.bot is not None
        if portal.irc_channel is None:
            client = self.router.sessions.get(portal.owner)
            passport = client.config.passport if client is not None else portal.owner
            base = names.conversation_name(
                self.options.direct_channel,
                self.options.group_channel,
                passport,
                portal.participants,
                self.bot.channellen,
                "#&",
            )
            name, n = base, 2
            while True:
                other = await self.router.portals.by_channel(name)
                if other is None or (other.owner, other.key) == (portal.owner, portal.key):
                    break
                name = names.numbered(base, n, self.bot.channellen)
                n += 1
            portal.irc_channel = name
        channel = self._register(portal.irc_channel, portal.owner, portal)
        self._invite_owner(channel)

    async def deliver_message(self, portal: Portal, message: PortalMessage) -> str | None:
        channel = self._channel_of(portal)
        if channel is None:
            return None
        assert self.puppets is not None and self.bot is not None
        kind = "action" if message.kind is MessageKind.EMOTE else "privmsg"
        if message.kind is MessageKind.NOTICE:
            kind = "notice"
        text = to_mirc(message.rich)
        if message.sender is not None:
            puppet = await self.puppets.ensure(message.sender, message.nick)
            if not puppet.relayed:
                self.puppets.want_channel(puppet, channel.name)
            self._show(channel, lambda: self.puppets.say(puppet, channel.name, Line(kind, text)))  # type: ignore[union-attr]
        else:
            who = message.display or message.nick or "owner"
            bot = self.bot

            def relay() -> None:
                action = kind == "action"
                if kind != "notice" and bot.relaymsg(channel.name, who, text, action=action):
                    return
                budget = lines.payload_budget(
                    lines.message_prefix_length(bot.nick, "PRIVMSG", channel.name)
                )
                bodies, _ = lines.relay_message(
                    who, text, budget, self.options.max_lines, action=kind == "action"
                )
                for body in bodies:
                    bot.privmsg(channel.name, body)

            self._show(channel, relay)
        return None

    async def deliver_typing(self, portal: Portal, passport: str) -> None:
        channel = self._channel_of(portal)
        assert self.puppets is not None
        puppet = self.puppets.puppets.get(passport.lower())
        if channel is not None and puppet is not None and puppet.in_channel(channel.name):
            if self._present(channel):
                self.puppets.say(puppet, channel.name, Line("typing", ""))

    async def deliver_nudge(self, portal: Portal, passport: str, nick: str) -> None:
        channel = self._channel_of(portal)
        if channel is None:
            return
        assert self.bot is not None
        bot = self.bot
        who = nick or passport or "You"
        self._show(channel, lambda: bot.notice(channel.name, f"*** {who} sent a nudge!"))

    async def participant_joined(self, portal: Portal, passport: str, nick: str) -> None:
        channel = self._channel_of(portal)
        if channel is None:
            return
        assert self.puppets is not None and self.bot is not None
        puppet = await self.puppets.ensure(passport, nick or passport)
        if not puppet.relayed:
            self.puppets.want_channel(puppet, channel.name)
        self.bot.topic(channel.name, self._topic(channel))
        told = f"{portal.owner}\0{portal.key}"
        if not portal.is_direct and told not in self._group_told:
            self._group_told.add(told)
            for person in portal.participants:
                direct = await self.router.portals.get(portal.owner, [person])
                if direct is not None and direct.irc_channel:
                    self.bot.notice(
                        direct.irc_channel,
                        f"This conversation became a group chat: it continues in {channel.name}",
                    )

    async def participant_left(self, portal: Portal, passport: str) -> None:
        channel = self._channel_of(portal)
        assert self.puppets is not None
        puppet = self.puppets.puppets.get(passport.lower())
        if channel is not None and puppet is not None:
            self.puppets.leave_channel(puppet, channel.name, "Left the conversation")

    async def delivery_failed(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        assert self.bot is not None
        target = origin_id or self.owner_nick(portal.owner)
        if target:
            short = text if len(text) <= 60 else text[:57] + "…"
            self.bot.notice(target, f'Not delivered to MSN: "{short}" ({describe_result(result)})')

    async def owner_notice(self, owner: str, notice: OwnerNotice) -> None:
        nick = self.owner_nick(owner) if owner.startswith("irc:") else None
        if nick and self.bot is not None:
            self.bot.notice(nick, notice.text)

    async def contact_changed(self, owner: str, contact: Contact, change: ContactChange) -> None:
        if not owner.startswith("irc:"):
            return
        assert self.contacts is not None and self.puppets is not None
        if change is ContactChange.REMOVED:
            puppet = self.puppets.puppets.get(contact.passport.lower())
            name = self.contact_list_of.get(owner)
            if puppet is not None and name:
                self.puppets.leave_channel(puppet, name, "Removed from the contact list")
            return
        await self.contacts.update(owner, contact)

    # --- puppet callbacks ---

    def _puppet_joined(self, puppet: Puppet, channel_name: str) -> None:
        channel = self.channels.get(channel_name.lower())
        if channel is not None and channel.portal is None and self.contacts is not None:
            self.contacts.show(puppet, channel_name)

    def _puppet_relayed(self, puppet: Puppet) -> None:
        assert self.contacts is not None
        known: dict[str, Contact] = {}
        for owner in self.contact_list_of:
            client = self.router.sessions.get(owner)
            contact = client.contacts.get(puppet.passport) if client is not None else None
            if contact is not None:
                known[owner] = contact
        self.contacts.relayed(puppet, known)

    # --- the bot's events ---

    def _on_bot_event(self, event: ConnectionEvent | object) -> None:
        assert self.identities is not None and self.bot is not None
        self.identities.on_event(event)
        if isinstance(event, Names):
            channel = self.channels.get(event.channel.lower())
            if channel is not None:
                channel.members = {n.lower() for n in event.nicks}
                self._flush_backlog(channel)
        elif isinstance(event, Registered | Disconnected):
            if isinstance(event, Disconnected) and event.refusal and self.router.metrics:
                self.router.metrics.irc_error(event.refusal.kind)
            # Until NAMES says who is back, nobody counts as present: MSN messages wait.
            for channel in self.channels.values():
                channel.members.clear()
        elif isinstance(event, IRCEvent):
            try:
                self._on_irc(event)
            except Exception:
                log.exception("Handling %s from IRC failed", event.kind)

    def _on_irc(self, event: IRCEvent) -> None:
        assert self.bot is not None and self.identities is not None
        bot = self.bot
        kind = event.kind
        if kind is Kind.JOIN:
            channel = self.channels.get((event.target or "").lower())
            if channel is None:
                return
            channel.members.add(event.nick.lower())
            if event.nick.lower() == bot.nick.lower():
                self._bot_joined(channel, event.source)
            else:
                self._flush_backlog(channel)
            return
        if kind in (Kind.PART, Kind.KICK):
            channel = self.channels.get((event.target or "").lower())
            gone = event.params[0] if kind is Kind.KICK and event.params else event.nick
            if channel is not None:
                channel.members.discard(gone.lower())
                if gone.lower() == bot.nick.lower() and kind is Kind.KICK:
                    bot.join(channel.name)  # our channel: come back
            return
        if kind in (Kind.QUIT, Kind.NICK):
            self.identities.forget(event.nick)
            renamed: list[Portal] = []
            for channel in self.channels.values():
                if event.nick.lower() in channel.members:
                    channel.members.discard(event.nick.lower())
                    if kind is Kind.NICK and event.target:
                        channel.members.add(event.target.lower())
                if kind is Kind.NICK and event.target and event.nick.lower() in channel.allowed:
                    channel.allowed.discard(event.nick.lower())
                    channel.allowed.add(event.target.lower())
                    self._except(channel, "-I", event.nick)
                    self._except(channel, "+I", event.target)
                    if channel.portal is not None:
                        renamed.append(channel.portal)
            if renamed and event.target:
                self._spawn(self._renamed(event.nick, event.target, renamed))
            return
        if event.nick and self._is_ours(event.nick):
            return  # our own puppets, echo-message
        relayer = event.tags.get("draft/relaymsg") or event.tags.get("relaymsg")
        if relayer and relayer.lower() == bot.nick.lower():
            return  # what the bot itself said under a spoofed nick (draft/relaymsg)
        if kind in (Kind.PRIVMSG, Kind.ACTION) and event.target:
            if event.is_channel:
                self._spawn(self._channel_message(event))
            elif event.target.lower() == bot.nick.lower() and kind is Kind.PRIVMSG:
                self._spawn(self._private_message(event.nick, event.text or "", event.tags))
        elif kind is Kind.TAGMSG and event.is_channel and event.tags.get("+typing") == "active":
            self._spawn(self._typing(event))

    def _bot_joined(self, channel: Channel, mask: str) -> None:
        assert self.bot is not None
        public = self._public(channel)
        self.bot.mode(channel.name, "+nt" if public else "+ntsi")
        if not public and "!" in mask:
            # An invite exception for the bot itself, so it can come back into its own
            # invite-only channel after a reconnection (servers without +I ignore it).
            self.bot.mode(channel.name, "+I", mask)
        for nick in sorted(channel.allowed):
            self._except(channel, "+I", nick)
        self.bot.topic(channel.name, self._topic(channel))
        invites, channel.invites = channel.invites, []
        for nick in invites:
            self.bot.invite(nick, channel.name)
        self._invite_owner(channel)

    # --- from IRC ---

    async def _private_message(self, nick: str, text: str, tags: Mapping[str, str | None]) -> None:
        assert self.identities is not None and self.bot is not None
        identity = await self.identities.resolve(nick, tags)
        self._owner_nicks[identity.id] = nick
        bot = self.bot
        level = self.permissions.level_for(identity.id)

        async def reply(message: str) -> None:
            for line in lines.split_lines(message):
                bot.notice(nick, line)

        words = text.strip().split()
        if words and words[0].lower() in LOCAL_COMMANDS:
            await self._local_command(identity.id, nick, words, None, reply)
            return
        ctx = CommandContext(
            sender_id=identity.id,
            is_admin=level is PermissionLevel.ADMIN,
            reply=reply,
            level=level,
            side="irc",
            room_id=nick,
            extra={"irc_nick": nick, "irc_account": identity.account},
        )
        await self.commands.handle(ctx, text)
        if ctx.command == "help" and level is not None:
            await reply(irc_help())
        client = self.router.sessions.get(identity.id)
        if client is not None and ctx.command == "login":
            name = self._open_contact_list(identity.id, client.config.passport)
            self._request_invite(nick, name)
            await self._sync_contacts(identity.id)
        elif client is not None:
            await self._refresh_owner_nick(identity.id, nick)

    async def _sync_contacts(self, owner: str) -> None:
        """Show the presence the session learnt while logging in (its initial burst came
        before the session's events were forwarded to the sides)."""
        client = self.router.sessions.get(owner)
        assert self.contacts is not None
        if client is None:
            return
        for contact in list(client.contacts.contacts.values()):
            if contact.on(Lists.FL) and contact.online:
                await self.contacts.update(owner, contact)

    async def _refresh_owner_nick(self, owner: str, nick: str) -> None:
        stored = await user_db.get(self.db, owner)
        if stored is not None and stored.management_room != nick:
            stored.management_room = nick
            await user_db.save(self.db, stored)

    async def _local_command(
        self,
        owner: str,
        nick: str,
        words: list[str],
        here: Channel | None,
        reply: Callable[[str], Coroutine[Any, Any, None]],
    ) -> None:
        name = words[0].lower()
        if name == "channels":
            mine = [c for c in self.channels.values() if c.owner == owner]
            guest = [c for c in self.channels.values() if nick.lower() in c.allowed]
            for channel in mine + guest:
                self._request_invite(nick, channel.name)
            text = "Your channels (invited again): " + (", ".join(c.name for c in mine) or "none")
            if guest:
                text += "\nChannels you are allowed in (invited): "
                text += ", ".join(c.name for c in guest)
            await reply(text)
            return
        if len(words) < 2:
            await reply(f"Usage: {name} <nick> [channel]")
            return
        channel = here
        if len(words) > 2:
            channel = self.channels.get(words[2].lower())
        if channel is None or channel.portal is None:
            await reply(f"Usage: {name} <nick> <#channel> (one of your conversation channels)")
            return
        if channel.owner != owner:
            await reply(f"Only the owner of {channel.name} decides who may join it.")
            return
        if name == "allow":
            await reply(await self.allow(channel, words[1]))
        else:
            await reply(await self.disallow(channel, words[1]))

    # --- allow lists ---

    def channel_for(self, portal: Portal) -> Channel | None:
        return self._channel_of(portal)

    async def allow(self, channel: Channel, nick: str) -> str:
        """Let ``nick`` into a conversation channel (kept in the database, with an invite
        exception so they can come back without an INVITE); returns the answer."""
        assert self.bot is not None and channel.portal is not None
        if not lines.is_nick(nick):
            return f"'{nick}' is not an IRC nick."
        portal = channel.portal
        channel.allowed.add(nick.lower())
        await allowed_db.add(self.db, portal.owner, portal.key, nick)
        self._except(channel, "+I", nick)
        self.bot.invite(nick, channel.name)
        if nick.lower() in channel.members:
            self._flush_backlog(channel)
        return f"{nick} may join {channel.name} now (invited)."

    async def disallow(self, channel: Channel, nick: str) -> str:
        assert self.bot is not None and channel.portal is not None
        if not lines.is_nick(nick):
            return f"'{nick}' is not an IRC nick."
        portal = channel.portal
        channel.allowed.discard(nick.lower())
        await allowed_db.remove(self.db, portal.owner, portal.key, nick)
        self._except(channel, "-I", nick)
        if nick.lower() in channel.members:
            self.bot.kick(channel.name, nick, "No longer allowed in this conversation")
        return f"{nick} may no longer join {channel.name}."

    def _except(self, channel: Channel, change: str, nick: str) -> None:
        """An invite exception (+I) per allowed nick: the channel stays +i for everyone
        else, while an allowed user can join without asking the bot for an invitation."""
        if self.bot is not None and not self._public(channel):
            self.bot.mode(channel.name, change, f"{nick}!*@*")

    def _public(self, channel: Channel) -> bool:
        return self.options.public_conversations and channel.portal is not None

    async def _renamed(self, old: str, new: str, portals: list[Portal]) -> None:
        for portal in portals:
            await allowed_db.remove(self.db, portal.owner, portal.key, old)
            await allowed_db.add(self.db, portal.owner, portal.key, new)

    async def _channel_message(self, event: IRCEvent) -> None:
        assert self.identities is not None and self.bot is not None
        channel = self.channels.get((event.target or "").lower())
        if channel is None or channel.portal is None:
            return
        portal = channel.portal
        nick, text = event.nick, event.text or ""
        identity = await self.identities.resolve(nick, event.tags)
        is_owner = identity.id == portal.owner
        if is_owner:
            self._owner_nicks[portal.owner] = nick
        bot = self.bot

        async def reply(message: str) -> None:
            for line in lines.split_lines(message):
                bot.notice(nick, line)

        if is_owner and event.kind is Kind.PRIVMSG and text.startswith("!"):
            words = text[1:].split()
            if words and words[0].lower() in LOCAL_COMMANDS:
                await self._local_command(portal.owner, nick, words, channel, reply)
            elif words and words[0].lower() == "nudge":
                await self.router.send_nudge(portal, "irc", nick)
            elif words:
                level = self.permissions.level_for(identity.id)
                ctx = CommandContext(
                    sender_id=identity.id,
                    is_admin=level is PermissionLevel.ADMIN,
                    reply=reply,
                    level=level,
                    side="irc",
                    room_id=channel.name,
                    extra={"portal": portal, "irc_nick": nick},
                )
                await self.commands.handle(ctx, text[1:])
                if ctx.command == "help":
                    await reply(irc_help())
            return
        kind = MessageKind.EMOTE if event.kind is Kind.ACTION else MessageKind.TEXT
        if is_owner:
            rich = from_mirc(text, kind)
            async with channel.send_lock:
                await self.router.send(portal, "irc", nick, None, rich, kind)
            return
        allowed = nick.lower() in channel.allowed or self.options.public_conversations
        if not allowed:
            return
        key = (channel.name.lower(), nick.lower())
        self._merge.setdefault(key, []).append((text, kind))
        if key not in self._merge_timers:
            loop = asyncio.get_running_loop()
            self._merge_timers[key] = loop.call_later(
                self.options.merge_seconds, lambda: self._spawn(self._flush_merge(key, nick))
            )

    async def _flush_merge(self, key: tuple[str, str], nick: str) -> None:
        self._merge_timers.pop(key, None)
        held = self._merge.pop(key, [])
        channel = self.channels.get(key[0])
        if not held or channel is None or channel.portal is None:
            return
        async with channel.send_lock:
            await self.send_relayed(channel.portal, nick, held)

    async def send_relayed(
        self, portal: Portal, nick: str, held: list[tuple[str, MessageKind]]
    ) -> DeliveryResult:
        """An allowed IRC user without an MSN login, relayed through the owner's session
        as ``<nick> text`` (irc.relay.prefix) with a P4-Context header, merged lines in one
        MSN message; the router shows it on the portal's other sides too."""
        spans: list[Span] = []
        for i, (text, kind) in enumerate(held):
            if i:
                spans.append(Span("\n"))
            if kind is MessageKind.EMOTE:
                spans.append(Span("* " + nick + " "))
            spans.extend(from_mirc(text, kind).spans)
        rich = RichText([s for s in spans if s.text], MessageKind.TEXT)
        return await self.router.send(
            portal,
            self.name,
            nick,  # origin id: whom a failure NOTICE goes to
            nick,
            rich,
            relay_format=self.options.relay_prefix.replace("{nick}", "{displayname}") + "{message}",
        )

    async def _typing(self, event: IRCEvent) -> None:
        assert self.identities is not None
        channel = self.channels.get((event.target or "").lower())
        if channel is None or channel.portal is None:
            return
        identity = await self.identities.resolve(event.nick, event.tags)
        if identity.id == channel.portal.owner:
            with contextlib.suppress(Exception):
                await self.router.send_typing(channel.portal)


__all__ = ["IRCSide", "identity_for"]
