"""The core's end of IRC puppet connections held by a pool (``irc_executor``).

`RemoteIRCConnections` is the `PuppetManager`'s `PuppetConnections` in pool mode: it
makes `RemoteIRCConnection`\\ s, which quack like `IRCConnection` for what
``msnbridge/irc/puppets.py`` uses. Their state (nick, registered, joined channels) is a
mirror of the pool's, updated from command replies and events; what they are asked to
do goes to the pool as commands, one at a time and in order per connection, so a call
returns at once as `IRCConnection`'s do. A message's `SendResult` is worked out here the
way the pool's connection cuts it (``connection.message_bodies``).

A restarted core finds its puppets again: an ``IRCSnapshot`` (from ``resync`` or the
pools' ``resync_all``) of a connection it does not know yet is handed to the
PuppetManager (``on_found``), which makes the puppet again; its ``irc_connect`` takes
the pool's connection over (no new connection, no QUIT), and the reply's ``adopted``
is handed on as a `TakenOver` (the puppet sends what it held meanwhile). When the core
stops, its connections are left up in their pools (`release`).

A connection whose pool stopped or died is opened again (``IRCGone``, a ``gone`` reply,
or `pool_gone`): the puppet sees a Disconnected and then a Registered, as after a
reconnection; lines for a channel it was in wait until it has joined it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..irc.connection import SendResult, message_bodies
from ..irc.events import (
    ConnectionEvent,
    Disconnected,
    IRCEvent,
    Kind,
    NickChanged,
    Registered,
    TakenOver,
)
from ..irc.incoming import CTCP_ACTION
from ..irc.puppets import FoundConnection, PuppetConnection
from ..irc.refusal import Refusal, RefusalKind
from ..irc.settings import IRCSettings
from .irc_executor import OWNER_PREFIX, owner_of
from .link import CommandFailed, CoreLink, Envelope

log = logging.getLogger("msnbridge.pools.irc")

__all__ = ["RemoteIRCConnection", "RemoteIRCConnections", "stable_irc_ids"]

ATTEMPTS = 3  # a command no pool answered in time is sent again (same id) this often
LEAVE_WAIT = 2.0  # seconds a stopping core waits for a connection's commands to go out
HELD_BACK = 200  # lines per channel kept while a reopened connection rejoins it


@dataclass
class _IdSource:
    base: str
    counts: dict[str, int] = field(default_factory=dict)


_stable: ContextVar[_IdSource | None] = ContextVar("msnbridge_pools_irc_ids", default=None)


@contextlib.contextmanager
def stable_irc_ids(base: str) -> Iterator[None]:
    """Commands made inside get the ids ``<base>:<owner>:1``, ``:2``… (e.g. ``base =
    "irc:<pool event id>"``): when the core handles the same event again after a
    restart, the pool recognises the lines it sent already and does not send them twice."""
    token = _stable.set(_IdSource(base))
    try:
        yield
    finally:
        _stable.reset(token)


def _newer(state: Mapping[str, Any], than: Mapping[str, Any] | None) -> bool:
    """A state of another incarnation, or a later one of the same."""
    if than is None or state.get("incarnation") != than.get("incarnation"):
        return True
    return int(state.get("seq", 0)) > int(than.get("seq", 0))


# Message commands → the PuppetManager's Line kinds (for on_lost).
_LINE_KINDS = {"irc_privmsg": "privmsg", "irc_notice": "notice", "irc_action": "action"}
LostLine = Callable[[str, str, str, str, str], None]


@dataclass(slots=True)
class _Op:
    envelope: Envelope
    channel: str | None = None  # a message to this channel (held back if the pool lost it)
    done: asyncio.Future[dict[str, Any]] | None = None


class RemoteIRCConnection:
    """One puppet connection held by a pool."""

    def __init__(
        self,
        owner: RemoteIRCConnections,
        passport: str,
        settings: IRCSettings,
        on_event: Callable[[ConnectionEvent], None],
        *,
        msn_nick: str,
        known: dict[str, Any] | None = None,
    ) -> None:
        self._owner = owner
        self.passport = passport.lower()
        self.key = owner_of(passport)  # the link owner
        self.settings = settings
        self.on_event = on_event
        self.msn_nick = msn_nick
        self.wanted_nick = settings.nick
        self.nick = settings.nick
        self.channels: dict[str, tuple[str, str | None]] = {}
        self.joined: set[str] = set()
        self.caps: frozenset[str] = frozenset()
        self.pool: str | None = None
        self._registered = False
        self._userhost_len: tuple[int, int] | None = None
        self._state: dict[str, Any] | None = None  # the latest state applied
        self._event_seq: tuple[str | None, int] = (None, 0)  # the last event handed on
        self._ops: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._connecting = False
        self._early: list[Envelope] = []  # events of an incarnation not confirmed yet
        self._held_back: dict[str, list[_Op]] = {}
        self._started = False
        self.closed = False
        if known is not None:
            self._apply_state(known)
            self.channels = {c.lower(): (c, None) for c in known.get("channels") or ()}
            self._event_seq = (known.get("incarnation"), int(known.get("seq", 0)))

    # --- what puppets.py reads ---

    @property
    def registered(self) -> bool:
        return self._registered and not self.closed

    def __repr__(self) -> str:
        return f"<RemoteIRCConnection {self.key} {self.nick} on {self.pool}>"

    # --- lifecycle ---

    def start(self) -> None:
        if self._started or self.closed:
            return
        self._started = True
        self._connect_op(first=False)

    def _connect_op(self, *, first: bool) -> None:
        data = {
            "nick": self.wanted_nick,
            "username": self.settings.username,
            "realname": self.settings.realname,
            "rejoin": False,  # invite-only channels: the core has the puppet invited
            "msn_nick": self.msn_nick,
        }
        op = _Op(self._envelope("irc_connect", data))
        self._connecting = True
        if first:
            self._ops.appendleft(op)
        else:
            self._ops.append(op)
        self._kick()

    async def close(self, reason: str = "") -> None:
        """QUIT (after what is queued) and forget the connection; nothing reopens it."""
        if self.closed:
            return
        op = self._queue("irc_close", {"reason": reason})
        if op is None or not self._started:
            await self._stop()
            return
        op.done = asyncio.get_running_loop().create_future()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(op.done), self._owner.command_timeout)
        await self._stop()

    async def leave(self, timeout: float = LEAVE_WAIT) -> None:
        """The core is stopping: let queued commands go out, and leave the connection up
        in its pool for the next core."""
        if self.closed:
            return
        sender = self._sender
        if sender is not None and not sender.done():
            with contextlib.suppress(Exception):  # it ends once every command went out
                await asyncio.wait_for(asyncio.shield(sender), timeout)
        await self._stop()

    async def _stop(self) -> None:
        self.closed = True
        self._registered = False
        self._owner._detach(self)
        sender, self._sender = self._sender, None
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    # --- sending (returns at once, as IRCConnection's do) ---

    def send_raw(self, line: str, *_: object) -> bool:
        if "\r" in line or "\n" in line or "\0" in line:
            raise ValueError("an IRC line cannot contain CR, LF or NUL")
        return self._queue("irc_send_raw", {"line": line}) is not None

    def privmsg(
        self, target: str, text: str, *, tags: Mapping[str, str | None] | None = None
    ) -> SendResult:
        data = {"target": target, "text": text, "tags": dict(tags) if tags else None}
        return self._message("irc_privmsg", "PRIVMSG", target, text, data)

    def notice(self, target: str, text: str) -> SendResult:
        return self._message("irc_notice", "NOTICE", target, text, {"target": target, "text": text})

    def action(self, target: str, text: str) -> SendResult:
        data = {"target": target, "text": text}
        return self._message("irc_action", "PRIVMSG", target, text, data, ctcp=CTCP_ACTION)

    def _message(
        self,
        kind: str,
        command: str,
        target: str,
        text: str,
        data: dict[str, Any],
        *,
        ctcp: str | None = None,
    ) -> SendResult:
        bodies, truncated = message_bodies(
            self.nick,
            self.wanted_nick,
            self._userhost_len,
            command,
            target,
            text,
            self.settings.max_lines_per_message,
            ctcp=ctcp,
        )
        if self.closed or not bodies:
            return SendResult(0, len(bodies), truncated)
        self._queue(kind, data, channel=target)
        return SendResult(len(bodies), 0, truncated)

    def tagmsg(self, target: str, tags: Mapping[str, str | None]) -> bool:
        if "message-tags" not in self.caps or self.closed:
            return False
        return self._queue("irc_tagmsg", {"target": target, "tags": dict(tags)}) is not None

    def join(self, channel: str, key: str | None = None) -> None:
        self.channels[channel.lower()] = (channel, key)
        self._queue("irc_join", {"channel": channel, "key": key})

    def part(self, channel: str, reason: str = "") -> int:
        self.channels.pop(channel.lower(), None)
        held = self._held_back.pop(channel.lower(), [])
        dropped = sum(1 for op in self._ops if op.channel and op.channel.lower() == channel.lower())
        self._ops = deque(
            op for op in self._ops if not (op.channel and op.channel.lower() == channel.lower())
        )
        self._queue("irc_part", {"channel": channel, "reason": reason})
        return len(held) + dropped

    def set_nick(self, nick: str) -> None:
        self.wanted_nick = nick
        self._queue("irc_set_nick", {"nick": nick})

    def _envelope(self, kind: str, data: dict[str, Any]) -> Envelope:
        source = _stable.get()
        if source is not None and kind not in ("irc_connect", "irc_close"):
            count = source.counts[self.key] = source.counts.get(self.key, 0) + 1
            command_id = f"{source.base}:{self.key}:{count}"
        else:
            command_id = f"{self.key}:{self._owner.epoch}:{next(self._owner.ids)}"
        return Envelope(command_id, self.key, kind, data)

    def _queue(self, kind: str, data: dict[str, Any], *, channel: str | None = None) -> _Op | None:
        if self.closed:
            return None
        op = _Op(
            self._envelope(kind, data), channel if channel and self._is_channel(channel) else None
        )
        self._ops.append(op)
        self._kick()
        return op

    @staticmethod
    def _is_channel(target: str) -> bool:
        return bool(target) and target[0] in "#&+!"

    def _kick(self) -> None:
        self._wake.set()
        if not self._started or self.closed:
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(
                self._send_all(), name=f"irc-remote:{self.key}"
            )

    async def _send_all(self) -> None:
        """One task per connection sends its commands, in order, each once."""
        while self._ops and not self.closed:
            op = self._ops.popleft()
            reply = await self._carry_out(op)
            if op.done is not None and not op.done.done():
                op.done.set_result(reply or {})
            if reply is None:
                continue
            if reply.get("gone"):
                self._on_gone(op, "its connection pool no longer has it")
                continue
            if op.envelope.kind == "irc_connect":
                self._connected(reply)
            elif isinstance(reply.get("state"), dict):
                self._apply_state(reply["state"])
            result = reply.get("result")
            if isinstance(result, dict) and (result.get("refused") or 0) > 0:
                self._owner.lost_lines += int(result["refused"])
                log.warning(
                    "%s: the pool's send queue refused %s lines", self.key, result["refused"]
                )
                self._lost(op, f"{result['refused']} of its lines were refused")

    async def _carry_out(self, op: _Op) -> dict[str, Any] | None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._owner.link.command(
                    op.envelope, timeout=self._owner.command_timeout
                )
            except CommandFailed as e:
                log.warning("%s: %s failed in the pool: %s", self.key, op.envelope.kind, e)
                if op.envelope.kind == "irc_connect":
                    self._connecting = False
                self._lost(op, str(e))
                return None
            except TimeoutError:
                # Again with the same id: if the first one was carried out, it is not again.
                log.warning(
                    "%s: no pool answered %s (attempt %d of %d)",
                    self.key,
                    op.envelope.kind,
                    attempt,
                    ATTEMPTS,
                )
        if op.channel is not None:
            self._owner.lost_lines += 1
            self._lost(op, "no connection pool answered")
        if op.envelope.kind == "irc_connect":
            self._connecting = False
        return None

    def _lost(self, op: _Op, why: str) -> None:
        """A message the puppet could not say: handed to ``on_lost`` (the bot says it
        instead), so that it is not silently lost."""
        kind = _LINE_KINDS.get(op.envelope.kind)
        if kind is None or op.channel is None or self._owner.on_lost is None:
            return
        text = str(op.envelope.data.get("text") or "")
        try:
            self._owner.on_lost(self.passport, op.channel, kind, text, why)
        except Exception:
            log.exception("Reporting a lost IRC line failed")

    # --- the pool's state and events ---

    def _connected(self, reply: dict[str, Any]) -> None:
        self._connecting = False
        state = reply.get("state") or {}
        if reply.get("adopted"):
            log.info("%s: taken over from pool %s as it is", self.key, state.get("pool"))
        self._apply_state(state)
        if state.get("incarnation") != self._event_seq[0]:
            # Another connection than the one known (a new one, or one taken over that
            # this core had not heard of): what its events told before is in the state.
            self._event_seq = (state.get("incarnation"), int(state.get("seq", 0)))
        early, self._early = self._early, []
        for envelope in early:
            self.apply(envelope)
        if reply.get("adopted") and not self.closed:
            # No Registered or JOIN comes for what it is already: the puppet sends now
            # what it held meanwhile.
            self._emit(TakenOver())

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        if not _newer(state, self._state):
            return
        self._state = dict(state)
        self.pool = state.get("pool") or self.pool
        self.nick = str(state.get("nick") or self.nick)
        self._registered = bool(state.get("registered"))
        self.joined = {str(c).lower() for c in state.get("joined") or ()}
        self.caps = frozenset(str(c) for c in state.get("caps") or ())
        uh = state.get("userhost_len")
        self._userhost_len = (int(uh[0]), int(uh[1])) if uh else None

    def apply(self, envelope: Envelope) -> None:
        """One event of this connection from its pool."""
        state = envelope.data.get("state") or {}
        incarnation, seq = state.get("incarnation"), int(state.get("seq", 0))
        if incarnation != self._event_seq[0]:
            if self._connecting and len(self._early) < 100:
                self._early.append(envelope)  # before the reply that tells the incarnation
            return  # an earlier connection's
        if seq <= self._event_seq[1]:
            return  # delivered again
        self._event_seq = (incarnation, seq)
        self._apply_state(state)
        if envelope.kind == "IRCGone":
            self._on_gone(None, str(envelope.data.get("reason") or "its pool closed it"))
            return
        event = _decode_event(envelope)
        if isinstance(event, IRCEvent):
            self._on_irc(event)
        if event is not None:
            self._emit(event)

    def _on_irc(self, event: IRCEvent) -> None:
        if event.kind is Kind.KICK and event.target:
            self.channels.pop(event.target.lower(), None)
        elif (
            event.kind is Kind.JOIN_FAILED
            and event.target
            and event.params[:1]
            in (
                ("403",),
                ("405",),
            )
        ):
            self.channels.pop(event.target.lower(), None)
        elif event.kind is Kind.JOIN and event.target:
            held = self._held_back.pop(event.target.lower(), [])
            self._ops.extend(held)
            if held:
                self._kick()

    def _on_gone(self, op: _Op | None, reason: str) -> None:
        """The pool lost the connection (stopped, died, lost its lease): open it again."""
        if self.closed:
            return
        log.warning("%s: %s; connecting it again", self.key, reason)
        # Messages for channels wait until the new connection is in them again (the one
        # being sent now waits too if its reply says gone); other commands are over: the
        # new connection gets the wanted nick, and is invited to its channels again.
        waiting = ([op] if op is not None and op.channel else []) + [
            o for o in self._ops if o.channel
        ]
        self._ops = deque(
            o for o in self._ops if not o.channel and o.envelope.kind != "irc_connect"
        )
        for o in waiting:
            assert o.channel is not None
            queue = self._held_back.setdefault(o.channel.lower(), [])
            if len(queue) >= HELD_BACK:
                queue.pop(0)
                self._owner.lost_lines += 1
            # A new id: the pool that answered "gone" is remembered as having done it.
            again = Envelope(
                f"{o.envelope.id}:again", o.envelope.owner, o.envelope.kind, o.envelope.data
            )
            queue.append(_Op(again, o.channel, o.done))
        self._registered = False
        self.joined.clear()
        self._state = None
        self._event_seq = (None, 0)
        self.pool = None  # until a pool has it again
        self._emit(Disconnected(f"connection pool: {reason}", None, 0.0))
        if not self.closed:
            self._connect_op(first=True)

    def _emit(self, event: ConnectionEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            log.exception("IRC event handler failed on %r", event)


def _decode_event(envelope: Envelope) -> ConnectionEvent | None:
    d = envelope.data
    if envelope.kind == "IRCRegistered":
        return Registered(str(d["nick"]), frozenset(d.get("caps") or ()), bool(d.get("reconnect")))
    if envelope.kind == "IRCDisconnected":
        refusal = d.get("refusal")
        return Disconnected(
            str(d.get("reason") or ""),
            Refusal(RefusalKind(refusal["kind"]), str(refusal["message"])) if refusal else None,
            d.get("retry_in"),
        )
    if envelope.kind == "IRCNickChanged":
        return NickChanged(str(d["old"]), str(d["new"]))
    if envelope.kind == "IRCEvent":
        when = d.get("server_time")
        return IRCEvent(
            kind=Kind(d["kind"]),
            source=str(d.get("source") or ""),
            nick=str(d.get("nick") or ""),
            target=d.get("target"),
            text=d.get("text"),
            params=tuple(str(p) for p in d.get("params") or ()),
            tags=dict(d.get("tags") or {}),
            server_time=datetime.datetime.fromisoformat(when) if when else None,
        )
    return None  # IRCSnapshot: state only


class RemoteIRCConnections:
    """The PuppetManager's connections when pools hold them.

    Wire it: ``PuppetManager(..., connector=RemoteIRCConnections(core_link))``; route
    every event envelope for which `owns` is true to `apply` (before the MSN sessions'
    handler); at start call `resync` (or let the pools' ``resync_all`` publish their
    snapshots); call `pool_gone` when a pool is found dead.
    """

    def __init__(self, link: CoreLink, *, command_timeout: float = 60.0) -> None:
        self.link = link
        self.command_timeout = command_timeout
        self.epoch = secrets.token_hex(4)  # command ids never repeat across core restarts
        self.ids = itertools.count(1)
        self.conns: dict[str, RemoteIRCConnection] = {}  # link owner → connection
        # Connections of a previous core that no RemoteIRCConnection stands for yet.
        self.known: dict[str, dict[str, Any]] = {}
        self.lost_lines = 0  # lines no pool took (reported in the log and to on_lost)
        # (passport, channel, line kind, text, why): a message a puppet could not say.
        self.on_lost: LostLine | None = None
        self._found: Callable[[FoundConnection], None] | None = None

    # --- PuppetConnections ---

    def open(
        self,
        passport: str,
        settings: IRCSettings,
        on_event: Callable[[ConnectionEvent], None],
        *,
        msn_nick: str,
    ) -> PuppetConnection:
        key = owner_of(passport)
        old = self.conns.get(key)
        if old is not None and not old.closed:
            old.closed = True  # the puppet replaced it: its pool connection is taken over
        conn = RemoteIRCConnection(
            self, passport, settings, on_event, msn_nick=msn_nick, known=self.known.pop(key, None)
        )
        self.conns[key] = conn
        return conn

    async def release(self, conn: PuppetConnection, reason: str) -> None:
        assert isinstance(conn, RemoteIRCConnection)
        await conn.leave()

    def on_found(self, found: Callable[[FoundConnection], None]) -> None:
        self._found = found
        for state in list(self.known.values()):
            self._tell_found(state)

    def _detach(self, conn: RemoteIRCConnection) -> None:
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]

    # --- from the pools ---

    @staticmethod
    def owns(envelope: Envelope) -> bool:
        return envelope.owner.startswith(OWNER_PREFIX)

    async def apply(self, envelope: Envelope) -> None:
        """An event envelope of a puppet connection (an EventHandler)."""
        conn = self.conns.get(envelope.owner)
        if conn is not None:
            conn.apply(envelope)
            return
        state = envelope.data.get("state")
        if not isinstance(state, dict):
            return
        if envelope.kind == "IRCGone":
            if state.get("incarnation") == (self.known.get(envelope.owner) or {}).get(
                "incarnation"
            ):
                self.known.pop(envelope.owner, None)
            return
        self._learn(envelope.owner, state, found=envelope.kind == "IRCSnapshot")

    def _learn(self, owner: str, state: dict[str, Any], *, found: bool) -> None:
        """A connection of a previous core. Only a snapshot tells it exists now (an
        older event redelivered may be of one that was closed since)."""
        before = self.known.get(owner)
        if before is None and not found:
            return
        if _newer(state, before):
            self.known[owner] = state
        if before is None:
            self._tell_found(state)

    def _tell_found(self, state: dict[str, Any]) -> None:
        owner = str(state.get("owner") or "")
        if self._found is None or not owner.startswith(OWNER_PREFIX):
            return
        names = list(state.get("channels") or ())
        lowers = {n.lower() for n in names}
        names += [c for c in state.get("joined") or () if c.lower() not in lowers]
        self._found(
            FoundConnection(
                passport=owner.removeprefix(OWNER_PREFIX),
                msn_nick=str(state.get("msn_nick") or ""),
                nick=str(state.get("wanted_nick") or state.get("nick") or ""),
                channels=tuple(names),
            )
        )

    async def resync(self) -> int:
        """Ask the pool(s) for every connection they hold; returns how many. (Over Redis
        with several pools, the pools' ``resync_all`` publishes the same snapshots.)"""
        envelope = Envelope(f"irc-resync:{self.epoch}", OWNER_PREFIX + "*", "irc_resync", {})
        reply = await self.link.command(envelope, timeout=self.command_timeout)
        states = [s for s in reply.get("connections") or () if isinstance(s, dict)]
        for state in states:
            owner = str(state.get("owner") or "")
            conn = self.conns.get(owner)
            if conn is not None:
                conn._apply_state(state)
            elif owner.startswith(OWNER_PREFIX):
                self._learn(owner, state, found=True)
        return len(states)

    def pool_gone(self, pool: str) -> int:
        """A pool died: its connections are opened again elsewhere. Returns how many."""
        for owner, state in list(self.known.items()):
            if state.get("pool") == pool:
                del self.known[owner]
        gone = [c for c in self.conns.values() if c.pool == pool and not c.closed]
        for conn in gone:
            conn._on_gone(None, f"connection pool {pool} stopped")
        return len(gone)

    async def close(self) -> None:
        """Leave every connection up in its pool (the core is stopping)."""
        await asyncio.gather(
            *(c.leave() for c in list(self.conns.values())), return_exceptions=True
        )
