"""What the IRC bot reads, and what it means for the bridge.

The bot is the only connection whose traffic is read; lines from the bridge's own nicks
(bot and puppets) are ignored. Here: channel membership (NAMES, JOIN, PART, KICK, QUIT,
NICK — an allowed user's new nick stays allowed), messages in conversation channels (the
owner's go to MSN as theirs, an allowed user's are merged and relayed, see
:mod:`.relay_merge`), typing, and the commands an IRC user sends the bot: in a private
message (the core commands, ``side="irc"``) or as ``!command`` in their own conversation
channel. The IRC-only ones (``allow``, ``disallow``, ``channels``) are answered here;
:mod:`.commands` lists them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from puppets import Lists

from ..core.commands import CommandContext
from ..db import user as user_db
from ..db.portal import Portal
from ..formatting import MessageKind, from_mirc
from ..permissions import PermissionLevel
from . import lines
from .bot import Names
from .commands import LOCAL_COMMANDS, irc_help
from .conversation_channels import Channel
from .events import ConnectionEvent, Disconnected, IRCEvent, Kind, Registered
from .identity import Identity

if TYPE_CHECKING:
    from .side import IRCSide

log = logging.getLogger(__name__)

Reply = Callable[[str], Coroutine[Any, Any, None]]


class IncomingIRC:
    """Handles the bot's events for ``side`` (``on_bot_event`` is the bot's callback)."""

    def __init__(self, side: IRCSide) -> None:
        self.side = side
        self.rooms = side.conversations

    def on_bot_event(self, event: ConnectionEvent | object) -> None:
        side = self.side
        assert side.identities is not None and side.bot is not None
        side.identities.on_event(event)
        if isinstance(event, Names):
            channel = self.rooms.get(event.channel)
            if channel is not None:
                channel.members = {n.lower() for n in event.nicks}
                self.rooms.flush_backlog(channel)
        elif isinstance(event, Registered | Disconnected):
            if isinstance(event, Disconnected) and event.refusal and side.router.metrics:
                side.router.metrics.irc_error(event.refusal.kind)
            # Until NAMES says who is back, nobody counts as present: MSN messages wait.
            for channel in self.rooms.channels.values():
                channel.members.clear()
        elif isinstance(event, IRCEvent):
            try:
                self._on_irc(event)
            except Exception:
                log.exception("Handling %s from IRC failed", event.kind)

    def _on_irc(self, event: IRCEvent) -> None:
        side = self.side
        assert side.bot is not None and side.identities is not None
        bot = side.bot
        kind = event.kind
        if kind is Kind.JOIN:
            channel = self.rooms.get(event.target)
            if channel is None:
                return
            channel.members.add(event.nick.lower())
            if "extended-join" in bot.caps and event.params:
                side.identities.learn(event.nick, event.params[0])
            if event.nick.lower() == bot.nick.lower():
                self.rooms.bot_joined(channel, event.source)
            else:
                self.rooms.joined(channel, event.nick)
            return
        if kind in (Kind.PART, Kind.KICK):
            channel = self.rooms.get(event.target)
            gone = event.params[0] if kind is Kind.KICK and event.params else event.nick
            if side.proofs is not None:
                side.proofs.left(gone)
            if channel is not None:
                channel.members.discard(gone.lower())
                channel.unchecked.discard(gone.lower())
                self.rooms.left(channel, gone)
                if gone.lower() == bot.nick.lower() and kind is Kind.KICK:
                    bot.join(channel.name)  # our channel: come back
            return
        if kind in (Kind.QUIT, Kind.NICK):
            side.identities.forget(event.nick)
            if side.proofs is not None:
                side.proofs.gone(event.nick)
            self._gone_or_renamed(event)
            return
        if event.nick and self.rooms.is_ours(event.nick):
            return  # our own puppets, echo-message
        relayer = event.tags.get("draft/relaymsg") or event.tags.get("relaymsg")
        if relayer and relayer.lower() == bot.nick.lower():
            return  # what the bot itself said under a spoofed nick (draft/relaymsg)
        if kind in (Kind.PRIVMSG, Kind.ACTION) and event.target:
            if event.is_channel:
                side.spawn(self._channel_message(event))
            elif event.target.lower() == bot.nick.lower() and kind is Kind.PRIVMSG:
                side.spawn(self._private_message(event.nick, event.text or "", event.tags))
        elif kind is Kind.TAGMSG and event.is_channel and event.tags.get("+typing") == "active":
            side.spawn(self._typing(event))

    def _gone_or_renamed(self, event: IRCEvent) -> None:
        """QUIT or NICK: membership follows, and so do allow lists (with their +I)."""
        kind = event.kind
        renamed: list[Portal] = []
        for channel in self.rooms.channels.values():
            if event.nick.lower() in channel.members:
                channel.members.discard(event.nick.lower())
                if kind is Kind.NICK and event.target:
                    channel.members.add(event.target.lower())
            if event.nick.lower() in channel.unchecked:
                channel.unchecked.discard(event.nick.lower())
                if kind is Kind.NICK and event.target:  # still to be checked, as who now
                    self.rooms.joined(channel, event.target)
            if kind is Kind.NICK and event.target and event.nick.lower() in channel.allowed:
                channel.allowed.discard(event.nick.lower())
                channel.allowed.add(event.target.lower())
                self.rooms.invite_exception(channel, "-I", event.nick)
                self.rooms.invite_exception(channel, "+I", event.target)
                if channel.portal is not None:
                    renamed.append(channel.portal)
        if renamed and event.target:
            self.side.spawn(self.rooms.rename_allowed(event.nick, event.target, renamed))

    def _reply_to(self, nick: str) -> Reply:
        assert self.side.bot is not None
        bot = self.side.bot

        async def reply(message: str) -> None:
            for line in lines.split_lines(message):
                bot.notice(nick, line)

        return reply

    # --- private messages: commands ---

    async def _private_message(self, nick: str, text: str, tags: Mapping[str, str | None]) -> None:
        side = self.side
        assert side.identities is not None and side.bot is not None and side.proofs is not None
        identity = await side.identities.resolve(nick, tags)
        level = side.permissions.level_for(identity.id)
        if level is PermissionLevel.ADMIN and not side.proofs.proven(identity.id):
            level = PermissionLevel.USER  # a bare nick is an admin only once it proved itself
        reply = self._reply_to(nick)
        words = text.strip().split()
        ctx = CommandContext(
            sender_id=identity.id,
            is_admin=level is PermissionLevel.ADMIN,
            reply=reply,
            level=level,
            side="irc",
            room_id=nick,
            extra={"irc_nick": nick, "irc_account": identity.account},
        )
        if (
            level is not None
            and not side.commands.awaiting_secret(identity.id, nick)
            and not await side.proofs.holds(identity)
        ):
            await self._ask_proof(ctx, identity, text)
            return
        self.rooms.owner_nicks[identity.id] = nick
        if words and words[0].lower() in LOCAL_COMMANDS:
            await self._local_command(identity.id, nick, words, None, reply)
            return
        await side.commands.handle(ctx, text)
        if ctx.command == "help" and level is not None:
            await reply(irc_help())
        client = side.router.sessions.get(identity.id)
        if client is not None and ctx.command == "login":
            if await side.proofs.mark(identity):
                self.rooms.invite_withheld(identity.id, nick)
            name = self.rooms.open_contact_list(identity.id, client.config.passport)
            self.rooms.request_invite(nick, name)
            await self._sync_contacts(identity.id)
        elif client is not None:
            await self._refresh_owner_nick(identity.id, nick)
            if ctx.command == "chat" and ctx.args:
                await self._invite_to_chat(identity.id, nick, ctx.args[0])

    async def _invite_to_chat(self, owner: str, nick: str, passport: str) -> None:
        """``chat <passport>`` asks for the conversation: its channel is offered even when
        the owner was invited a moment ago (and left it since)."""
        portal = await self.side.router.portals.get(owner, [passport.lower()])
        channel = self.rooms.channel_of(portal) if portal is not None else None
        if channel is not None and nick.lower() not in channel.members:
            self.rooms.request_invite(nick, channel.name)

    async def _ask_proof(self, ctx: CommandContext, identity: Identity, text: str) -> None:
        """A bare nick with a stored MSN login, on an IRC connection that has not shown it
        is the one that made the login: it gets nothing until it sends the password."""
        side = self.side
        assert side.proofs is not None
        if text.strip().lower() == "help":
            ctx.level = PermissionLevel.RELAY  # nothing of the login's
            await side.commands.handle(ctx, text)
            return
        if side.proofs.locked(identity):
            await ctx.reply("Too many wrong passwords from this nick; try again later.")
            return

        async def answer(ctx: CommandContext, password: str) -> None:
            if not await side.proofs.prove(identity, password):  # type: ignore[union-attr]
                await ctx.reply("That is not the password of this nick's MSN login.")
                return
            await ctx.reply("Thank you: this IRC connection is recognised until you disconnect.")
            self.rooms.invite_withheld(identity.id, identity.nick)
            if text.strip():
                await self._private_message(identity.nick, text, {})

        side.commands.ask(ctx, answer, secret=True)
        await ctx.reply(
            "This nick has an MSN login on this bridge. To use it from this IRC connection, "
            "send its MSN password in your next message (it is checked, never shown or "
            "logged; 'cancel' to stop)."
        )

    async def _sync_contacts(self, owner: str) -> None:
        """Show the presence the session learnt while logging in (its initial burst came
        before the session's events were forwarded to the sides)."""
        client = self.side.router.sessions.get(owner)
        assert self.side.contacts is not None
        if client is None:
            return
        for contact in list(client.contacts.contacts.values()):
            if contact.on(Lists.FL) and contact.online:
                await self.side.contacts.update(owner, contact)

    async def _refresh_owner_nick(self, owner: str, nick: str) -> None:
        stored = await user_db.get(self.side.db, owner)
        if stored is not None and stored.management_room != nick:
            stored.management_room = nick
            await user_db.save(self.side.db, stored)

    async def _local_command(
        self, owner: str, nick: str, words: list[str], here: Channel | None, reply: Reply
    ) -> None:
        name = words[0].lower()
        channels = self.rooms.channels
        if name == "channels":
            mine = [c for c in channels.values() if c.owner == owner]
            guest = [c for c in channels.values() if nick.lower() in c.allowed]
            for channel in mine + guest:
                self.rooms.request_invite(nick, channel.name)
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
            channel = channels.get(words[2].lower())
        if channel is None or channel.portal is None:
            await reply(f"Usage: {name} <nick> <#channel> (one of your conversation channels)")
            return
        if channel.owner != owner:
            await reply(f"Only the owner of {channel.name} decides who may join it.")
            return
        if name == "allow":
            await reply(await self.rooms.allow(channel, words[1]))
        else:
            await reply(await self.rooms.disallow(channel, words[1]))

    # --- conversation channels ---

    async def _channel_message(self, event: IRCEvent) -> None:
        side = self.side
        assert side.identities is not None and side.bot is not None
        channel = self.rooms.get(event.target)
        if channel is None or channel.portal is None:
            return
        portal = channel.portal
        nick, text = event.nick, event.text or ""
        identity = await side.identities.resolve(nick, event.tags)
        is_owner = identity.id == portal.owner
        if is_owner and side.proofs is not None and not await side.proofs.holds(identity):
            is_owner = False  # the owner's nick, on a connection that has not proven itself
            if nick.lower() not in channel.allowed and not side.options.public_conversations:
                side.bot.notice(
                    nick,
                    "Not sent to MSN: this IRC connection has not shown that it holds this "
                    "nick's MSN login. Send me 'channels' (in a private message) first.",
                )
        if is_owner:
            self.rooms.owner_nicks[portal.owner] = nick
        reply = self._reply_to(nick)
        if is_owner and event.kind is Kind.PRIVMSG and text.startswith("!"):
            words = text[1:].split()
            if words and words[0].lower() in LOCAL_COMMANDS:
                await self._local_command(portal.owner, nick, words, channel, reply)
            elif words and words[0].lower() == "nudge":
                await side.router.send_nudge(portal, "irc", nick)
            elif words:
                level = side.permissions.level_for(identity.id)
                ctx = CommandContext(
                    sender_id=identity.id,
                    is_admin=level is PermissionLevel.ADMIN,
                    reply=reply,
                    level=level,
                    side="irc",
                    room_id=channel.name,
                    extra={"portal": portal, "irc_nick": nick},
                )
                await side.commands.handle(ctx, text[1:])
                if ctx.command == "help":
                    await reply(irc_help())
            return
        kind = MessageKind.EMOTE if event.kind is Kind.ACTION else MessageKind.TEXT
        if is_owner:
            rich = from_mirc(text, kind)
            async with channel.send_lock:
                await side.router.send(portal, "irc", nick, None, rich, kind)
            return
        allowed = nick.lower() in channel.allowed or side.options.public_conversations
        if allowed:
            side.merger.add(channel.name, nick, text, kind)

    async def _typing(self, event: IRCEvent) -> None:
        side = self.side
        assert side.identities is not None
        channel = self.rooms.get(event.target)
        if channel is None or channel.portal is None:
            return
        identity = await side.identities.resolve(event.nick, event.tags)
        owner = identity.id == channel.portal.owner
        if owner and side.proofs is not None and await side.proofs.holds(identity):
            with contextlib.suppress(Exception):
                await side.router.send_typing(channel.portal)
