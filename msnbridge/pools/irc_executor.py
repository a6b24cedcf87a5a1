"""A pool's IRC puppet connections: opened, used and closed by the core's commands, their
events published back, so that a restart of the core makes no puppet quit.

API (pool side; the core's end is ``remote_irc``)
-------------------------------------------------
``IRCExecutor(link: PoolLink, *, pool, options: IRCOptions, scheduler=None,
on_open=None, on_close=None)``: ``install(executor)`` registers its commands with the
pool's `SessionExecutor` (which dedupes them by command id, like every command);
``handle(envelope)`` carries one out without that (tests). ``on_open(owner) -> bool``
is awaited before a new connection is made (take its lease; False refuses it),
``on_close(owner)`` after one is closed (release the lease). ``drop(owner, reason)``
closes one the core did not ask to close (its lease was lost, the pool is leaving) and
tells the core (``IRCGone``) so it reconnects it elsewhere; ``close(reason)`` drops
every one. ``publish_snapshots()`` publishes an ``IRCSnapshot`` of every connection
(what the core's ``resync_all`` asks for); ``flush()`` waits until events are out.

Every connection is an owner of its own on the link: ``ircpuppet:<passport>``, stable
across restarts of the core, so a new core finds its puppets again. Secrets never
travel: a connection's server, password and flood settings come from this pool's own
``irc:`` configuration; a command brings only the nick, user name and real name.

Commands (``Envelope.owner`` = the connection's owner):

============  ========================================  ==================================
kind          data                                      reply
============  ========================================  ==================================
irc_connect   nick, username, realname, rejoin,         state; adopted (True: it was up
              msn_nick                                  already and is taken over as it is)
irc_privmsg   target, text, tags                        result {queued, refused, truncated}
irc_notice    target, text                              result
irc_action    target, text                              result
irc_tagmsg    target, tags                              sent
irc_join      channel, key                              {}
irc_part      channel, reason                           purged
irc_set_nick  nick                                      {}
irc_send_raw  line                                      queued
irc_close     reason                                    {}
irc_resync    — (any owner: every connection)           connections: [state…] (published)
============  ========================================  ==================================

A command for a connection this pool does not hold is answered ``{"gone": True}`` (not
NotHeld: an IRC connection cannot move between pools; the one it was on stopped or
died, so the core opens it again).

Events (kind, data): ``IRCRegistered`` {nick, caps, reconnect}, ``IRCDisconnected``
{reason, refusal: {kind, message} | None, retry_in}, ``IRCNickChanged`` {old, new},
``IRCEvent`` {kind, source, nick, target, text, params, tags, server_time} — only those
about the connection itself (an INVITE for it; its own JOIN, PART, KICK, NICK; failed
joins and sends): puppets only send, the bot reads the channels; ``IRCSnapshot`` {},
``IRCGone`` {reason}. Each carries ``state``: {owner, incarnation, seq, pool, nick,
wanted_nick, registered, channels, joined, caps, userhost_len, msn_nick}; ``seq``
grows with every event of one incarnation (one opening of the connection on one pool),
so the core ignores what is older than what it knows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from ..irc.backoff import ReconnectScheduler
from ..irc.connection import IRCConnection, SendResult
from ..irc.events import ConnectionEvent, Disconnected, IRCEvent, Kind, NickChanged, Registered
from ..irc.options import IRCOptions
from ..irc.sendqueue import Priority
from .executor import NotHeld
from .link import CommandFailed, CommandHandler, Envelope, PoolLink
from .outbox import Outbox

log = logging.getLogger("msnbridge.pools.irc")

__all__ = ["OWNER_PREFIX", "IRCExecutor", "owner_of"]

OWNER_PREFIX = "ircpuppet:"
# IRC lines about the connection itself that the core's puppets act on.
_OWN_KINDS = frozenset({Kind.INVITE, Kind.JOIN, Kind.PART, Kind.KICK, Kind.NICK})
_FAILURES = frozenset({Kind.JOIN_FAILED, Kind.SEND_FAILED})


def owner_of(passport: str) -> str:
    """The link owner of an MSN person's IRC puppet connection."""
    return OWNER_PREFIX + passport.lower()


def encode_result(result: SendResult) -> dict[str, Any]:
    return {"queued": result.queued, "refused": result.refused, "truncated": result.truncated}


class _Held:
    """One connection of this pool."""

    def __init__(self, owner: str, incarnation: str, msn_nick: str, rejoin: bool) -> None:
        self.owner = owner
        self.incarnation = incarnation
        self.msn_nick = msn_nick
        self.rejoin = rejoin
        self.seq = 0
        self.conn: IRCConnection | None = None
        self.closing = False


class IRCExecutor:
    def __init__(
        self,
        link: PoolLink,
        *,
        pool: str,
        options: IRCOptions,
        scheduler: ReconnectScheduler | None = None,
        on_open: Callable[[str], Awaitable[bool]] | None = None,
        on_close: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.link = link
        self.pool = pool
        self.options = options
        self.scheduler = scheduler or ReconnectScheduler()
        self.on_open = on_open
        self.on_close = on_close
        self.epoch = secrets.token_hex(4)  # incarnations never repeat across pool restarts
        self._count = itertools.count(1)
        self._held: dict[str, _Held] = {}
        self._outbox = Outbox(link, f"pool-irc-events:{pool}")
        self._closing = False
        self._handlers: dict[str, Callable[[Envelope], Awaitable[dict[str, Any]]]] = {
            "irc_connect": self._connect,
            "irc_privmsg": self._on_held(self._privmsg),
            "irc_notice": self._on_held(self._notice),
            "irc_action": self._on_held(self._action),
            "irc_tagmsg": self._on_held(self._tagmsg),
            "irc_join": self._on_held(self._join),
            "irc_part": self._on_held(self._part),
            "irc_set_nick": self._on_held(self._set_nick),
            "irc_send_raw": self._on_held(self._send_raw),
            "irc_close": self._close_command,
            "irc_resync": self._resync,
        }

    # --- wiring ---

    @property
    def connections(self) -> dict[str, IRCConnection]:
        return {o: h.conn for o, h in self._held.items() if h.conn is not None}

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def install(self, executor: Any) -> None:
        """Register every IRC command with the pool's SessionExecutor (``register``)."""
        for kind, handler in self._handlers.items():
            executor.register(kind, handler)

    async def handle(self, envelope: Envelope) -> dict[str, Any]:
        """Carry out one command (no dedupe: `install` on a SessionExecutor for that)."""
        handler = self._handlers.get(envelope.kind)
        if handler is None:
            raise CommandFailed(f"this connection pool does not know the command {envelope.kind!r}")
        return await handler(envelope)

    # --- commands ---

    def _on_held(
        self, method: Callable[[IRCConnection, dict[str, Any]], dict[str, Any]]
    ) -> CommandHandler:
        async def run(envelope: Envelope) -> dict[str, Any]:
            held = self._held.get(envelope.owner)
            if held is None or held.conn is None or held.closing:
                return {"gone": True}
            try:
                reply = method(held.conn, envelope.data)
            except (KeyError, TypeError, ValueError) as e:
                raise CommandFailed(f"the bridge sent a malformed {envelope.kind} ({e})") from None
            return {**reply, "state": self.state(held)}

        return run

    async def _connect(self, envelope: Envelope) -> dict[str, Any]:
        data = envelope.data
        owner = envelope.owner
        if not owner.startswith(OWNER_PREFIX):
            raise CommandFailed(f"{owner!r} is not an IRC puppet connection")
        held = self._held.get(owner)
        if held is not None and held.conn is not None and not held.closing:
            # The core restarted (or asked again): the connection is taken over as it is.
            held.msn_nick = str(data.get("msn_nick") or held.msn_nick)
            if str(data["nick"]) != held.conn.wanted_nick:
                held.conn.set_nick(str(data["nick"]))
            return {"adopted": True, "state": self.state(held)}
        if self._closing:
            raise NotHeld("this connection pool is stopping")  # another pool takes it
        if self.on_open is not None and not await self.on_open(owner):
            raise CommandFailed("another connection pool holds this IRC connection")
        try:
            settings = self.options.connection_settings(
                str(data["nick"]), username=str(data.get("username") or "") or None
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CommandFailed(f"the bridge sent a malformed irc_connect ({e})") from None
        if data.get("realname"):
            settings = replace(settings, realname=str(data["realname"]))
        incarnation = f"{self.pool}:{self.epoch}:{next(self._count)}"
        held = _Held(owner, incarnation, str(data.get("msn_nick") or ""), bool(data.get("rejoin")))
        self._held[owner] = held

        def listener(event: ConnectionEvent) -> None:
            self._on_event(held, event)

        held.conn = IRCConnection(settings, listener, scheduler=self.scheduler)
        held.conn.start()
        log.info("IRC puppet connection %s opened (%s)", owner, settings.nick)
        return {"adopted": False, "state": self.state(held)}

    @staticmethod
    def _privmsg(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        tags = _tags(data.get("tags"))
        return {
            "result": encode_result(conn.privmsg(str(data["target"]), str(data["text"]), tags=tags))
        }

    @staticmethod
    def _notice(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        return {"result": encode_result(conn.notice(str(data["target"]), str(data["text"])))}

    @staticmethod
    def _action(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        return {"result": encode_result(conn.action(str(data["target"]), str(data["text"])))}

    @staticmethod
    def _tagmsg(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        return {"sent": conn.tagmsg(str(data["target"]), _tags(data["tags"]) or {})}

    @staticmethod
    def _join(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        key = data.get("key")
        conn.join(str(data["channel"]), None if key is None else str(key))
        return {}

    @staticmethod
    def _part(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        return {"purged": conn.part(str(data["channel"]), str(data.get("reason") or ""))}

    @staticmethod
    def _set_nick(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        conn.set_nick(str(data["nick"]))
        return {}

    @staticmethod
    def _send_raw(conn: IRCConnection, data: dict[str, Any]) -> dict[str, Any]:
        return {"queued": conn.send_raw(str(data["line"]), Priority.CONTROL)}

    async def _close_command(self, envelope: Envelope) -> dict[str, Any]:
        held = self._held.get(envelope.owner)
        if held is None:
            return {"gone": True}
        await self._close(held, str(envelope.data.get("reason") or ""))
        return {}

    async def _resync(self, envelope: Envelope) -> dict[str, Any]:
        return {"connections": self.publish_snapshots()}

    # --- closing ---

    async def _close(self, held: _Held, reason: str) -> None:
        if held.closing:
            return
        held.closing = True
        conn = held.conn
        try:
            if conn is not None:
                await conn.close(reason)
        finally:
            if self._held.get(held.owner) is held:
                del self._held[held.owner]
            log.info("IRC puppet connection %s closed (%s)", held.owner, reason or "asked")
            if self.on_close is not None:
                await self.on_close(held.owner)

    async def drop(self, owner: str, reason: str) -> None:
        """Close a connection the core did not ask to close, and tell the core (it
        opens it again, on whichever pool takes it)."""
        held = self._held.get(owner)
        if held is None:
            return
        await self._close(held, reason)
        held.seq += 1
        self._enqueue(held, "IRCGone", {"reason": reason})

    async def close(self, reason: str = "Connection pool stopping", timeout: float = 5.0) -> None:
        """Drop every connection (the core reopens them elsewhere), then publish what is
        queued (up to ``timeout``) and stop."""
        self._closing = True
        await asyncio.gather(
            *(self.drop(o, reason) for o in list(self._held)), return_exceptions=True
        )
        await self._outbox.close(timeout)

    # --- state and snapshots ---

    def state(self, held: _Held) -> dict[str, Any]:
        conn = held.conn
        assert conn is not None
        names = {lower: name for lower, (name, _key) in conn.channels.items()}
        return {
            "owner": held.owner,
            "incarnation": held.incarnation,
            "seq": held.seq,
            "pool": self.pool,
            "nick": conn.nick,
            "wanted_nick": conn.wanted_nick,
            "registered": conn.registered,
            # Names only: a channel key is a secret and puppets never use one.
            "channels": sorted(names.values()),
            "joined": sorted(conn.joined),
            "caps": sorted(conn.caps),
            "userhost_len": list(conn._userhost_len) if conn._userhost_len else None,
            "msn_nick": held.msn_nick,
        }

    def publish_snapshots(self) -> list[dict[str, Any]]:
        """An IRCSnapshot event for every connection (after the events before it)."""
        states = []
        for held in list(self._held.values()):
            if held.conn is None or held.closing:
                continue
            held.seq += 1
            states.append(self._enqueue(held, "IRCSnapshot", {}))
        return states

    # --- events ---

    def _on_event(self, held: _Held, event: ConnectionEvent) -> None:
        if self._held.get(held.owner) is not held or held.conn is None:
            return
        conn = held.conn
        if isinstance(event, Registered):
            if not held.rejoin:
                # Before the connection rejoins by itself (it does right after this
                # event): puppet channels are invite-only, the core has it invited.
                conn.channels.clear()
            data: dict[str, Any] = {
                "nick": event.nick,
                "caps": sorted(event.caps),
                "reconnect": event.reconnect,
            }
            kind = "IRCRegistered"
        elif isinstance(event, Disconnected):
            refusal = event.refusal
            data = {
                "reason": event.reason,
                "refusal": None
                if refusal is None
                else {"kind": refusal.kind.value, "message": refusal.message},
                "retry_in": event.retry_in,
            }
            kind = "IRCDisconnected"
        elif isinstance(event, NickChanged):
            data, kind = {"old": event.old, "new": event.new}, "IRCNickChanged"
        elif isinstance(event, IRCEvent):
            if not _about_itself(conn, event):
                return
            data = {
                "kind": event.kind.value,
                "source": event.source,
                "nick": event.nick,
                "target": event.target,
                "text": event.text,
                "params": list(event.params),
                "tags": dict(event.tags),
                "server_time": event.server_time.isoformat() if event.server_time else None,
            }
            kind = "IRCEvent"
        else:  # pragma: no cover - ConnectionEvent is a closed union
            return
        held.seq += 1
        self._enqueue(held, kind, data)

    def _enqueue(self, held: _Held, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        if held.conn is not None:
            state = self.state(held)
        else:  # pragma: no cover - every held connection has one
            state = {"owner": held.owner, "incarnation": held.incarnation, "seq": held.seq}
        if kind == "IRCGone":
            state = {**state, "registered": False, "joined": []}
        event_id = f"{self.pool}:{self.epoch}:i{next(self._count)}"
        self._outbox.put(Envelope(event_id, held.owner, kind, {**data, "state": state}))
        return state

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event queued so far is published."""
        await self._outbox.flush(timeout)


def _about_itself(conn: IRCConnection, event: IRCEvent) -> bool:
    if event.kind in _FAILURES:
        return True
    if event.kind not in _OWN_KINDS:
        return False
    me = conn.nick.lower()
    if event.kind is Kind.INVITE:
        return (event.target or "").lower() == me
    if event.kind is Kind.KICK:
        return bool(event.params) and event.params[0].lower() == me
    if event.kind is Kind.NICK:
        return (event.target or "").lower() == me  # the new nick is ours now
    return event.nick.lower() == me


def _tags(value: object) -> Mapping[str, str | None] | None:
    if not value:
        return None
    if not isinstance(value, dict):
        raise TypeError("tags must be an object")
    return {str(k): None if v is None else str(v) for k, v in value.items()}
