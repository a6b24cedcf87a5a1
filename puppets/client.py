"""The puppet client: one MSN account, supervised, with its conversations.

:class:`Client` keeps a notification session logged in (reconnecting with exponential
backoff and jitter, never after OUT OTH), keeps the contact list model, answers
switchboard invitations and hands out :class:`Conversation` objects that outlive
switchboards. Everything that happens reaches the listeners as a typed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable

import aiohttp

from .config import ClientConfig
from .contacts import ContactList, Lists
from .conversation import WITHDRAWN, BeforeWrite, Conversation
from .errors import (
    AuthenticationError,
    ConnectionLost,
    MSNPError,
    PuppetError,
    SignedOutElsewhere,
)
from .event.conversation import (
    ConversationEvent,
    DeliveryResult,
    DeliveryStatus,
    P2PPayloadReceived,
)
from .event.session import SessionState, SessionStateChanged
from .logthrottle import ThrottledLog
from .msnobject import MSNObject
from .notification import NotificationSession, SwitchboardInvite
from .offline import OfflineAck, OfflineMessages
from .p2p import P2PService, PictureCache
from .p2p.transport import CAPS_EX_P2PV2
from .services import AccountServices
from .stats import ClientStats
from .switchboard import Switchboard, SwitchboardTicket, normalize_passport

log = logging.getLogger("puppets.client")

Listener = Callable[[object], None]


class Client:
    def __init__(
        self,
        config: ClientConfig,
        http: aiohttp.ClientSession | None = None,
        stats: ClientStats | None = None,
        seen_offline_ids: Iterable[str] = (),
        *,
        pictures: PictureCache | None = None,
    ) -> None:
        """``http``: an aiohttp session to share for Passport logins and SOAP (many
        clients in one process should share one); without it each login opens its own.
        ``stats``: the counters to add to (share one to total many clients).
        ``seen_offline_ids``: offline messages delivered before (see
        :attr:`seen_offline_ids`), never delivered again.
        ``pictures``: a display picture cache to share, so a picture is fetched once."""
        self.config = config
        self.stats = stats if stats is not None else ClientStats()
        self._invite_log = ThrottledLog(log)  # a server can send any number of bad RNGs
        self.contacts = ContactList()
        self.state = SessionState.STOPPED
        self.stop_reason: str | None = None
        self.error: BaseException | None = None
        self.last_error: BaseException | None = None  # why the last attempt failed
        self.ns: NotificationSession | None = None
        self._listeners: list[Listener] = []
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        # Made by the first waiter and set (then dropped) at the next change: an Event
        # holds a deque (~0.6 KiB), thousands of idle sessions need none.
        self._state_changed: asyncio.Event | None = None
        self._conversations: dict[frozenset[str], Conversation] = {}
        self._detached: list[Conversation] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self._http = http
        # What the owner asked for, re-applied after every reconnect.
        self._wanted_status: str | None = None
        self._wanted_psm: str | None = None
        # MSNP13+: kept across reconnects (tokens, machine GUID, offline-message ids).
        self.services = AccountServices(config, http, seen_offline_ids)
        self.offline = OfflineMessages(self.services, self._emit)

        self._own_picture: tuple[MSNObject, bytes] | None = None
        # Display pictures, emoticons and files (MSNSLP over switchboards).
        self.p2p = P2PService(self, config.passport, self._emit, pictures)
        manager = self.p2p.manager
        manager.own_v2, manager.peer_v2 = self._p2p_v2_ours, self._p2p_v2_theirs
        manager.sender.source = lambda: f"{config.passport};{self.machine_guid}"

    def _p2p_v2_ours(self) -> bool:
        """We may use the P2P v2 framing: MSNP16+ and announced in our extended caps."""
        ns = self.ns
        return ns is not None and (ns.protocol or 0) >= 16 and bool(ns.ext_caps & CAPS_EX_P2PV2)

    def _p2p_v2_theirs(self, passport: str) -> bool:
        contact = self.contacts.get(passport)
        return contact is not None and bool(contact.ext_caps & CAPS_EX_P2PV2)

    @property
    def machine_guid(self) -> str:
        """This endpoint's MSNP16+ machine GUID: store it and pass it back as
        ``ClientConfig.machine_guid`` so a restart is the same endpoint."""
        return self.services.machine_guid

    @property
    def offline_ack(self) -> OfflineAck | None:
        """An async callable given the offline messages just emitted to the listeners (before
        anything else runs); they are deleted on the server once it returns. If it raises,
        they stay there and are not counted as seen, so the next fetch emits them again.
        Set it when the listeners must store the messages somewhere first; without it they
        are deleted right after the emission."""
        return self.offline.ack

    @offline_ack.setter
    def offline_ack(self, ack: OfflineAck | None) -> None:
        self.offline.ack = ack

    @property
    def seen_offline_ids(self) -> set[str]:
        """Ids of offline messages already delivered; persist them to survive restarts."""
        return self.services.seen_offline_ids

    @property
    def own_endpoints(self) -> dict[str, str]:
        """MSNP16+: the owner's other signed-in endpoints (machine GUID -> name)."""
        return dict(self.contacts.own_endpoints)

    # --- listeners ---

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, event: object) -> None:
        self.p2p.observe(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception(
                    "%s: listener failed on %s", self.config.passport, type(event).__name__
                )

    async def events(self, maxsize: int = 10_000) -> AsyncIterator[object]:
        """Every event as an async iterator (for scripts and the CLI)."""
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize)

        def put(event: object) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

        self.add_listener(put)
        try:
            while True:
                yield await queue.get()
        finally:
            self.remove_listener(put)

    # --- supervision ---

    @property
    def protocol(self) -> int | None:
        return self.ns.protocol if self.ns is not None and self.ns.protocol else None

    def _set_state(
        self, state: SessionState, reason: str | None = None, retry_in: float | None = None
    ) -> None:
        self.state = state
        if state is SessionState.STOPPED:
            self.stop_reason = reason
        if self._state_changed is not None:
            self._state_changed.set()
            self._state_changed = None
        self._emit(SessionStateChanged(state, reason, retry_in))

    async def start(self) -> None:
        """Start the supervised session; returns at once (see :meth:`wait_online`)."""
        if self._runner is not None and not self._runner.done():
            return
        self._stopping = False
        self.error = None
        self._set_state(SessionState.CONNECTING)
        self._runner = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"puppet:{self.config.passport}"
        )

    async def wait_online(self, timeout: float | None = None) -> None:
        """Wait until online; raise the reason if the session stopped instead."""
        async with asyncio.timeout(timeout):
            while self.state is not SessionState.ONLINE:
                if self.state is SessionState.STOPPED:
                    raise self.error or ConnectionLost(self.stop_reason or "stopped")
                if self._state_changed is None:
                    self._state_changed = asyncio.Event()
                await self._state_changed.wait()

    async def _supervise(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            if self.state is not SessionState.CONNECTING:
                self._set_state(SessionState.CONNECTING)
            ns = NotificationSession(
                self.config, self.contacts, self._emit, self._http, self.stats, self.services
            )
            ns.on_invite = self._on_invite
            ns.on_offline_notice = self._on_offline_notice
            ns.own_msnobject = self._own_picture[0] if self._own_picture else None
            self.ns = ns
            try:
                await ns.login()
            except (AuthenticationError, SignedOutElsewhere) as e:
                await ns.abort()
                self._stop_with(e)
                return
            except MSNPError as e:
                await ns.abort()
                if e.code in (540,) or 200 <= e.code < 300:
                    self._stop_with(e)  # our fault: retrying sends the same again
                    return
                reason: BaseException | None = e
            except (PuppetError, OSError, TimeoutError) as e:
                await ns.abort()
                reason = e
            else:
                online_at = loop.time()
                self._set_state(SessionState.ONLINE)
                self._spawn(self._restore_wanted(ns))
                assert ns.closed is not None
                reason = await ns.closed
                if loop.time() - online_at >= self.config.backoff_stable_after:
                    attempt = 0
                if self._stopping:
                    break
                if isinstance(reason, SignedOutElsewhere):
                    self._stop_with(reason)
                    return
            if self._stopping:
                break
            if not self.config.reconnect:
                self._stop_with(reason or ConnectionLost("connection closed"))
                return
            delay = min(self.config.backoff_max, self.config.backoff_initial * (2**attempt))
            delay *= random.uniform(0.5, 1.0)  # jitter spreads a server restart's herd
            attempt += 1
            self.last_error = reason
            log.info("%s: link lost (%s); retrying in %.1f s", self.config.passport, reason, delay)
            self._set_state(SessionState.BACKING_OFF, str(reason), delay)
            await asyncio.sleep(delay)
        self._set_state(SessionState.STOPPED, "stopped")

    def _stop_with(self, error: BaseException) -> None:
        self.error = error
        self._set_state(SessionState.STOPPED, str(error))

    async def _restore_wanted(self, ns: NotificationSession) -> None:
        try:
            if self._wanted_status and self._wanted_status != self.config.initial_status:
                await ns.set_status(self._wanted_status)
            if self._wanted_psm is not None and ns.protocol >= 11:
                await ns.set_psm(self._wanted_psm)
        except PuppetError as e:
            log.info("%s: could not restore status: %s", self.config.passport, e)

    async def stop(self) -> None:
        """Sign out (OUT) and stop reconnecting, leaving every switchboard."""
        self._stopping = True
        # Until none is left open: while one closes, a P2P frame read on another could be
        # acknowledged through a new conversation (see _open_switchboard, which refuses).
        while opened := [conv for conv in self.conversations if not conv.closed]:
            for conv in opened:
                with contextlib.suppress(Exception):
                    await conv.close()
        if self.ns is not None:
            await self.ns.sign_out()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            if self.state is not SessionState.STOPPED:
                self._set_state(SessionState.STOPPED, "stopped")
        for task in list(self._tasks):
            task.cancel()
        await self.services.close()
        await self.p2p.close()

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        # Every background task's outcome is read here: none ends "never retrieved".
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: background task failed", self.config.passport, exc_info=error)

    def _session(self) -> NotificationSession:
        if self.ns is None or self.state is not SessionState.ONLINE:
            raise ConnectionLost(f"not online ({self.state.value})")
        return self.ns

    # --- presence and profile ---

    async def set_status(self, status: str) -> None:
        await self._session().set_status(status)
        self._wanted_status = status

    async def set_nick(self, nick: str) -> None:
        await self._session().set_nick(nick)

    async def set_display_picture(self, data: bytes | None) -> MSNObject | None:
        """Show ``data`` (PNG, usually 96x96) as this session's display picture, or none.

        Contacts who ask for it are served through MSNSLP; the object is announced with
        CHG (MSNP9+) now if online, else at login. Returns the object.
        """
        obj = MSNObject.for_data(self.config.passport, data) if data else None
        self._own_picture = (obj, data) if obj is not None and data else None
        self.p2p.manager.set_own_object(obj, data)
        ns = self.ns
        if ns is not None:
            ns.own_msnobject = obj
            if self.state is SessionState.ONLINE and ns.protocol >= 9:
                await ns.set_status(self._wanted_status or self.config.initial_status)
        return obj

    async def set_psm(self, text: str) -> None:
        await self._session().set_psm(text)
        self._wanted_psm = text

    # --- lists and groups ---

    async def add_contact(
        self, passport: str, group: str | None = None, nick: str | None = None
    ) -> None:
        ns = self._session()
        c = self.contacts.get(passport)
        if c is None or not c.on(Lists.FL):
            # The nick sent is what the server echoes and keeps for later logins: someone
            # known (removed before, or on another list) keeps their nick; only a stranger
            # gets the passport until their presence (NLN) names them.
            if nick is None and c is not None and c.nick and c.nick != c.passport:
                nick = c.nick
            await ns.add_to_list(passport, Lists.FL, nick, group)
        elif group is not None:
            await ns.add_to_group(passport, group)
        c = self.contacts.get(passport)
        if c is None or not c.on(Lists.AL | Lists.BL):
            await ns.add_to_list(passport, Lists.AL)

    async def remove_contact(self, passport: str, group: str | None = None) -> None:
        await self._session().remove_from_list(passport, Lists.FL, group)

    async def block(self, passport: str) -> None:
        ns = self._session()
        c = self.contacts.get(passport)
        if c is not None and c.on(Lists.AL):
            await ns.remove_from_list(passport, Lists.AL)
        await ns.add_to_list(passport, Lists.BL)

    async def unblock(self, passport: str) -> None:
        ns = self._session()
        c = self.contacts.get(passport)
        if c is not None and c.on(Lists.BL):
            await ns.remove_from_list(passport, Lists.BL)
        await ns.add_to_list(passport, Lists.AL)

    async def accept(self, passport: str) -> None:
        """Allow someone who added us (RL) and add them back."""
        ns = self._session()
        c = self.contacts.get(passport)
        if c is None or not c.on(Lists.AL):
            await ns.add_to_list(passport, Lists.AL)
        if c is None or not c.on(Lists.FL):
            await ns.add_to_list(passport, Lists.FL, c.nick if c else None)

    async def reject(self, passport: str) -> None:
        await self.block(passport)

    async def add_group(self, name: str) -> str:
        return await self._session().add_group(name)

    async def rename_group(self, gid: str, name: str) -> None:
        await self._session().rename_group(gid, name)

    async def remove_group(self, gid: str) -> None:
        await self._session().remove_group(gid)

    # --- offline messages (MSNP13+) ---

    def _on_offline_notice(self) -> None:
        self._spawn(self._fetch_offline())

    async def _fetch_offline(self) -> None:
        try:
            # The login notice comes before the contact list: deliver after LoggedIn.
            await self.wait_online(timeout=self.config.sync_timeout)
            await self.offline.fetch()
        except TimeoutError:
            return
        except PuppetError as e:
            log.warning("%s: offline messages not fetched: %s", self.config.passport, e)

    async def send_offline(self, passport: str, text: str) -> DeliveryResult:
        """Store an offline message for ``passport`` (MSNP13+)."""
        protocol = self.protocol or 0
        if protocol < 13:
            return DeliveryResult(
                DeliveryStatus.FAILED, f"offline messages need MSNP13+, not MSNP{protocol}"
            )
        return await self.offline.send(protocol, passport, text, self.contacts.own_nick)

    # --- conversations ---

    async def _open_switchboard(self) -> SwitchboardTicket:
        if self._stopping:
            # A switchboard opened now would outlive the client: the contact's next
            # messages (a file offered after they signed in again) would go to it.
            raise ConnectionLost("the client is stopping")
        if self.state in (SessionState.CONNECTING, SessionState.BACKING_OFF):
            # Messages sent while the link is being re-established wait for it (the
            # conversation keeps them in order); past the bound they fail and are reported.
            try:
                await self.wait_online(timeout=self.config.offline_send_timeout)
            except TimeoutError:
                raise ConnectionLost(
                    f"the MSN session was not back within "
                    f"{self.config.offline_send_timeout:g} s ({self.state.value})"
                ) from None
        host, port, cookie = await self._session().request_switchboard()
        return SwitchboardTicket(host, port, cookie)

    def conversation(self, passports: Iterable[str]) -> Conversation:
        """The conversation with these people, created on first use."""
        key = frozenset(p.lower() for p in passports)
        if not key:
            raise ValueError("a conversation needs at least one participant")
        conv = self._conversations.get(key)
        if conv is None or conv.closed:
            conv = Conversation(
                passport=self._sb_login,
                protocol=self.protocol or self.config.max_version,
                store_offline=self._store_offline,
                open_switchboard=self._open_switchboard,
                invitees=key,
                on_event=self._on_conversation_event,
                idle_timeout=self.config.sb_idle_timeout,
            )
            self._conversations[key] = conv
        return conv

    @property
    def _sb_login(self) -> str:
        """The switchboard login: ``email;{machine guid}`` from MSNP16 (MPOP)."""
        if (self.protocol or 0) >= 16:
            return f"{self.config.passport};{self.machine_guid}"
        return self.config.passport

    async def _store_offline(
        self, passport: str, text: str, before_write: BeforeWrite | None = None
    ) -> DeliveryResult | None:
        """A 1:1 message found its contact offline: on MSNP13+ store it as an OIM."""
        if (self.protocol or 0) < 13:
            return None
        if before_write is not None and not await before_write():
            return DeliveryResult(DeliveryStatus.FAILED, WITHDRAWN)
        return await self.send_offline(passport, text)

    def detach(self, conv: Conversation) -> None:
        """Hand ``conv`` over: the next :meth:`conversation` with its people starts a new
        one (a 1:1 that grew into a group chat keeps going as the group). The client still
        closes the detached conversation when it stops."""
        if self._conversations.get(conv.key) is conv:
            del self._conversations[conv.key]
            self._detached.append(conv)

    @property
    def conversations(self) -> list[Conversation]:
        return [*self._conversations.values(), *self._detached]

    def _on_conversation_event(self, event: ConversationEvent) -> None:
        if self._stopping and isinstance(event, P2PPayloadReceived):
            return  # no new P2P work (its ACK would need a switchboard) on the way out
        if self.p2p.handle(event):
            return
        self._emit(event)

    def _on_invite(self, invite: SwitchboardInvite) -> None:
        if not self._stopping:
            self._spawn(self._answer(invite))

    async def _answer(self, invite: SwitchboardInvite) -> None:
        ticket = SwitchboardTicket(
            invite.host,
            invite.port,
            invite.cookie,
            invite.session_id,
            invite.inviter,
            invite.inviter_nick,
        )
        pending: list[ConversationEvent] = []
        target: list[Conversation] = []

        def route(event: ConversationEvent) -> None:
            if target:
                target[0].handle_event(event)
            else:
                pending.append(event)

        try:
            sb = await Switchboard.answer(
                ticket,
                passport=self._sb_login,
                protocol=self.protocol or self.config.max_version,
                on_event=route,
                timeout=self.config.timeout,
            )
        except (PuppetError, OSError, TimeoutError) as e:
            # A closed port, a dead host, a refused cookie: the inviter's client will try
            # again with a new switchboard; nothing of ours is lost.
            self.stats.invitations_failed += 1
            self._invite_log.log(
                "invite",
                "%s: could not answer an invitation from %s at %s:%d: %s",
                self.config.passport,
                invite.inviter,
                invite.host,
                invite.port,
                e or type(e).__name__,
            )
            return
        inviter = normalize_passport(invite.inviter)
        if not sb.participants and inviter == self.config.passport.lower():
            # Our own other endpoint (MPOP) rang us before the contact joined: the
            # conversation is with whoever joins next.
            await sb.wait_anyone(self.config.timeout)
            if not sb.participants:
                await sb.leave("nobody but our own endpoints joined")
                return
        if self._stopping:  # answered while the client stopped: nobody would close it
            await sb.leave("the client is stopping")
            return
        people = set(sb.participants) or {inviter}
        conv = self.conversation(people)
        target.append(conv)
        conv.attach(sb)
        for event in pending:
            conv.handle_event(event)
