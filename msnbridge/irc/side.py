"""The IRC side of the bridge: the :class:`~msnbridge.core.sides.Side` the router talks to.

It starts the bot (the only connection whose traffic is read, :mod:`.incoming_irc`), the
puppets that speak for MSN people (:mod:`.puppets`) and the contact-list channels
(:mod:`.contactlist`), and renders each portal of an IRC owner in a channel of its own
(:mod:`.conversation_channels`: allow lists, held backlog); identities are in
:mod:`.identity`. Portals of Matrix owners get a channel too (``irc.matrix_portals``);
their owner allows IRC users with ``irc allow <nick>`` in the Matrix room
(:mod:`.commands`). Lines of allowed IRC users go to MSN merged (:mod:`.relay_merge`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from mautrix.util.async_db import Database

from puppets import Contact
from puppets.event.conversation import DeliveryResult

from ..core.commands import CommandProcessor
from ..core.router import Router, describe_result
from ..core.sides import HELD, ContactChange, OwnerNotice, PortalMessage
from ..db import irc_allowed as allowed_db
from ..db import user as user_db
from ..db.irc_backlog import HeldLine
from ..db.portal import Portal
from ..formatting import MessageKind, to_mirc
from ..permissions import Permissions
from ..pools.remote_irc import RemoteIRCConnections, stable_irc_ids
from . import channels as names
from . import lines
from .backoff import ReconnectScheduler
from .bot import BotConnection
from .catchup import CatchUp
from .commands import register_irc_command
from .connection import IRCRefusedError
from .contactlist import ContactListChannels
from .conversation_channels import Channel, ConversationChannels
from .identity import IdentityResolver, identity_for
from .incoming_irc import IncomingIRC
from .options import IRCOptions
from .proof import NickProofs
from .puppets import Line, Puppet, PuppetConnections, PuppetManager
from .relay_merge import Held, LineMerger, merged_text

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 3.0  # seconds between re-invites of puppets missing a channel


class IRCSide:
    name = "irc"

    def __init__(
        self,
        options: IRCOptions,
        db: Database,
        commands: CommandProcessor,
        permissions: Permissions,
        router: Router,
        *,
        connector: PuppetConnections | None = None,
    ) -> None:
        self.options = options
        self.connector = connector  # pool mode: the pools hold the puppets' connections
        self.db = db
        self.commands = commands
        self.permissions = permissions
        self.router = router
        self.catchup = CatchUp(db, on_dropped=self._dropped)
        self.conversations = ConversationChannels(options, db, router, self.catchup)
        self.conversations.replay = self._replay
        self.channels: dict[str, Channel] = self.conversations.channels  # lower name → channel
        self.contact_list_of: dict[str, str] = self.conversations.contact_list_of  # owner → name
        self.merger = LineMerger(options.merge_seconds, self.spawn, self._send_merged)
        self.incoming = IncomingIRC(self)
        self._group_told: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.scheduler: ReconnectScheduler | None = None
        self.bot: BotConnection | None = None
        self.puppets: PuppetManager | None = None
        self.contacts: ContactListChannels | None = None
        self.identities: IdentityResolver | None = None
        self.proofs: NickProofs | None = None
        self._maintenance: asyncio.Task[None] | None = None

    # --- lifecycle ---

    async def start(self, ready_timeout: float | None = 30.0) -> None:
        o = self.options
        rooms = self.conversations
        self.scheduler = ReconnectScheduler(concurrency=o.reconnect_concurrency)
        self.bot = rooms.bot = BotConnection(
            o.connection_settings(o.bot_nick, bot=True),
            self.incoming.on_bot_event,
            scheduler=self.scheduler,
        )
        self.identities = IdentityResolver(self.bot, rooms.shares)
        self.proofs = rooms.proofs = NickProofs(
            self.identities,
            self.db,
            self.router.sessions.secrets,
            trust_bare_nicks=o.trust_bare_nicks,
            shares=rooms.shares,
        )
        rooms.spawn = self.spawn
        self.puppets = rooms.puppets = PuppetManager(
            o,
            self.bot,
            self.scheduler,
            self.db,
            request_invite=rooms.request_invite,
            on_joined=self._puppet_joined,
            on_relayed=self._puppet_relayed,
            connector=self.connector,
        )
        if isinstance(self.connector, RemoteIRCConnections):
            self.connector.on_lost = self.puppets.say_lost
        self.contacts = ContactListChannels(
            o, self.bot, self.puppets, rooms.contact_list_channel, rooms.announce
        )
        self.router.add_side(self)
        register_irc_command(self.commands, self)
        await self.catchup.load()
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
        self.merger.close()
        if self.contacts is not None:
            self.contacts.close()
        if self.puppets is not None:
            await self.puppets.close()
        if self.bot is not None:
            await self.bot.close("Bridge shutting down")
        for task in list(self._tasks):
            task.cancel()
        await self.catchup.close()

    async def _restore_channels(self) -> None:
        rooms = self.conversations
        allowed = await allowed_db.get_all(self.db)
        for stored in await user_db.get_all(self.db, with_login=True):
            if stored.side == "irc":
                if stored.management_room:
                    rooms.owner_nicks[stored.id] = stored.management_room
                if stored.passport:
                    rooms.open_contact_list(stored.id, stored.passport)
            for portal in await self.router.portals.all_of(stored.id):
                if portal.irc_channel and self.serves(portal):
                    channel = rooms.register(portal.irc_channel, stored.id, portal)
                    channel.allowed |= allowed.get((portal.owner, portal.key), set())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
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
                self.conversations.request_invite(puppet.irc_nick, channel)
            metrics = self.router.metrics
            if metrics is not None:
                metrics.set_irc_connections("bot", int(self.bot.registered))
                up = sum(1 for p in self.puppets.puppets.values() if p.conn and p.conn.registered)
                metrics.set_irc_connections("puppet", up)

    # --- owners, channels and allow lists (kept in .conversation_channels) ---

    def owner_nick(self, owner: str) -> str | None:
        return self.conversations.owner_nick(owner)

    def _is_ours(self, nick: str) -> bool:
        return self.conversations.is_ours(nick)

    def channel_for(self, portal: Portal) -> Channel | None:
        return self.conversations.channel_of(portal)

    async def allow(self, channel: Channel, nick: str) -> str:
        """Let ``nick`` into a conversation channel; returns the answer."""
        return await self.conversations.allow(channel, nick)

    async def disallow(self, channel: Channel, nick: str) -> str:
        return await self.conversations.disallow(channel, nick)

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
        channel = self.conversations.register(portal.irc_channel, portal.owner, portal)
        self.conversations.invite_owner(channel)

    async def deliver_message(self, portal: Portal, message: PortalMessage) -> str | None:
        channel = self.conversations.channel_of(portal)
        if channel is None:
            return None
        assert self.puppets is not None and self.bot is not None
        kind = "action" if message.kind is MessageKind.EMOTE else "privmsg"
        if message.kind is MessageKind.NOTICE:
            kind = "notice"
        text = to_mirc(message.rich)
        if message.sent_at is not None:  # an offline message: show when it was written
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(message.sent_at))
            text = f"[{when} UTC] {text}"
        if message.sender is not None:
            puppet = await self.puppets.ensure(message.sender, message.nick)
            if not puppet.relayed:
                self.puppets.want_channel(puppet, channel.name)
            who = message.nick or message.sender
            puppets, name = self.puppets, channel.name
            # Pool mode: the line's command id comes from the message's own id, so the
            # same message delivered again after a restart of the core is not sent twice.
            stable = stable_irc_ids(f"irc:{message.txn_id}") if message.txn_id else None

            def live() -> None:
                with stable or contextlib.nullcontext():
                    puppets.say(puppet, name, Line(kind, text))
        else:
            who = message.display or message.nick or "owner"
            if message.own_other_endpoint:
                who = self._own_endpoint_name(portal, who)

            def live() -> None:
                self._say_as(channel.name, who, kind, text)

        shown = self.conversations.show(channel, kind, who, text, live)
        return None if shown else HELD

    def _own_endpoint_name(self, portal: Portal, marked: str) -> str:
        """Who the owner's message from their other Messenger is shown as: the bot cannot
        speak through the owner's own IRC connection and has none of its own for owners,
        so it relays it under the owner's IRC nick (an IRC owner), marked; a Matrix
        owner's keeps the MSN name it came with (``marked``)."""
        nick = self.owner_nick(portal.owner) if portal.owner.startswith("irc:") else None
        return f"{nick} (from another Messenger)" if nick else marked

    def _say_as(self, channel: str, who: str, kind: str, text: str) -> None:
        """The bot says ``text`` for ``who``: RELAYMSG where the server has it, else
        ``<who> text`` lines (irc.relay.prefix style)."""
        bot = self.bot
        assert bot is not None
        action = kind == "action"
        if kind != "notice" and bot.relaymsg(channel, who, text, action=action):
            return
        budget = lines.payload_budget(lines.message_prefix_length(bot.nick, "PRIVMSG", channel))
        limit = self.options.max_lines
        bodies, cut = lines.relay_message(who, text, budget, limit, action=action)
        for body in bodies:
            bot.privmsg(channel, body)
        if cut:
            bot.notice(channel, f"(the message was longer than {limit} lines and was cut)")

    def _replay(self, channel: Channel, held: list[HeldLine]) -> None:
        """The catch-up, in the order it was received: all said by the bot, on its one
        connection, so no speaker's line overtakes another's."""
        bot = self.bot
        assert bot is not None
        since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(held[0].received_at))
        count = f"{len(held)} line{'s' if len(held) != 1 else ''}"
        bot.notice(
            channel.name, f"Catch-up: {count} from while nobody was here (since {since} UTC)"
        )
        metrics = self.router.metrics
        for line in held:
            if line.kind in ("nudge", "announce"):
                bot.notice(channel.name, line.text)
                continue
            self._say_as(channel.name, line.sender, line.kind, line.text)
            if metrics is not None and channel.portal is not None:
                metrics.message("msn_to_irc", "delivered")
        bot.notice(channel.name, "End of the catch-up.")

    def _dropped(self, line: HeldLine) -> None:
        """A held line pushed out of a full catch-up: nobody will read it."""
        metrics = self.router.metrics
        if metrics is not None and line.kind not in ("nudge", "announce"):
            metrics.message("msn_to_irc", "dropped")

    async def deliver_typing(self, portal: Portal, passport: str) -> None:
        channel = self.conversations.channel_of(portal)
        assert self.puppets is not None
        puppet = self.puppets.puppets.get(passport.lower())
        if channel is not None and puppet is not None and puppet.in_channel(channel.name):
            if self.conversations.present(channel):
                self.puppets.say(puppet, channel.name, Line("typing", ""))

    async def deliver_nudge(self, portal: Portal, passport: str, nick: str) -> None:
        channel = self.conversations.channel_of(portal)
        if channel is None:
            return
        assert self.bot is not None
        bot = self.bot
        who = nick or passport or "You"
        text = f"*** {who} sent a nudge!"
        self.conversations.show(channel, "nudge", who, text, lambda: bot.notice(channel.name, text))

    async def participant_joined(self, portal: Portal, passport: str, nick: str) -> None:
        channel = self.conversations.channel_of(portal)
        if channel is None:
            return
        assert self.puppets is not None and self.bot is not None
        puppet = await self.puppets.ensure(passport, nick or passport)
        if not puppet.relayed:
            self.puppets.want_channel(puppet, channel.name)
        self.bot.topic(channel.name, self.conversations.topic(channel))
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
        channel = self.conversations.channel_of(portal)
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

    async def delivery_note(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        assert self.bot is not None
        target = origin_id or self.owner_nick(portal.owner)
        if target:
            short = text if len(text) <= 60 else text[:57] + "…"
            self.bot.notice(target, f'Sent as an offline message: "{short}" ({result.reason})')

    async def owner_notice(self, owner: str, notice: OwnerNotice) -> None:
        nick = self.owner_nick(owner) if owner.startswith("irc:") else None
        if nick and self.bot is not None and await self.conversations.reaches(owner, nick):
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

    # --- to MSN: allowed IRC users without a login ---

    async def _send_merged(self, channel_key: str, nick: str, held: Held) -> None:
        channel = self.channels.get(channel_key)
        if channel is None or channel.portal is None:
            return
        async with channel.send_lock:
            await self.send_relayed(channel.portal, nick, held)

    async def send_relayed(self, portal: Portal, nick: str, held: Held) -> DeliveryResult:
        """An allowed IRC user without an MSN login, relayed through the owner's session
        as ``<nick> text`` (irc.relay.prefix) with a P4-Context header, merged lines in one
        MSN message; the router shows it on the portal's other sides too."""
        return await self.router.send(
            portal,
            self.name,
            nick,  # origin id: whom a failure NOTICE goes to
            nick,
            merged_text(nick, held),
            relay_format=self.options.relay_prefix.replace("{nick}", "{displayname}") + "{message}",
        )


__all__ = ["IRCSide", "identity_for"]
