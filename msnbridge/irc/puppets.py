"""IRC presences of MSN people: one send-only connection each, or the bot relaying.

Modes (``irc.puppets.mode``): ``connections`` gives every MSN participant its own
connection and nick, capped at ``max_connections`` by closing the least recently active
one; ``relay`` has the bot say ``<Nick> text``; ``auto`` uses connections and relays for
whoever is over the cap, or when the server refuses more connections.

Puppet connections are never read for bridging (the bot reads); their own events only
drive joining: conversation channels are invite-only, so a puppet joins a channel when the
bot has invited it, and lines for a channel it has not joined (yet, or again after a
reconnection) wait in ``pending`` until it has.

Connections are made through a `PuppetConnections`: `LocalConnections` (the default)
opens them in this process; with connection pools (``pools.redis_url``) a pool holds them
(``msnbridge.pools.remote_irc``), so they outlive a restart of the bridge: the new
process is told of them (`found`) and takes them over instead of connecting again; as
no Registered or JOIN comes for a connection taken over, a `TakenOver` event tells the
manager to send what it held meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mautrix.util.async_db import Database

from puppets.logthrottle import ThrottledLog

from ..db import irc_nick
from . import lines
from .backoff import ReconnectScheduler
from .bot import BotConnection
from .connection import IRCConnection, SendResult
from .events import (
    ConnectionEvent,
    Disconnected,
    IRCEvent,
    Kind,
    NickChanged,
    Registered,
    TakenOver,
)
from .options import IRCOptions, PuppetMode
from .refusal import RefusalKind
from .settings import IRCSettings

log = logging.getLogger(__name__)

FALLBACK_REFUSALS = frozenset(
    {RefusalKind.TOO_MANY_CONNECTIONS, RefusalKind.THROTTLED, RefusalKind.BANNED}
)
REFUSAL_COOLDOWN = 300.0  # seconds of relaying new puppets after the server refused one
MAX_PENDING = 200  # lines held per puppet while it (re)joins


class PuppetConnection(Protocol):
    """What a puppet needs of its connection (an IRCConnection, or one a pool holds)."""

    nick: str
    channels: dict[str, tuple[str, str | None]]  # wanted: lower → (name, key)
    joined: set[str]  # lower

    @property
    def registered(self) -> bool: ...

    def start(self) -> None: ...

    async def close(self, reason: str = "") -> None: ...

    def privmsg(self, target: str, text: str) -> SendResult: ...

    def notice(self, target: str, text: str) -> SendResult: ...

    def action(self, target: str, text: str) -> SendResult: ...

    def tagmsg(self, target: str, tags: Mapping[str, str | None]) -> bool: ...

    def join(self, channel: str, key: str | None = None) -> None: ...

    def part(self, channel: str, reason: str = "") -> int: ...

    def set_nick(self, nick: str) -> None: ...

    def send_raw(self, line: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class FoundConnection:
    """A puppet connection that outlived the previous bridge process (held by a pool)."""

    passport: str
    msn_nick: str
    nick: str  # the wanted nick
    channels: tuple[str, ...]  # the channels it is in or joining


class PuppetConnections(Protocol):
    """Makes puppet connections. ``open`` returns one not started yet."""

    def open(
        self,
        passport: str,
        settings: IRCSettings,
        on_event: Callable[[ConnectionEvent], None],
        *,
        msn_nick: str,
    ) -> PuppetConnection: ...

    async def release(self, conn: PuppetConnection, reason: str) -> None:
        """The bridge is stopping: close the connection, or leave it up where it
        outlives the process (a pool's)."""
        ...

    def on_found(self, found: Callable[[FoundConnection], None]) -> None:
        """Call ``found`` for each connection of a previous process (pools only)."""
        ...


class LocalConnections:
    """Puppet connections in this process: they end with it."""

    def __init__(self, scheduler: ReconnectScheduler) -> None:
        self.scheduler = scheduler

    def open(
        self,
        passport: str,
        settings: IRCSettings,
        on_event: Callable[[ConnectionEvent], None],
        *,
        msn_nick: str,
    ) -> PuppetConnection:
        return IRCConnection(settings, on_event, scheduler=self.scheduler)

    async def release(self, conn: PuppetConnection, reason: str) -> None:
        await conn.close(reason)

    def on_found(self, found: Callable[[FoundConnection], None]) -> None:
        pass  # nothing outlives this process


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # "privmsg", "action", "notice", "typing"
    text: str


@dataclass
class Puppet:
    passport: str
    msn_nick: str
    nick: str  # the wanted IRC nick (stored in irc_nicks)
    conn: PuppetConnection | None = None
    relayed: bool = False  # the bot speaks for it
    channels: dict[str, str] = field(default_factory=dict)  # lower → name (wanted)
    pending: dict[str, list[Line]] = field(default_factory=dict)
    away: str | None = None
    last_active: float = field(default_factory=time.monotonic)

    @property
    def irc_nick(self) -> str:
        """The nick it has on the server now (may differ after a collision)."""
        return self.conn.nick if self.conn is not None else self.nick

    def in_channel(self, channel: str) -> bool:
        c = self.conn
        return c is not None and c.registered and channel.lower() in c.joined


class PuppetManager:
    def __init__(
        self,
        options: IRCOptions,
        bot: BotConnection,
        scheduler: ReconnectScheduler,
        db: Database,
        *,
        request_invite: Callable[[str, str], None],
        on_joined: Callable[[Puppet, str], None],
        on_relayed: Callable[[Puppet], None],
        connector: PuppetConnections | None = None,
    ) -> None:
        self.options = options
        self.bot = bot
        self.scheduler = scheduler
        self.db = db
        self.request_invite = request_invite  # (nick, channel): the bot invites
        self.on_joined = on_joined  # a puppet joined a channel (voice it, …)
        self.on_relayed = on_relayed  # a puppet fell back to relay
        self.puppets: dict[str, Puppet] = {}
        self._refused_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._relay_log = ThrottledLog(log)
        self.connector = connector or LocalConnections(scheduler)
        self.connector.on_found(self._found)

    # --- who is ours ---

    def our_nicks(self) -> set[str]:
        nicks = {self.bot.nick.lower()}
        for p in self.puppets.values():
            if p.conn is not None:
                nicks.add(p.conn.nick.lower())
        return nicks

    def by_nick(self, nick: str) -> Puppet | None:
        low = nick.lower()
        return next(
            (p for p in self.puppets.values() if p.conn is not None and p.conn.nick.lower() == low),
            None,
        )

    @property
    def connections(self) -> int:
        return sum(1 for p in self.puppets.values() if p.conn is not None)

    # --- nicks ---

    def wanted_nick(self, passport: str, msn_nick: str) -> str:
        before, _, after = self.options.nick_template.partition("{nick}")
        local = passport.split("@", 1)[0]
        name = lines.split_lines(msn_nick)[0] if lines.split_lines(msn_nick) else local
        return lines.sanitize_nick(
            before.format(passport=local) + name,
            self.bot.nicklen,
            suffix=after.format(passport=local),
            fallback=local,
        )

    async def _claim_nick(self, passport: str, msn_nick: str) -> str:
        wanted = self.wanted_nick(passport, msn_nick)
        stored = await irc_nick.get(self.db, passport)
        if stored is not None and stored.lower() == wanted.lower():
            return stored
        candidates = itertools.chain((wanted,), lines.nick_alternatives(wanted, self.bot.nicklen))
        for candidate in itertools.islice(candidates, 100):
            if await irc_nick.claim(self.db, passport, candidate):
                return candidate
        return wanted  # pragma: no cover - every numbered variant taken

    # --- lifecycle ---

    async def ensure(self, passport: str, msn_nick: str) -> Puppet:
        """The puppet for ``passport``, with a connection when the mode allows one."""
        passport = passport.lower()
        puppet = self.puppets.get(passport)
        if puppet is None:
            nick = await self._claim_nick(passport, msn_nick or passport)
            puppet = self.puppets.get(passport)  # another task may have made it meanwhile
            if puppet is None:
                puppet = Puppet(passport, msn_nick, nick)
                self.puppets[passport] = puppet
        puppet.last_active = time.monotonic()
        if puppet.conn is None and not puppet.relayed:
            if self._may_connect():
                self._connect(puppet)
            else:
                self._relay(puppet, "over the connection cap")
        return puppet

    def _may_connect(self) -> bool:
        mode = self.options.puppet_mode
        if mode is PuppetMode.RELAY:
            return False
        cap = self.options.max_connections
        if mode is PuppetMode.AUTO:
            return time.monotonic() >= self._refused_until and self.connections < cap
        if self.connections >= cap:
            return self._evict()
        return True

    def _evict(self) -> bool:
        connected = [p for p in self.puppets.values() if p.conn is not None]
        if not connected:
            return False
        victim = min(connected, key=lambda p: p.last_active)
        log.info("IRC puppet cap reached: disconnecting %s", victim.nick)
        self.spawn(self._disconnect(victim, "Too many puppets"))
        return True

    def _connect(self, puppet: Puppet) -> None:
        settings = self.options.connection_settings(
            puppet.nick, username=puppet.passport.split("@", 1)[0]
        )
        conn = self.connector.open(
            puppet.passport,
            settings,
            lambda e: self._on_event(puppet, conn, e),
            msn_nick=puppet.msn_nick,
        )
        puppet.conn = conn
        conn.start()  # invited to its channels once registered

    def _found(self, found: FoundConnection) -> None:
        """A connection a pool kept across a restart: the puppet is back, in its channels,
        with no new connection (the pool's is taken over)."""
        passport = found.passport.lower()
        if passport in self.puppets:
            return  # made again already (its connection took the pool's over)
        puppet = Puppet(passport, found.msn_nick, found.nick)
        puppet.channels = {c.lower(): c for c in found.channels}
        self.puppets[passport] = puppet
        log.info("IRC puppet %s is still connected (kept by a connection pool)", found.nick)
        self._connect(puppet)

    async def _disconnect(self, puppet: Puppet, reason: str) -> None:
        conn, puppet.conn = puppet.conn, None
        if conn is not None:
            await conn.close(reason)

    async def _release(self, puppet: Puppet) -> None:
        conn, puppet.conn = puppet.conn, None
        if conn is not None:
            await self.connector.release(conn, "Bridge shutting down")

    def _relay(self, puppet: Puppet, why: str) -> None:
        if not puppet.relayed:
            # Once per burst per reason: hundreds of contacts can hit the cap at once.
            self._relay_log.log(why, "IRC puppet %s is relayed by the bot: %s", puppet.nick, why)
        puppet.relayed = True
        pending, puppet.pending = puppet.pending, {}
        for lower, held in pending.items():
            channel = puppet.channels.get(lower, lower)
            for line in held:
                self._relay_line(puppet, channel, line)
        self.on_relayed(puppet)

    async def quit(self, passport: str, reason: str = "Offline") -> None:
        puppet = self.puppets.get(passport.lower())
        if puppet is not None and puppet.conn is not None:
            await self._disconnect(puppet, reason)

    async def close(self) -> None:
        await asyncio.gather(
            *(self._release(p) for p in self.puppets.values()), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)  # and its outcome read: none ends "never retrieved"
        if not task.cancelled() and task.exception() is not None:
            log.error("IRC puppet task failed", exc_info=task.exception())

    # --- channels ---

    def want_channel(self, puppet: Puppet, channel: str) -> None:
        """Make the puppet a member of ``channel`` (after the bot invites it)."""
        if channel.lower() in puppet.channels:
            return
        puppet.channels[channel.lower()] = channel
        if puppet.conn is not None and puppet.conn.registered:  # else on Registered
            self.request_invite(puppet.irc_nick, channel)

    def leave_channel(self, puppet: Puppet, channel: str, reason: str = "") -> None:
        puppet.channels.pop(channel.lower(), None)
        puppet.pending.pop(channel.lower(), None)
        if puppet.conn is not None and channel.lower() in puppet.conn.channels:
            puppet.conn.part(channel, reason)

    def missing(self) -> list[tuple[Puppet, str]]:
        """Channels registered puppets want but are not in (to invite them again)."""
        return [
            (p, channel)
            for p in self.puppets.values()
            if p.conn is not None and p.conn.registered
            for channel in p.channels.values()
            if channel.lower() not in p.conn.joined
        ]

    # --- speaking ---

    def say(self, puppet: Puppet, channel: str, line: Line) -> bool:
        """Send (or hold until joined); False when nothing could be sent at all."""
        puppet.last_active = time.monotonic()
        if puppet.relayed or puppet.conn is None:
            if line.kind == "typing":
                return True  # the bot cannot type for someone else
            return self._relay_line(puppet, channel, line)
        if puppet.in_channel(channel):
            return self._send(puppet.conn, channel, line)
        held = puppet.pending.setdefault(channel.lower(), [])
        if line.kind != "typing":
            if len(held) >= MAX_PENDING:
                held.pop(0)
            held.append(line)
        if channel.lower() not in puppet.channels:
            self.want_channel(puppet, channel)
        return True

    def _send(self, conn: PuppetConnection, channel: str, line: Line) -> bool:
        if line.kind == "typing":
            conn.tagmsg(channel, {"+typing": "active"})
            return True
        if line.kind == "action":
            result = conn.action(channel, line.text)
        elif line.kind == "notice":
            result = conn.notice(channel, line.text)
        else:
            result = conn.privmsg(channel, line.text)
        if result.truncated:
            self.bot.notice(
                channel,
                f"(the message was longer than {self.options.max_lines} lines and was cut)",
            )
        return result.queued > 0

    def say_lost(self, passport: str, channel: str, kind: str, text: str, why: str) -> None:
        """A line the puppet's connection could not send (its pool refused it, or no
        pool answered): the bot says it instead, so the message is not lost."""
        puppet = self.puppets.get(passport.lower())
        log.warning("A line of IRC puppet %s for %s was not sent (%s); the bot relays it",
                    puppet.nick if puppet else passport, channel, why)  # fmt: skip
        if puppet is None:
            puppet = Puppet(passport.lower(), "", passport.split("@", 1)[0])
        self._relay_line(puppet, channel, Line(kind, text))

    def _relay_line(self, puppet: Puppet, channel: str, line: Line) -> bool:
        if line.kind == "typing":
            return True
        name = puppet.msn_nick or puppet.nick
        name = lines.split_lines(name)[0][:40] if lines.split_lines(name) else puppet.nick
        action = line.kind == "action"
        spoofed = None
        if line.kind != "notice":  # RELAYMSG carries PRIVMSGs only
            spoofed = self.bot.relaymsg(channel, name, line.text, action=action)
        if spoofed is not None:
            sent, truncated = spoofed.queued > 0, spoofed.truncated
        else:
            prefix = lines.message_prefix_length(self.bot.nick, "PRIVMSG", channel)
            bodies, truncated = lines.relay_message(
                name,
                line.text,
                lines.payload_budget(prefix),
                self.options.max_lines,
                action=action,
            )
            for body in bodies:
                if line.kind == "notice":
                    self.bot.notice(channel, body)
                else:
                    self.bot.privmsg(channel, body)
            sent = bool(bodies)
        if truncated:
            self.bot.notice(
                channel,
                f"(the message was longer than {self.options.max_lines} lines and was cut)",
            )
        return sent

    def set_away(self, puppet: Puppet, text: str | None) -> None:
        puppet.away = text
        if puppet.conn is not None and puppet.conn.registered:
            self._send_away(puppet.conn, text)

    @staticmethod
    def _send_away(conn: PuppetConnection, text: str | None) -> None:
        conn.send_raw(f"AWAY :{lines.split_lines(text)[0]}" if text else "AWAY")

    async def rename(self, puppet: Puppet, msn_nick: str) -> None:
        puppet.msn_nick = msn_nick
        wanted = self.wanted_nick(puppet.passport, msn_nick)
        if wanted.lower() == puppet.nick.lower():
            return
        nick = await self._claim_nick(puppet.passport, msn_nick)
        puppet.nick = nick
        if puppet.conn is not None:
            puppet.conn.set_nick(nick)

    # --- a puppet connection's own events ---

    def _on_event(self, puppet: Puppet, conn: PuppetConnection, event: ConnectionEvent) -> None:
        if puppet.conn is not conn:
            return
        if isinstance(event, Registered):
            # Conversation channels are invite-only: never let the connection rejoin by
            # itself (it would fail, or after a server restart take ops from the bot).
            conn.channels.clear()
            if puppet.away:
                self._send_away(conn, puppet.away)
            for channel in puppet.channels.values():
                self.request_invite(conn.nick, channel)
        elif isinstance(event, Disconnected):
            refusal = event.refusal
            if refusal is not None and refusal.kind in FALLBACK_REFUSALS and not conn.registered:
                if self.options.puppet_mode is PuppetMode.AUTO or event.retry_in is None:
                    self._refused_until = time.monotonic() + REFUSAL_COOLDOWN
                    puppet.conn = None
                    self.spawn(conn.close())
                    self._relay(puppet, f"the server refused it ({refusal.kind.value})")
        elif isinstance(event, NickChanged):
            log.info("IRC puppet %s is now %s", event.old, event.new)
        elif isinstance(event, TakenOver):
            self._taken_over(puppet, conn)
        elif isinstance(event, IRCEvent):
            self._on_irc(puppet, conn, event)

    def _taken_over(self, puppet: Puppet, conn: PuppetConnection) -> None:
        """The connection a pool kept is ours now. Lines said before the takeover was
        known (held because it did not look registered yet) go out, in order, to the
        channels it is in; it is invited to the others it wants."""
        if not conn.registered:
            return  # still registering: a Registered follows
        if puppet.away:
            self._send_away(conn, puppet.away)
        for lower, channel in list(puppet.channels.items()):
            if lower not in conn.joined:
                self.request_invite(conn.nick, channel)
                continue
            for line in puppet.pending.pop(lower, []):
                self._send(conn, channel, line)

    def _on_irc(self, puppet: Puppet, conn: PuppetConnection, event: IRCEvent) -> None:
        if event.kind is Kind.INVITE and event.params:
            channel = event.params[-1]
            if channel.lower() in puppet.channels:
                conn.join(puppet.channels[channel.lower()])
        elif event.kind is Kind.JOIN and event.nick.lower() == conn.nick.lower():
            channel = event.target or ""
            held = puppet.pending.pop(channel.lower(), [])
            self.on_joined(puppet, channel)
            for line in held:
                self._send(conn, channel, line)
