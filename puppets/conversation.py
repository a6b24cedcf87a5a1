"""A conversation with one or more contacts that outlives its switchboards.

Servers and clients close idle switchboards (60–300 s), and a 1:1 switchboard is useless
once the other side said BYE. A :class:`Conversation` keeps the people and the order of
outgoing messages, opens a switchboard on demand (``XFR SB`` via ``open_switchboard``,
``USR``, ``CAL`` everyone), holds messages until someone has joined, and closes the
switchboard again when it has been idle for ``idle_timeout``.

Outgoing messages go through one queue served by one task, so messages sent
concurrently reach the server in the order they were sent, across reopenings. Only the
writing is serialized: confirmations (ACK) are awaited by each sender in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import MSNPError, PuppetError
from .event.conversation import (
    ConversationEvent,
    DeliveryResult,
    DeliveryStatus,
    ParticipantJoined,
    ParticipantLeft,
    SwitchboardClosed,
)
from .message import TextFormat, build_nudge, split_text
from .switchboard import PendingDelivery, Switchboard, SwitchboardTicket, normalize_passport

__all__ = ["Conversation"]

log = logging.getLogger("puppets.conversation")

OFFLINE_CODE = 217


BeforeWrite = Callable[[], Awaitable[bool]]
"""Awaited once, just before a message's first byte is written (or it is stored as an
offline message): False withdraws the message. An application that must know after a
crash whether a message may have gone out records that here."""

WITHDRAWN = "withdrawn before it was written"

StoreOffline = Callable[[str, str, BeforeWrite | None], Awaitable[DeliveryResult | None]]
"""(contact, text, before_write): the text stored as an offline message, None when that
is not possible (before_write is awaited first, only when it is)."""


class _Outgoing:
    __slots__ = ("ack", "before_write", "future", "payloads")

    def __init__(
        self,
        payloads: list[bytes],
        ack: str,
        future: asyncio.Future[object],
        before_write: BeforeWrite | None = None,
    ) -> None:
        self.payloads = payloads
        self.ack = ack
        # Resolved by the pump: a DeliveryResult (failed before writing) or a PendingDelivery.
        self.future = future
        self.before_write = before_write


def _once(hook: BeforeWrite) -> BeforeWrite:
    """The hook awaited at most once; later calls repeat its answer."""
    answer: list[bool] = []

    async def once() -> bool:
        if not answer:
            answer.append(await hook())
        return answer[0]

    return once


def _failed(reason: str) -> DeliveryResult:
    return DeliveryResult(DeliveryStatus.FAILED, reason)


async def _done(result: DeliveryResult) -> DeliveryResult:
    return result


class Conversation:
    """Messages to a fixed set of people, over whichever switchboard is current."""

    def __init__(
        self,
        *,
        passport: str,
        protocol: int,
        open_switchboard: Callable[[], Awaitable[SwitchboardTicket]],
        invitees: Iterable[str],
        on_event: Callable[[ConversationEvent], None],
        idle_timeout: float = 180,
        join_timeout: float = 60,
        reply_timeout: float = 30,
        store_offline: StoreOffline | None = None,
    ) -> None:
        self.passport = passport
        # MSNP13+: a 1:1 text that finds its contact offline goes here (as an OIM).
        self._store_offline = store_offline
        self.protocol = protocol
        self.on_event = on_event
        self.idle_timeout = idle_timeout
        self.join_timeout = join_timeout
        self.reply_timeout = reply_timeout
        self._open_switchboard = open_switchboard
        # The people the conversation was started with: its identity, never changes.
        self.key: frozenset[str] = frozenset(normalize_passport(p) for p in invitees if p.strip())
        if not self.key:
            raise ValueError("a conversation needs at least one invitee")
        # Who a new switchboard invites: the key, plus whoever else joined and did not
        # leave. Key members stay even after BYE, so a 1:1 chat reopens to the same person.
        self.participants: set[str] = set(self.key)
        self._sb: Switchboard | None = None
        self._switchboards: set[Switchboard] = set()  # current and older ones still open
        self._watchers: dict[Switchboard, asyncio.Task[None]] = {}
        self._queue: deque[_Outgoing] = deque()
        self._pump_task: asyncio.Task[None] | None = None
        self._attached = asyncio.Event()  # set by attach(): stop waiting for our own JOI
        self._closed = False

    # --- state ---

    @property
    def switchboard(self) -> Switchboard | None:
        """The switchboard messages go to now, if one is open."""
        sb = self._sb
        return sb if sb is not None and not sb.closed else None

    @property
    def closed(self) -> bool:
        return self._closed

    def _usable(self) -> Switchboard | None:
        sb = self._sb
        if sb is not None and not sb.closed and sb.participants:
            return sb
        return None

    # --- sending ---

    async def send_text(
        self,
        text: str,
        fmt: TextFormat | None = None,
        *,
        extra_headers: list[tuple[str, str]] | None = None,
        before_write: BeforeWrite | None = None,
    ) -> DeliveryResult:
        """``extra_headers`` go into every payload (e.g. P4-Context for relayed people);
        ``before_write``: see :data:`BeforeWrite`."""
        payloads = split_text(text, fmt, extra_headers=extra_headers)
        if not payloads:
            return _failed("empty message: nothing to send")
        hook = _once(before_write) if before_write is not None else None
        result = await self.submit(payloads, "A", before_write=hook)
        if (
            result.status is DeliveryStatus.OFFLINE
            and self._store_offline is not None
            and len(self.key) == 1
        ):
            (contact,) = self.key
            stored = await self._store_offline(contact, text, hook)
            if stored is not None:
                return stored
        return result

    async def send_nudge(self) -> DeliveryResult:
        return await self._send([build_nudge()], "A")

    async def send_typing(self) -> None:
        """Typing notice on the current switchboard; never opens one just for this."""
        sb = self._usable()
        if sb is not None:
            with contextlib.suppress(PuppetError):
                await sb.send_typing()

    async def _send(self, payloads: list[bytes], ack: str) -> DeliveryResult:
        return await self.submit(payloads, ack)

    def submit(
        self, payloads: list[bytes], ack: str = "A", *, before_write: BeforeWrite | None = None
    ) -> Awaitable[DeliveryResult]:
        """Queue raw payloads now, in call order; await the result later.

        The P2P layer uses this (ack ``D``) to keep a window of chunks in flight.
        """
        if self._closed:
            return _done(_failed("the conversation is closed"))
        item = _Outgoing(payloads, ack, asyncio.get_running_loop().create_future(), before_write)
        self._queue.append(item)
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(
                self._pump(), name="conversation-pump"
            )
        return self._outcome(item)

    async def _outcome(self, item: _Outgoing) -> DeliveryResult:
        outcome = await item.future
        if isinstance(outcome, DeliveryResult):
            return outcome
        assert isinstance(outcome, PendingDelivery)
        return await outcome.result()

    async def _pump(self) -> None:
        """Write queued messages in order, opening a switchboard when there is none."""
        try:
            while self._queue:
                item = self._queue[0]
                if item.future.done():  # the sender gave up (cancelled)
                    self._queue.popleft()
                    continue
                sb = self._usable()
                if sb is None:
                    opened = await self._open()
                    if isinstance(opened, DeliveryResult):
                        # Everything that waited for this switchboard shares its fate;
                        # the next message tries again.
                        self._fail_queue(opened)
                        continue
                    sb = opened
                self._queue.popleft()
                if item.future.done():
                    continue
                if item.before_write is not None:
                    if not await self._may_write(item):
                        continue
                    item.before_write = None  # answered: not asked again
                    if sb.closed:  # it closed meanwhile: the next one takes the message
                        self._queue.appendleft(item)
                        continue
                try:
                    item.future.set_result(sb.post(item.payloads, item.ack, self.reply_timeout))
                except ValueError as e:
                    item.future.set_result(_failed(str(e)))
        finally:
            self._fail_queue(_failed("the conversation is closed"))

    async def _may_write(self, item: _Outgoing) -> bool:
        """Runs the item's hook (the queue behind it waits: the order stays); False when
        the item is settled without writing."""
        assert item.before_write is not None
        try:
            go = await item.before_write()
        except asyncio.CancelledError:
            if not item.future.done():
                item.future.set_result(_failed("the conversation is closed"))
            raise
        except Exception as e:  # the application's callable: any failure means no write
            log.warning("conversation: the before-write hook failed: %r", e)
            go = False
        if not go and not item.future.done():
            item.future.set_result(_failed(WITHDRAWN))
        return go and not item.future.done()

    def _fail_queue(self, result: DeliveryResult) -> None:
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_result(result)

    async def _open(self) -> Switchboard | DeliveryResult:
        """Open a switchboard, invite everyone and wait for the first of them to join."""
        try:
            ticket = await asyncio.wait_for(self._open_switchboard(), self.reply_timeout)
        except Exception as e:  # the application's callable: any failure means no switchboard
            return _failed(f"could not get a switchboard: {e or type(e).__name__}")
        try:
            sb = await Switchboard.call(
                ticket,
                passport=self.passport,
                protocol=self.protocol,
                on_event=self.handle_event,
                timeout=self.reply_timeout,
            )
        except (PuppetError, OSError, TimeoutError, ValueError) as e:
            return _failed(f"could not join the switchboard: {e or type(e).__name__}")
        if self._closed:
            await sb.leave("conversation closed")
            return _failed("the conversation is closed")
        self._adopt(sb)
        invitees = sorted(self.participants)
        errors = await asyncio.gather(*(self._invite(sb, p) for p in invitees))
        ringing = [p for p, err in zip(invitees, errors, strict=True) if err is None]
        if not ringing:
            await sb.leave("nobody could be invited")
            if all(isinstance(e, MSNPError) and e.code == OFFLINE_CODE for e in errors):
                who = ", ".join(invitees)
                verb = "is" if len(invitees) == 1 else "are"
                return DeliveryResult(DeliveryStatus.OFFLINE, f"{who} {verb} offline")
            return _failed(f"could not invite anyone: {errors[0]}")
        self._attached.clear()
        if not await self._wait_any_joined(sb, ringing):
            await sb.leave("nobody joined")
            other = self._usable()
            if other is not None:
                return other  # they invited us meanwhile: talk there (both sides called)
            return DeliveryResult(
                DeliveryStatus.NO_ANSWER, f"nobody joined within {self.join_timeout:g} s"
            )
        self._watch_idle(sb)
        return sb

    async def _invite(self, sb: Switchboard, passport: str) -> PuppetError | None:
        try:
            await sb.invite(passport, self.reply_timeout)
        except PuppetError as e:
            log.debug("conversation: CAL %s failed: %s", passport, e)
            return e
        return None

    async def _wait_any_joined(self, sb: Switchboard, passports: list[str]) -> bool:
        """True when one of ``passports`` joined; False on timeout, close or attach()."""
        loop = asyncio.get_running_loop()
        joins = {loop.create_task(sb.wait_joined(p, self.join_timeout)) for p in passports}
        attached = loop.create_task(self._attached.wait())
        try:
            pending: set[asyncio.Task[Any]] = {*joins, attached}
            while joins & pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.result() for task in done if task is not attached):
                    return True
                if attached in done:
                    return False
            return False
        finally:
            for task in (*joins, attached):
                task.cancel()

    # --- switchboards ---

    def attach(self, sb: Switchboard) -> None:
        """Make a switchboard we answered (RNG) this conversation's current one.

        An older switchboard stays open (messages on it are still relayed) until it
        idles out or its people leave.
        """
        if self._closed:
            raise RuntimeError("the conversation is closed")
        if sb.closed:
            return
        sb.on_event = self.handle_event
        self.participants.update(sb.participants)
        self._adopt(sb)
        self._watch_idle(sb)
        self._attached.set()

    def _adopt(self, sb: Switchboard) -> None:
        self._switchboards.add(sb)
        self._sb = sb

    def _watch_idle(self, sb: Switchboard) -> None:
        if sb not in self._watchers:
            self._watchers[sb] = asyncio.get_running_loop().create_task(
                self._idle_watch(sb), name="conversation-idle"
            )

    async def _idle_watch(self, sb: Switchboard) -> None:
        loop = asyncio.get_running_loop()
        while not sb.closed:
            remaining = sb.last_activity + self.idle_timeout - loop.time()
            if remaining <= 0:
                log.debug("conversation: closing idle switchboard")
                await sb.leave("idle")
                return
            await sb.wait_closed(remaining)

    def handle_event(self, event: ConversationEvent) -> None:
        """Take an event from one of our switchboards: track people and relay it on.

        Attached switchboards call this themselves; it is public so that events a
        switchboard produced before :meth:`attach` can be handed over too.
        """
        sb = event.switchboard
        if isinstance(event, ParticipantJoined):
            self.participants.add(event.passport)
        elif isinstance(event, ParticipantLeft):
            # Leaving a group chat drops a guest; a key member stays invited, and being
            # left alone closes the switchboard (the Switchboard does that itself).
            if sb.participants and event.passport not in self.key:
                self.participants.discard(event.passport)
        elif isinstance(event, SwitchboardClosed):
            self._switchboards.discard(sb)
            watcher = self._watchers.pop(sb, None)
            if watcher is not None and watcher is not asyncio.current_task():
                watcher.cancel()
            if self._sb is sb:
                self._sb = None
        try:
            self.on_event(
                dataclasses.replace(event, conversation=self, people=frozenset(self.participants))
            )
        except Exception:
            log.exception("conversation: event handler failed on %s", type(event).__name__)

    async def close(self) -> None:
        """Leave every switchboard; queued messages fail. The conversation is done."""
        self._closed = True
        pump = self._pump_task
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self._fail_queue(_failed("the conversation is closed"))
        for sb in list(self._switchboards):
            await sb.leave("conversation closed")
        for watcher in list(self._watchers.values()):
            watcher.cancel()
        self._watchers.clear()

    def __repr__(self) -> str:
        return f"<Conversation with {sorted(self.participants)} sb={self._sb!r}>"
