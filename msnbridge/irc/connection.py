"""One IRC client connection that stays up: registration (CAP, SASL, nick collisions),
a paced send queue, ping timeout, and reconnection with backoff that restores the nick
and channels. Everything runs in the caller's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from irc.client_aio import AioReactor
from irc.features import FeatureSet

from . import lines
from .backoff import Backoff, ReconnectScheduler
from .capabilities import CapNegotiator
from .events import ConnectionEvent, Disconnected, Registered
from .incoming import CTCP_ACTION, IncomingMixin
from .refusal import Refusal, RefusalKind
from .sendqueue import OverflowCallback, Priority, SendQueue
from .session import Session
from .settings import IRCSettings
from .transport import BridgeAioConnection

log = logging.getLogger(__name__)


class IRCRefusedError(Exception):
    """The server refused us in a way configured as final (see ``final_refusals``)."""

    def __init__(self, refusal: Refusal):
        super().__init__(f"{refusal.kind.value}: {refusal.message}")
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class SendResult:
    queued: int  # lines queued
    refused: int  # lines the full queue refused (each also reported to on_overflow)
    truncated: bool  # the message had more lines than max_lines_per_message

    @property
    def ok(self) -> bool:
        return self.refused == 0 and not self.truncated


def message_bodies(
    nick: str,
    wanted_nick: str,
    userhost_len: tuple[int, int] | None,
    command: str,
    target: str,
    text: str,
    max_lines: int,
    *,
    ctcp: str | None = None,
) -> tuple[list[str], bool]:
    """The bodies ``text`` is cut into so that every line fits what receivers get, and
    whether lines past ``max_lines`` were dropped. A connection held by a pool is cut
    the same way on both sides (``msnbridge.pools.remote_irc``)."""
    user_len, host_len = userhost_len or (lines.DEFAULT_USER_LEN, lines.DEFAULT_HOST_LEN)
    prefix = lines.message_prefix_length(
        nick, command, target, user_len=user_len, host_len=host_len
    )
    extra = len(ctcp) + 3 if ctcp else 0  # \x01ACTION …\x01
    # Queued lines may go out after we regain a longer wanted nick: budget for it.
    extra += max(0, len(wanted_nick) - len(nick))
    return lines.split_message(text, lines.payload_budget(prefix, extra), max_lines)


class IRCConnection(IncomingMixin):
    """Keeps one nick connected to one IRC network.

    ``on_event`` is called synchronously, in order, for every :data:`ConnectionEvent`;
    it must not block. ``scheduler`` should be shared by all connections of the bridge
    (it caps concurrent reconnections); without one, this connection gets its own.
    """

    def __init__(
        self,
        settings: IRCSettings,
        on_event: Callable[[ConnectionEvent], None],
        *,
        scheduler: ReconnectScheduler | None = None,
        on_overflow: OverflowCallback | None = None,
    ):
        self.settings = settings
        self.on_event = on_event
        self.scheduler = scheduler or ReconnectScheduler()
        self.queue = SendQueue(
            rate=settings.rate,
            burst=settings.burst,
            bytes_per_token=settings.bytes_per_token,
            maxsize=settings.queue_size,
            on_overflow=on_overflow,
        )
        self.backoff = Backoff(
            settings.backoff_initial,
            settings.backoff_max,
            jitter=settings.backoff_jitter,
            stable_after=settings.backoff_stable,
        )
        self.wanted_nick = settings.nick
        self.nick = settings.nick
        # Wanted channels: lower-case name → (name as given, key).
        self.channels: dict[str, tuple[str, str | None]] = {}
        self.joined: set[str] = set()  # lower-case
        self.features = FeatureSet()
        self.caps: frozenset[str] = frozenset()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._userhost_len: tuple[int, int] | None = None
        self._session: Session | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._sessions = 0
        self._next_delay: float | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"irc:{self.wanted_nick}")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until registered (and rejoined); raises :class:`IRCRefusedError` when the
        server refused us for good."""
        await asyncio.wait_for(asyncio.shield(self.ready), timeout)

    @property
    def registered(self) -> bool:
        s = self._session
        return s is not None and s.registered.done() and not s.ended.done()

    async def close(self, reason: str = "", flush_timeout: float = 2.0) -> None:
        """Send what is queued (for up to ``flush_timeout`` s), QUIT and stop reconnecting."""
        self._closing = True
        self._wake.set()
        session = self._session
        if session and self.registered:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.wait_empty(), flush_timeout)
            session.conn.disconnect(reason or "Closing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(session.ended), 2.0)
        if session:
            session.end("closed")
        if self._runner:
            # The runner notices the end (Disconnected event) and stops; a connect still
            # in progress is cut short.
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), 2.0)
            except TimeoutError:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
        if not self.ready.done():
            self.ready.set_exception(ConnectionAbortedError("IRC connection closed"))
            self.ready.exception()

    # ---- ISUPPORT ------------------------------------------------------------------------

    @property
    def nicklen(self) -> int:
        return int(getattr(self.features, "nicklen", 0) or max(9, len(self.wanted_nick)))

    @property
    def channellen(self) -> int:
        return int(getattr(self.features, "channellen", 0) or 50)

    @property
    def chantypes(self) -> str:
        return str(getattr(self.features, "chantypes", "") or "#&")

    def is_channel(self, target: str) -> bool:
        return bool(target) and target[0] in self.chantypes

    # ---- sending -------------------------------------------------------------------------

    def send_raw(
        self, line: str, priority: Priority = Priority.CONTROL, target: str | None = None
    ) -> bool:
        """Queue one raw line (no CR/LF). False when the queue is full."""
        if "\r" in line or "\n" in line or "\0" in line:
            raise ValueError("an IRC line cannot contain CR, LF or NUL")
        return self.queue.put(line, priority, target)

    def privmsg(
        self, target: str, text: str, *, tags: Mapping[str, str | None] | None = None
    ) -> SendResult:
        return self._message("PRIVMSG", target, text, tags=tags)

    def notice(self, target: str, text: str) -> SendResult:
        return self._message("NOTICE", target, text)

    def action(self, target: str, text: str) -> SendResult:
        return self._message("PRIVMSG", target, text, ctcp=CTCP_ACTION)

    def tagmsg(self, target: str, tags: Mapping[str, str | None]) -> bool:
        """Send tags alone (e.g. ``{"+typing": "active"}``); False when the server does
        not do message-tags (or the queue is full)."""
        if "message-tags" not in self.caps:
            return False
        return self.queue.put(
            f"@{lines.format_tags(tags)} TAGMSG {target}", Priority.MESSAGE, target
        )

    @property
    def relaymsg_separators(self) -> str | None:
        """The ``draft/relaymsg`` cap's value (nick separators; "" when it has none), or
        None when the server did not grant the cap."""
        if "draft/relaymsg" not in self.caps or self._session is None:
            return None
        return self._session.caps.offered.get("draft/relaymsg") or ""

    def relaymsg(
        self, channel: str, name: str, text: str, *, action: bool = False
    ) -> SendResult | None:
        """Say ``text`` in ``channel`` under a spoofed nick made from ``name`` (draft/relaymsg);
        None when the server does not offer it (the caller relays with a prefix instead)."""
        separators = self.relaymsg_separators
        if separators is None:
            return None
        nick = lines.relaymsg_nick(name, separators)
        relayed, truncated = lines.relaymsg_lines(
            channel, nick, text, self.settings.max_lines_per_message, action=action
        )
        queued = sum(self.queue.put(line, Priority.MESSAGE, channel) for line in relayed)
        return SendResult(queued, len(relayed) - queued, truncated)

    def _message(
        self,
        command: str,
        target: str,
        text: str,
        *,
        ctcp: str | None = None,
        tags: Mapping[str, str | None] | None = None,
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
        tag_prefix = ""
        if tags and "message-tags" in self.caps:
            tag_prefix = f"@{lines.format_tags(tags)} "
        queued = refused = 0
        for body in bodies:
            if ctcp:
                body = f"\x01{ctcp} {body}\x01"
            if self.queue.put(f"{tag_prefix}{command} {target} :{body}", Priority.MESSAGE, target):
                queued += 1
            else:
                refused += 1
        return SendResult(queued, refused, truncated)

    def join(self, channel: str, key: str | None = None) -> None:
        """Join ``channel`` now (or on connect) and after every reconnection."""
        self.channels[channel.lower()] = (channel, key)
        if self.registered:  # otherwise registration (re)joins every wanted channel
            self._send_join(channel, key)

    def part(self, channel: str, reason: str = "") -> int:
        """Leave ``channel``; lines still queued for it are dropped. Returns how many."""
        self.channels.pop(channel.lower(), None)
        purged = self.queue.purge(channel)
        if purged:
            log.info("dropped %d queued lines for %s on PART", len(purged), channel)
        self.queue.put(f"PART {channel}" + (f" :{reason}" if reason else ""), Priority.CONTROL)
        return len(purged)

    def set_nick(self, nick: str) -> None:
        """Change the wanted nick (kept across reconnections)."""
        self.wanted_nick = nick
        if self.registered:
            self.queue.put(f"NICK {nick}", Priority.CONTROL)

    def invite(self, nick: str, channel: str) -> bool:
        return self.queue.put(f"INVITE {nick} {channel}", Priority.CONTROL)

    def kick(self, channel: str, nick: str, reason: str = "") -> bool:
        return self.queue.put(
            f"KICK {channel} {nick} :{lines.clean_text(reason)}", Priority.CONTROL
        )

    def mode(self, target: str, *args: str) -> bool:
        return self.queue.put(" ".join(("MODE", target, *args)), Priority.CONTROL)

    def topic(self, channel: str, text: str) -> bool:
        return self.queue.put(
            f"TOPIC {channel} :{lines.split_lines(text)[0] if text else ''}", Priority.CONTROL
        )

    def _send_join(self, channel: str, key: str | None) -> None:
        self.queue.put(f"JOIN {channel}" + (f" {key}" if key else ""), Priority.CONTROL)

    # ---- the reconnect loop --------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._reconnect_loop()
        finally:
            if self._session is not None:  # cancelled mid-session: stop its tasks
                self._session.end("closed")
                for task in self._session.tasks:
                    task.cancel()

    async def _reconnect_loop(self) -> None:
        while not self._closing:
            session: Session | None = None
            try:
                async with self.scheduler.slot():
                    session = await self._connect()
                    await self._await_registration(session)
            except (OSError, TimeoutError) as e:
                if session is None:
                    refusal = Refusal(RefusalKind.NETWORK, str(e) or type(e).__name__)
                    self._after_session(None, f"connect failed: {refusal.message}", refusal)
                else:
                    refusal = Refusal(RefusalKind.OTHER, "registration timed out")
                    session.end(refusal.message, refusal)
            if session is not None:
                if not session.ended.done():
                    await self._on_registered(session)
                    await session.ended
                self._after_session(session, session.reason or "connection lost", session.refusal)
            if self._closing:
                break
            await self._sleep_backoff()

    async def _sleep_backoff(self) -> None:
        # The Disconnected event has already been sent with this delay.
        delay = self._next_delay
        if delay is None:
            self._closing = True
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    def _after_session(self, session: Session | None, reason: str, refusal: Refusal | None) -> None:
        if session is not None:
            for task in session.tasks:
                task.cancel()
            if session.motd_timer:
                session.motd_timer.cancel()
            self.backoff.disconnected()
        self._session = None
        self.joined.clear()
        # PONGs and registration lines belong to the dead connection; messages wait.
        self.queue.purge_priorities((Priority.PONG, Priority.REGISTRATION))
        self.queue.set_open(Priority.REGISTRATION)
        final = refusal is not None and refusal.kind in self.settings.final_refusals
        if self._closing or final:
            self._next_delay = None
        else:
            self._next_delay = self.backoff.next_delay()
        if self.ready.done():
            self.ready = asyncio.get_running_loop().create_future()
        if final and refusal is not None:
            self.ready.set_exception(IRCRefusedError(refusal))
            self.ready.exception()  # mark retrieved: the caller may never wait on it
        log.info(
            "IRC %s disconnected: %s (retry in %s)", self.wanted_nick, reason, self._next_delay
        )
        self._emit(Disconnected(reason, refusal, self._next_delay))

    async def _connect(self) -> Session:
        s = self.settings
        ssl_context: ssl.SSLContext | None = None
        if s.tls:
            ssl_context = ssl.create_default_context(cafile=s.tls_ca_file)
            if not s.tls_verify:
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        reactor = AioReactor(loop=asyncio.get_running_loop())
        holder: list[Session] = []
        conn = BridgeAioConnection(
            reactor,
            on_event=lambda event: self._dispatch(holder[0], event),
            on_line=lambda _line: setattr(holder[0], "last_rx", time.monotonic()),
            on_lost=lambda exc: holder[0].end(
                f"connection lost: {exc}" if exc else "connection closed"
            ),
        )
        creds = (s.sasl_username, s.sasl_password) if s.sasl else None
        session = Session(conn, CapNegotiator(s.caps, creds))  # type: ignore[arg-type]
        holder.append(session)
        # Current before the link opens: a server may send ERROR the moment we connect.
        self._session = session
        self.features = FeatureSet()
        self.caps = frozenset()
        self._userhost_len = None
        local = (s.bind_host, 0) if s.bind_host else None
        await conn.open(
            s.host,
            s.port,
            self.wanted_nick,
            ssl_context=ssl_context,
            local_addr=local,
            timeout=s.connect_timeout,
        )
        session.tasks.append(asyncio.create_task(self._send_loop(session)))
        session.tasks.append(asyncio.create_task(self._watchdog(session)))
        self.nick = self.wanted_nick
        if s.password:
            self._reg(f"PASS {s.password}")
        for line in session.caps.start():
            self._reg(line)
        self._reg(f"NICK {self.wanted_nick}")
        user = lines.sanitize_nick(s.username or self.wanted_nick, 10).lstrip("_") or "msnbridge"
        self._reg(f"USER {user} 0 * :{lines.clean_text(s.realname or self.wanted_nick) or user}")
        return session

    async def _await_registration(self, session: Session) -> None:
        done, _ = await asyncio.wait(
            {session.registered, session.ended},
            timeout=self.settings.registration_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not done:
            raise TimeoutError

    async def _on_registered(self, session: Session) -> None:
        self._sessions += 1
        self.backoff.connected()
        self.caps = frozenset(session.caps.enabled)
        self.queue.set_open(Priority.CONTROL)
        self._emit(Registered(self.nick, self.caps, reconnect=self._sessions > 1))
        session.tasks.append(asyncio.create_task(self._regain_nick_loop(session)))
        for channel, key in self.channels.values():
            self._send_join(channel, key)
        deadline = time.monotonic() + self.settings.rejoin_timeout
        while set(self.channels) - self.joined and time.monotonic() < deadline:
            if session.ended.done():
                return
            await asyncio.sleep(0.05)
        self.queue.set_open(Priority.CTCP_REPLY)
        if not self.ready.done():
            self.ready.set_result(None)

    def _reg(self, line: str) -> None:
        self.queue.put(line, Priority.REGISTRATION)

    async def _send_loop(self, session: Session) -> None:
        while True:
            item = await self.queue.get()
            if not session.conn.connected:
                self.queue.requeue(item)
                return
            log.debug(
                "-> %s",
                item.line
                if not item.line.startswith(("PASS", "AUTHENTICATE "))
                else item.line.split()[0],
            )
            session.conn.send_raw(item.line)

    async def _watchdog(self, session: Session) -> None:
        s = self.settings
        tick = max(min(s.ping_interval, s.ping_timeout) / 4, 0.05)
        pinged_at: float | None = None
        while not session.ended.done():
            await asyncio.sleep(tick)
            idle = time.monotonic() - session.last_rx
            if idle < s.ping_interval:
                pinged_at = None
            elif pinged_at is None:
                pinged_at = time.monotonic()
                self.queue.put(f"PING :{int(time.time())}", Priority.PONG)
            elif time.monotonic() - pinged_at >= s.ping_timeout:
                session.end(
                    f"ping timeout ({idle:.0f} s without traffic)",
                    Refusal(RefusalKind.NETWORK, "ping timeout"),
                )

    async def _regain_nick_loop(self, session: Session) -> None:
        while not session.ended.done():
            await asyncio.sleep(self.settings.nick_regain_interval)
            self._try_regain_nick()

    def _try_regain_nick(self) -> None:
        if self.registered and self.nick.lower() != self.wanted_nick.lower():
            self.queue.put(f"NICK {self.wanted_nick}", Priority.CONTROL)

    def _emit(self, event: ConnectionEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            log.exception("IRC event handler failed on %r", event)
