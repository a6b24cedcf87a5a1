"""One switchboard (SB) session: a single MSNP conversation link.

Open one by calling (``USR`` with the cookie from ``XFR SB``, then ``CAL`` invitees) or by
answering an ``RNG`` (``ANS`` → ``IRO``… → ``ANS OK``). Incoming ``MSG``/``JOI``/``BYE``
become typed events (:mod:`puppets.event.conversation`).

Delivery: messages go out as ``MSG t A`` by default and wait for ``ACK``/``NAK``; no answer
within the timeout is ``NO_ANSWER``. ``N`` waits a short grace period for a ``NAK``
(servers in the wild never send one) and then counts as ``SENT``; ``U`` is ``SENT`` as
soon as it is written. Payloads are written synchronously in call order, so concurrent
sends on one switchboard reach the server in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .command import Command, decode_arg
from .connection import Connection
from .errors import ConnectionLost, MSNPError, ProtocolError, ReplyTimeout
from .event.conversation import (
    ConversationEvent,
    DatacastReceived,
    DeliveryResult,
    DeliveryStatus,
    EmoticonsAnnounced,
    InvitationReceived,
    MessageReceived,
    NudgeReceived,
    OwnMessageFromOtherEndpoint,
    P2PPayloadReceived,
    ParticipantJoined,
    ParticipantLeft,
    SwitchboardClosed,
    TypingReceived,
    UnknownPayloadReceived,
)
from .message import (
    MAX_PAYLOAD,
    ChunkAssembler,
    Datacast,
    Invitation,
    Nudge,
    TextFormat,
    TextMessage,
    TypingNotice,
    UnknownPayload,
    build_nudge,
    build_typing,
    parse_message,
    parse_payload,
    split_text,
)
from .msnobject import parse_emoticon_list

__all__ = ["PendingDelivery", "Switchboard", "SwitchboardTicket", "normalize_passport"]

log = logging.getLogger("puppets.switchboard")

DEFAULT_TIMEOUT = 30.0
NAK_GRACE = 1.0  # seconds to wait for a NAK to an "N" message before calling it sent
ACK_MODES = frozenset({"U", "N", "A", "D"})


def normalize_passport(passport: str) -> str:
    """Lower-case, without the ``;{machine-guid}`` endpoint suffix MSNP16+ adds."""
    return passport.split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class SwitchboardTicket:
    """Where and how to join a switchboard: from ``XFR SB`` (call) or ``RNG`` (answer)."""

    host: str
    port: int
    cookie: str
    session_id: str | None = None  # RNG only; may be hex, so kept as text
    inviter: str | None = None
    inviter_nick: str | None = None

    def __repr__(self) -> str:  # the cookie is a credential for this session
        return (
            f"SwitchboardTicket(host={self.host!r}, port={self.port}, "
            f"session_id={self.session_id!r}, inviter={self.inviter!r})"
        )


class PendingDelivery:
    """The replies still owed for payloads already written; awaited by :meth:`result`."""

    __slots__ = ("_ack", "_conn", "_deadline", "_failure", "_waiters")

    def __init__(
        self,
        conn: Connection | None,
        ack: str,
        waiters: list[tuple[int, asyncio.Future[Command]]],
        deadline: float,
        failure: DeliveryResult | None = None,
    ) -> None:
        self._conn = conn
        self._ack = ack
        self._waiters = waiters
        self._deadline = deadline
        self._failure = failure

    async def result(self) -> DeliveryResult:
        conn = self._conn
        if conn is None or self._failure is not None:
            return self._failure or DeliveryResult(DeliveryStatus.FAILED, "not connected")
        if not conn.flushed:  # wait_for makes a task: only when there is a wait
            loop = asyncio.get_running_loop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.drain(), max(0.0, self._deadline - loop.time()))
        if not self._waiters:  # U: nothing comes back
            if conn.closed:
                return _lost(conn)
            return DeliveryResult(DeliveryStatus.SENT, "sent without confirmation")
        results = [await self._one(conn, trid, fut) for trid, fut in self._waiters]
        return DeliveryResult.worst(results)

    async def _one(
        self, conn: Connection, trid: int, fut: asyncio.Future[Command]
    ) -> DeliveryResult:
        remaining = max(0.0, self._deadline - asyncio.get_running_loop().time())
        try:
            reply = await conn.wait_reply(trid, fut, remaining)
        except ReplyTimeout:
            if self._ack == "N":
                return DeliveryResult(DeliveryStatus.SENT, "no NAK came")
            return DeliveryResult(
                DeliveryStatus.NO_ANSWER, "the server did not confirm the message in time"
            )
        except MSNPError as e:
            return DeliveryResult(DeliveryStatus.NAKED, f"the server refused it: {e}")
        except (ConnectionLost, ProtocolError) as e:
            return DeliveryResult(DeliveryStatus.FAILED, f"switchboard lost: {e}")
        if reply.name == "NAK":
            return DeliveryResult(DeliveryStatus.NAKED, "the server could not deliver it (NAK)")
        return DeliveryResult(DeliveryStatus.ACKED, "delivered")


def _lost(conn: Connection) -> DeliveryResult:
    why = conn.close_reason or ("closed" if conn.closed else "closing")
    return DeliveryResult(DeliveryStatus.FAILED, f"switchboard lost: {why}")


class Switchboard:
    """A switchboard session. Create with :meth:`call` or :meth:`answer`."""

    def __init__(
        self,
        ticket: SwitchboardTicket,
        *,
        passport: str,
        protocol: int,
        on_event: Callable[[ConversationEvent], None],
    ) -> None:
        self.ticket = ticket
        self.passport = passport
        self.protocol = protocol
        self.on_event = on_event  # settable: a Conversation takes over an answered switchboard
        self.nick = passport
        self.session_id = ticket.session_id
        # passport (normalized) -> nick (decoded); never includes ourselves
        self.participants: dict[str, str] = {}
        self.nak_grace = NAK_GRACE
        self._conn: Connection | None = None
        self._chunks = ChunkAssembler()
        self._join_waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self._closed_event = asyncio.Event()
        self._close_reason: str | None = None  # set when we end it, for SwitchboardClosed
        self._ever_joined = False
        self._leaving = False  # OUT is on its way: send nothing more
        self._opened = False  # no SwitchboardClosed for a switchboard that never opened
        self._tasks: set[asyncio.Task[None]] = set()
        self._anyone: asyncio.Future[None] | None = None  # see wait_anyone
        self.last_activity = asyncio.get_running_loop().time()

    # --- opening ---

    @classmethod
    async def call(
        cls,
        ticket: SwitchboardTicket,
        *,
        passport: str,
        protocol: int,
        on_event: Callable[[ConversationEvent], None],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Switchboard:
        """Join a switchboard we asked for (``XFR SB``); invite people with :meth:`invite`."""
        sb = cls(ticket, passport=passport, protocol=protocol, on_event=on_event)
        await sb._open(timeout, "USR", passport, ticket.cookie)
        return sb

    @classmethod
    async def answer(
        cls,
        ticket: SwitchboardTicket,
        *,
        passport: str,
        protocol: int,
        on_event: Callable[[ConversationEvent], None],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Switchboard:
        """Join a switchboard we were invited to (``RNG``); the roster comes as ``IRO``."""
        if ticket.session_id is None:
            raise ValueError("answering a switchboard needs the session id from RNG")
        sb = cls(ticket, passport=passport, protocol=protocol, on_event=on_event)
        await sb._open(timeout, "ANS", passport, ticket.cookie, ticket.session_id)
        return sb

    async def _open(self, timeout: float, verb: str, *args: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._conn = await Connection.open(
            self.ticket.host,
            self.ticket.port,
            timeout=timeout,
            on_command=self._on_command,
            on_close=self._on_close,
            name="sb",
        )
        self._conn.start()
        try:
            reply = await self._conn.request(
                verb, *args, expect={verb}, timeout=max(0.1, deadline - loop.time())
            )
        except BaseException:
            self._close_reason = f"{verb} failed"
            await self._conn.close()
            raise
        if verb == "USR" and len(reply.args) >= 3 and reply.args[0] == "OK":
            self.nick = decode_arg(reply.args[2])
        self._opened = True
        self._touch()
        log.debug("sb: joined %s:%s with %s", self.ticket.host, self.ticket.port, verb)

    # --- state ---

    @property
    def closed(self) -> bool:
        return self._conn is None or self._conn.closed or self._leaving

    def _touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the link ends; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._closed_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- inviting ---

    async def invite(self, passport: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """``CAL`` someone in. Returns at ``RINGING``; does not wait for them to join.

        Raises :class:`MSNPError` (217 offline, 208 bad handle, 215 already there, 713 too
        many), :class:`ReplyTimeout` or :class:`ConnectionLost`.
        """
        conn = self._require()
        reply = await conn.request("CAL", passport, expect={"CAL"}, timeout=timeout)
        self._touch()
        if len(reply.args) >= 2 and reply.args[0] == "RINGING":
            self.session_id = reply.args[1]

    async def wait_joined(self, passport: str, timeout: float) -> bool:
        """True once ``passport`` is in the switchboard; False on timeout or close."""
        key = normalize_passport(passport)
        if key in self.participants:
            return True
        if self.closed:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._join_waiters.setdefault(key, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            waiters = self._join_waiters.get(key)
            if waiters and fut in waiters:
                waiters.remove(fut)

    # --- sending ---

    async def wait_anyone(self, timeout: float) -> bool:
        """True once anyone but ourselves is in the switchboard; False on timeout/close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.participants and not self.closed:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._anyone = loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._anyone), left)
        return bool(self.participants)

    def _require(self) -> Connection:
        if self._conn is None or self.closed:
            raise ConnectionLost("sb: the switchboard is closed")
        return self._conn

    def post(
        self, payloads: list[bytes], ack: str = "A", timeout: float = DEFAULT_TIMEOUT
    ) -> PendingDelivery:
        """Write ``payloads`` now, in order, without yielding; await ``.result()`` after.

        The split lets a caller keep its own ordering lock only while writing, not while
        the server confirms.
        """
        if ack not in ACK_MODES:
            raise ValueError(f"unknown MSG acknowledgement mode {ack!r}")
        for payload in payloads:
            if len(payload) > MAX_PAYLOAD:
                raise ValueError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
        loop = asyncio.get_running_loop()
        # An "N" message counts as sent once the grace period passed without a NAK.
        wait = min(timeout, self.nak_grace) if ack == "N" else timeout
        deadline = loop.time() + wait
        conn = self._conn
        if not payloads:
            empty = DeliveryResult(DeliveryStatus.FAILED, "empty message: nothing to send")
            return PendingDelivery(conn, ack, [], deadline, empty)
        if conn is None or self.closed:
            failure = _lost(conn) if conn is not None else None
            return PendingDelivery(conn, ack, [], deadline, failure)
        waiters: list[tuple[int, asyncio.Future[Command]]] = []
        try:
            for payload in payloads:
                trid = conn.next_trid()
                if ack != "U":  # A and D get ACK or NAK; N only a NAK, on failure
                    waiters.append((trid, conn.expect_reply(trid, "MSG", {"ACK", "NAK"})))
                conn.send(Command("MSG", trid, [ack], payload))
        except Exception as e:  # defensive: the link was checked open just above
            for _, fut in waiters:
                fut.cancel()
            fail = DeliveryResult(DeliveryStatus.FAILED, f"switchboard lost: {e}")
            return PendingDelivery(conn, ack, [], deadline, fail)
        self._touch()
        return PendingDelivery(conn, ack, waiters, deadline)

    async def send_payload(
        self, payload: bytes, ack: str = "A", timeout: float = DEFAULT_TIMEOUT
    ) -> DeliveryResult:
        """Send one ``MSG t ack len`` payload (at most MAX_PAYLOAD bytes)."""
        return await self.post([payload], ack, timeout).result()

    async def send_text(
        self, text: str, fmt: TextFormat | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> DeliveryResult:
        """Send text, split into as many payloads as needed; the result of the worst part."""
        return await self.post(split_text(text, fmt), "A", timeout).result()

    async def send_typing(self) -> None:
        """A typing notice (``U``, no reply). Does nothing on a closed switchboard."""
        if not self.closed:
            self.post([build_typing(normalize_passport(self.passport))], "U")
            if self._conn is not None:
                await self._conn.drain()

    async def send_nudge(self, timeout: float = DEFAULT_TIMEOUT) -> DeliveryResult:
        return await self.post([build_nudge()], "A", timeout).result()

    async def leave(self, reason: str = "left") -> None:
        """Say ``OUT`` and close the link."""
        if self._conn is None:
            return
        if not self._conn.closed and self._close_reason is None:
            self._close_reason = reason
        self._leaving = True
        await self._conn.close(farewell=Command("OUT"))

    # --- receiving ---

    def _emit(self, event: ConversationEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            log.exception("sb: event handler failed on %s", type(event).__name__)

    def _on_command(self, cmd: Command) -> None:
        self._touch()
        handler = _HANDLERS.get(cmd.name)
        if handler is None:
            if cmd.is_error:
                log.debug("sb: unsolicited error %s", cmd.name)
            else:
                log.debug("sb: ignoring %s", cmd.name)
            return
        handler(self, cmd)

    def _on_iro(self, cmd: Command) -> None:
        # IRO t index count email nick [caps]
        if len(cmd.args) < 3:
            log.debug("sb: short IRO ignored")
            return
        passport = normalize_passport(cmd.args[2])
        nick = decode_arg(cmd.args[3]) if len(cmd.args) > 3 else passport
        if passport and passport != normalize_passport(self.passport):
            self.participants[passport] = nick
            self._ever_joined = True
            self._wake_joiners(passport, True)

    def _on_joi(self, cmd: Command) -> None:
        # JOI email nick [caps]
        if not cmd.args:
            log.debug("sb: JOI without arguments ignored")
            return
        passport = normalize_passport(cmd.args[0])
        if not passport or passport == normalize_passport(self.passport):
            return
        nick = decode_arg(cmd.args[1]) if len(cmd.args) > 1 else passport
        self.participants[passport] = nick
        self._ever_joined = True
        self._wake_joiners(passport, True)
        self._emit(ParticipantJoined(passport, nick, switchboard=self))

    def _on_bye(self, cmd: Command) -> None:
        # BYE email [1]
        if not cmd.args:
            log.debug("sb: BYE without arguments ignored")
            return
        passport = normalize_passport(cmd.args[0])
        if passport == normalize_passport(self.passport):
            return  # another endpoint of our own account (MSNP16+) left
        self.participants.pop(passport, None)
        timed_out = len(cmd.args) > 1 and cmd.args[1] == "1"
        self._emit(ParticipantLeft(passport, timed_out, switchboard=self))
        if self._ever_joined and not self.participants and not self.closed:
            # Alone on a switchboard: nobody can read what we send. Close it; the
            # conversation opens a new one (and re-invites) on its next message.
            self._close_reason = "everyone else left"
            self._leaving = True
            task = asyncio.get_running_loop().create_task(self.leave("everyone else left"))
            self._tasks.add(task)
            task.add_done_callback(self._left)

    def _left(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)  # and its outcome read: none ends "never retrieved"
        if not task.cancelled() and task.exception() is not None:
            log.info("sb: leaving failed: %s", task.exception())

    def _on_msg(self, cmd: Command) -> None:
        # MSG email nick len
        if len(cmd.args) < 1 or cmd.payload is None:
            log.debug("sb: malformed MSG ignored")
            return
        sender = normalize_passport(cmd.args[0])
        nick = decode_arg(cmd.args[1]) if len(cmd.args) > 1 else sender
        if sender == normalize_passport(self.passport):
            self._on_own_msg(cmd)
            return
        if sender in self.participants:
            self.participants[sender] = nick
        special = _p2p_or_emoticons(sender, cmd.payload, self)
        if special is not None:
            self._emit(special)
            return
        parsed = parse_payload(cmd.payload, sender=sender, assembler=self._chunks)
        if parsed is None:
            return  # one chunk of a longer message; the rest is still on its way
        event: ConversationEvent
        if isinstance(parsed, TextMessage):
            event = MessageReceived(sender, nick, parsed, switchboard=self)
        elif isinstance(parsed, TypingNotice):
            event = TypingReceived(sender, switchboard=self)
        elif isinstance(parsed, Nudge):
            event = NudgeReceived(sender, switchboard=self)
        elif isinstance(parsed, Datacast):
            event = DatacastReceived(sender, parsed, switchboard=self)
        elif isinstance(parsed, Invitation):
            event = InvitationReceived(sender, parsed, switchboard=self)
        elif isinstance(parsed, UnknownPayload):
            event = UnknownPayloadReceived(sender, parsed.content_type, switchboard=self)
        else:  # a notification-server payload (profile, mail) has no business here
            content_type = parse_message(cmd.payload).content_type
            event = UnknownPayloadReceived(sender, content_type, switchboard=self)
        self._emit(event)

    def _on_own_msg(self, cmd: Command) -> None:
        """MSNP16+: a message from one of our own other endpoints in this switchboard."""
        assert cmd.payload is not None
        endpoint = cmd.args[0].partition(";")[2]
        sender = normalize_passport(cmd.args[0])
        parsed = parse_payload(cmd.payload, sender=sender, assembler=self._chunks)
        if isinstance(parsed, TextMessage):
            self._emit(OwnMessageFromOtherEndpoint(endpoint, parsed, switchboard=self))
        # Typing and other control messages of our own endpoints mean nothing here.

    def _wake_joiners(self, passport: str, joined: bool) -> None:
        if self._anyone is not None and not self._anyone.done():
            self._anyone.set_result(None)
        for fut in self._join_waiters.pop(passport, []):
            if not fut.done():
                fut.set_result(joined)

    def _on_close(self, error: BaseException | None) -> None:
        for passport in list(self._join_waiters):
            self._wake_joiners(passport, False)
        self._closed_event.set()
        if self._close_reason is not None:
            reason = self._close_reason
        elif error is not None:
            reason = str(error)
        else:
            reason = "closed"
        log.debug("sb: closed: %s", reason)
        if self._opened:
            self._emit(SwitchboardClosed(reason, error, switchboard=self))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Switchboard {state} session={self.session_id} with {sorted(self.participants)}>"


_P2P_TYPE = b"application/x-msnmsgrp2p"
_EMOTICON_TYPES = {"text/x-mms-emoticon": False, "text/x-mms-animemoticon": True}


def _p2p_or_emoticons(sender: str, payload: bytes, sb: Switchboard) -> ConversationEvent | None:
    """P2P frames and emoticon lists, which the text parsers have no use for."""
    head = payload[:200].lower()
    if _P2P_TYPE in head:
        msg = parse_message(payload)
        if msg.content_type == _P2P_TYPE.decode():
            return P2PPayloadReceived(sender, payload, switchboard=sb)
    elif b"x-mms-" in head:
        msg = parse_message(payload)
        animated = _EMOTICON_TYPES.get(msg.content_type)
        if animated is not None:
            body = msg.body.decode("utf-8", "replace")
            return EmoticonsAnnounced(sender, parse_emoticon_list(body), animated, switchboard=sb)
    return None


_HANDLERS: dict[str, Callable[[Switchboard, Command], None]] = {
    "IRO": Switchboard._on_iro,
    "JOI": Switchboard._on_joi,
    "BYE": Switchboard._on_bye,
    "MSG": Switchboard._on_msg,
}
