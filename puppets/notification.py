"""The notification-server session: login, contact-list sync, presence, list operations,
challenges and keepalive, in the form each MSNP version (2-18) defines. From MSNP13 the
contact list lives in SOAP services (see :mod:`puppets.ablists`); from MSNP15 login is
SSO (:mod:`puppets.sso`).

One :class:`NotificationSession` is one login on one TCP link; reconnecting is the
supervisor's job (see client.py). Everything the server pushes becomes a typed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from . import challenge, sso
from .ablists import AddressBookLists, split_network
from .auth import md5_response, twn_ticket
from .command import SERVER_NO_TRID, Command, decode_arg, encode_arg
from .config import ClientConfig
from .connection import Connection
from .contacts import SETTABLE_STATUSES, Contact, ContactList
from .errors import (
    AuthenticationError,
    ConnectionLost,
    MSNPError,
    NotSupported,
    ProtocolError,
    PuppetError,
    ReplyTimeout,
    SignedOutElsewhere,
)
from .event import contact as ev
from .event import mailbox, session
from .listformat import parse_presence
from .lists import ListsMixin
from .logthrottle import ThrottledLog
from .message import InitialMail, NewMail, Profile, SystemMessage, parse_message, parse_payload
from .msnobject import InvalidMSNObject, MSNObject
from .msnobject import parse as parse_msnobject
from .p2p.transport import CAPS_EX_P2PV2, CAPS_MSNC1
from .services import AccountServices
from .stats import ClientStats
from .ubx import endpoint_payloads, endpoints_of, parse_ubx, psm_payload

log = logging.getLogger("puppets.notification")

_NO_TRID_8 = SERVER_NO_TRID | {"LST", "LSG"}  # MSNP8+ sends the SYN burst without trids
_AUTH_FAILED = {911, 917, 928, 923, 924}
_OIM_NOTICES = {"text/x-msmsgsinitialmdatamsg", "text/x-msmsgsoimnotification"}


@dataclass(frozen=True, slots=True)
class SwitchboardInvite:
    """RNG: someone invites us into a switchboard session."""

    host: str
    port: int
    cookie: str
    session_id: str
    inviter: str
    inviter_nick: str


def _split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ProtocolError(f"bad server address {value!r}")
    return host, int(port)


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def _read_msnobject(passport: str, text: str | None) -> MSNObject | None:
    """A contact's announced object, or None; a broken one is logged and ignored."""
    if not text or text == "0":
        return None
    try:
        return parse_msnobject(text)
    except InvalidMSNObject as e:
        log.info("%s announced an invalid MSNObject: %s", passport, e)
        return None


class NotificationSession(ListsMixin):
    """One login to a notification server."""

    def __init__(
        self,
        config: ClientConfig,
        contacts: ContactList,
        emit: Callable[[object], None],
        http: aiohttp.ClientSession | None = None,
        stats: ClientStats | None = None,
        services: AccountServices | None = None,
    ) -> None:
        self.config = config
        self.contacts = contacts
        self.stats = stats if stats is not None else ClientStats()
        self._adding: set[str] = set()
        self.strangers_dropped = 0  # on this link; self.stats may total many clients
        self._stranger_log = ThrottledLog(log)  # one line per burst of strangers' presence
        self._emit = emit
        self._http = http
        self.services = services  # MSNP13+: SOAP, tokens, machine GUID (the client's)
        self.ab: AddressBookLists | None = None
        self.on_offline_notice: Callable[[], None] | None = None
        self.protocol: int = 0
        self.conn: Connection | None = None
        self.closed: asyncio.Future[BaseException | None] | None = None
        self.on_invite: Callable[[SwitchboardInvite], None] | None = None
        self.own_msnobject: MSNObject | None = None  # announced with CHG from MSNP9
        self._sync_done: asyncio.Event | None = None
        self._sync_expect: tuple[int, int] | None = None  # contacts, groups (MSNP8+)
        self._sync_seen = [0, 0]
        self._last_listed: str | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._dead_handle: asyncio.TimerHandle | None = None
        self._ping_interval = config.ping_interval
        self._status_set = False
        self._last_change = 0.0
        self._change_lock: asyncio.Lock | None = None  # created on first change
        self._tasks: set[asyncio.Task[object]] = set()
        self.signed_out: str | None = None
        self._signing_out = False

    # --- login ---

    async def login(self) -> None:
        """Dispatch → (XFR NS) → VER → auth → SYN → CHG. Raises on any failure."""
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        host, port = self.config.dispatch_host, self.config.dispatch_port
        for _ in range(self.config.max_redirects + 1):
            redirect = await self._login_at(host, port)
            if redirect is None:
                break
            host, port = redirect
        else:
            raise ProtocolError("too many XFR NS redirects")
        await self._sync()
        await self._go_online()
        self._schedule_ping(self._ping_interval)

    async def _connect(self, host: str, port: int) -> Connection:
        try:
            conn = await Connection.open(
                host,
                port,
                timeout=self.config.timeout,
                on_command=self._on_command,
                on_close=self._on_close,
                name=f"ns:{self.config.passport}",
            )
        except (OSError, TimeoutError) as e:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {e}") from e
        conn.start()
        return conn

    async def _login_at(self, host: str, port: int) -> tuple[str, int] | None:
        self.conn = conn = await self._connect(host, port)
        timeout = self.config.timeout
        versions = [f"MSNP{v}" for v in self.config.versions]
        reply = await conn.request("VER", *versions, "CVR0", timeout=timeout)
        picked = [a for a in reply.args if a.startswith("MSNP")]
        if not picked:
            raise PuppetError(
                f"the server speaks none of MSNP{self.config.min_version}-"
                f"MSNP{self.config.max_version}"
            )
        self.protocol = int(picked[0][4:])
        if self.protocol >= 8:
            conn.no_trid = _NO_TRID_8
        passport = self.config.passport
        if self.protocol >= 13 and self.services is None:
            raise PuppetError(f"MSNP{self.protocol} needs the SOAP services (AccountServices)")
        if self.protocol >= 8:
            await conn.request(
                "CVR",
                self.config.locale,
                "winnt",
                "5.1",
                "i386",
                "MSNMSGR",
                self.config.client_version,
                "MSMSGS",
                passport,
                timeout=timeout,
            )
            mech = "SSO" if self.protocol >= 15 else "TWN"
        else:
            reply = await conn.request("INF", timeout=timeout)
            if "MD5" not in reply.args:
                raise PuppetError(f"the server offers no MD5 login: INF {' '.join(reply.args)}")
            mech = "MD5"
        try:
            reply = await conn.request(
                "USR", mech, "I", passport, expect=("USR", "XFR"), timeout=timeout
            )
        except MSNPError as e:
            raise self._auth_error(e) from e
        if reply.name == "XFR":
            if len(reply.args) < 2 or reply.args[0] != "NS":
                raise ProtocolError(f"unexpected redirect: XFR {' '.join(reply.args)}")
            target = _split_hostport(reply.args[1])
            await conn.close(notify=False)
            return target
        if len(reply.args) < 3 or reply.args[1] != "S":
            raise ProtocolError(f"unexpected USR reply: {reply}")
        extra: list[str] = []
        if mech == "SSO":
            response, extra = await self._sso_answer(reply.args)
        elif mech == "MD5":
            response = md5_response(reply.args[2], self.config.password)
        else:
            response = await twn_ticket(
                passport,
                self.config.password,
                reply.args[2],
                self.config.passport_config,
                self._http,
            )
        if mech == "TWN" and self.protocol >= 13:
            assert self.services is not None
            await self.services.tokens.refresh()  # the SOAP services' tokens
        try:
            ok = await conn.request("USR", mech, "S", response, *extra, timeout=timeout)
        except MSNPError as e:
            raise self._auth_error(e) from e
        if not ok.args or ok.args[0] != "OK":
            raise ProtocolError(f"unexpected USR reply: {ok}")
        if self.protocol < 10 and len(ok.args) >= 3:
            self.contacts.own_nick = decode_arg(ok.args[2])
        return None

    async def _sso_answer(self, args: list[str]) -> tuple[str, list[str]]:
        """``USR t SSO S policy nonce``: fresh tokens from RST, then the ticket and the
        MBI_KEY_OLD answer (plus the machine GUID from MSNP16)."""
        assert self.services is not None
        if len(args) < 4:
            raise ProtocolError(f"short USR SSO S: {len(args)} arguments")
        nonce = args[3]
        await self.services.tokens.refresh()
        token = await self.services.tokens.get(sso.MESSENGER)
        if not token.binary_secret:
            raise ProtocolError("the messenger token came without a binary secret")
        response = sso.mbi_key_response(nonce, token.binary_secret, sso.random_iv())
        extra = [response]
        if self.protocol >= 16:
            extra.append(self.services.machine_guid)
        return token.ticket, extra

    @staticmethod
    def _auth_error(e: MSNPError) -> PuppetError:
        if e.code in _AUTH_FAILED:
            return AuthenticationError(f"login refused: {e.code} {e.meaning}")
        return e

    # --- contact-list sync ---

    async def _sync(self) -> None:
        assert self.conn is not None
        if self.protocol >= 13:
            assert self.services is not None
            self.ab = AddressBookLists(self, self.services.addressbook(), self.services.sharing())
            try:
                await asyncio.wait_for(self.ab.sync(), self.config.sync_timeout)
            except TimeoutError:
                raise ReplyTimeout(
                    f"contact list incomplete after {self.config.sync_timeout:g} s"
                ) from None
            return
        self.contacts.clear()
        self._sync_done = asyncio.Event()
        self._sync_seen = [0, 0]
        self._sync_expect = None
        args = ("0", "0") if self.protocol >= 10 else ("0",)
        trid = self.conn.next_trid()
        waiter = self.conn.expect_reply(trid, "SYN")
        self.conn.send(Command("SYN", trid, list(args)))
        reply = await self.conn.wait_reply(trid, waiter, self.config.timeout)
        if self.protocol >= 8 and len(reply.args) < 3:
            # No counts: the list is as new as the version we sent (here: empty).
            self.contacts.version = " ".join(reply.args)
            self._sync_done.set()
        elif self.protocol >= 8:
            self.contacts.version = " ".join(reply.args[:-2])
            self._sync_expect = (_int(reply.args[-2]), _int(reply.args[-1]))
            self._check_sync_done()
        else:
            self.contacts.version = reply.args[0] if reply.args else "0"
            if reply.args and reply.args[0] == args[0]:
                self._sync_done.set()  # the server has nothing newer than what we sent
        try:
            await asyncio.wait_for(self._sync_done.wait(), self.config.sync_timeout)
        except TimeoutError:
            raise ReplyTimeout(
                f"contact list incomplete after {self.config.sync_timeout:g} s"
            ) from None
        finally:
            self._sync_done = None  # the sync is over (an Event kept holds a deque, ~0.6 KiB)
        self._emit(ev.ContactListSynced(len(self.contacts.contacts), len(self.contacts.groups)))

    def _check_sync_done(self) -> None:
        if self._sync_expect is not None and self._sync_done is not None:
            if self._sync_seen[0] >= self._sync_expect[0] and (
                self._sync_seen[1] >= self._sync_expect[1]
            ):
                self._sync_done.set()

    # --- going online, keepalive, challenges ---

    def _status_args(self, status: str) -> list[str]:
        if self.protocol < 8:
            return [status]
        own = self.own_msnobject if self.protocol >= 9 else None
        extra = [encode_arg(own.build())] if own is not None else []
        if self.protocol >= 16:
            return [status, self.caps_field, *extra]
        # MSNP9+: we speak MSNSLP (puppets.p2p), so say so unless told otherwise.
        caps = self.config.caps or (CAPS_MSNC1 if self.protocol >= 9 else 0)
        return [status, str(caps), *extra]

    @property
    def ext_caps(self) -> int:
        """The extended capabilities announced from MSNP16 (P2P v2 unless configured)."""
        ext = self.config.ext_caps
        return CAPS_EX_P2PV2 if ext is None else ext

    @property
    def caps_field(self) -> str:
        """MSNP16+ ``caps:extcaps``, as CHG and the endpoint data carry it."""
        return f"{self.config.caps or CAPS_MSNC1}:{self.ext_caps}"

    async def _go_online(self) -> None:
        assert self.conn is not None
        await self.conn.request(
            "CHG", *self._status_args(self.config.initial_status), timeout=self.config.timeout
        )
        self._status_set = True
        if self.protocol >= 18:
            for payload in endpoint_payloads(
                self.caps_field, self.config.endpoint_name, self.config.initial_status
            ):
                await self.conn.request("UUX", payload=payload, timeout=self.config.timeout)
        self._emit(session.LoggedIn(self.protocol, self.config.passport, self.contacts.own_nick))

    def _schedule_ping(self, delay: float) -> None:
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        loop = asyncio.get_running_loop()
        self._ping_handle = loop.call_later(max(delay, 1.0), self._send_ping)

    def _send_ping(self) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(PuppetError):
            conn.send(Command("PNG"))
        if self._dead_handle is None:
            loop = asyncio.get_running_loop()
            self._dead_handle = loop.call_later(self._ping_interval + 5, self._link_dead)

    def _link_dead(self) -> None:
        self._dead_handle = None
        log.info("%s: no QNG in time; treating the link as dead", self.config.passport)
        if self.conn is not None:
            self._spawn(self.conn.close())
            self._on_close(ReplyTimeout("no QNG within the keepalive interval"))

    def _on_qng(self, cmd: Command) -> None:
        if self._dead_handle is not None:
            self._dead_handle.cancel()
            self._dead_handle = None
        if cmd.args and cmd.args[0].isdigit():
            self._ping_interval = float(int(cmd.args[0]))
        self._schedule_ping(self._ping_interval)

    def _on_chl(self, cmd: Command) -> None:
        if not cmd.args:
            return
        self._spawn(self._answer_challenge(cmd.args[-1]))

    async def _answer_challenge(self, chl: str) -> None:
        assert self.conn is not None
        product_id, key = challenge.default_product(self.protocol)
        product_id = self.config.product_id or product_id
        key = self.config.product_key or key
        digest = challenge.answer(chl, self.protocol, product_id, key)
        try:
            await self.conn.request(
                "QRY", product_id, payload=digest.encode(), timeout=self.config.timeout
            )
        except ReplyTimeout:
            return  # revival servers ignore QRY; not answering is not a failure
        except (MSNPError, ConnectionLost) as e:
            log.warning("%s: challenge answer refused: %s", self.config.passport, e)
            return
        self._emit(session.ChallengeAnswered(self.protocol))

    # --- server-pushed commands ---

    def _on_command(self, cmd: Command) -> None:
        handler = _HANDLERS.get(cmd.name)
        if handler is not None:
            handler(self, cmd)
        elif cmd.is_error:
            log.info("%s: server error %s (trid %s)", self.config.passport, cmd.name, cmd.trid)
        else:
            log.debug("%s: ignoring %s", self.config.passport, cmd.name)

    def _listed(self, passport: str, what: str) -> Contact | None:
        """The contact ``passport`` if it is on one of our lists. Presence of anyone else
        is dropped (counted, logged once per burst): a server may push it for thousands of
        strangers, and each would otherwise become a contact, a ghost, an IRC nick."""
        c = self.contacts.get(passport)
        if c is not None and c.lists:
            return c
        if passport.lower() in self._adding:
            # Our ADD/ADC's reply and the new contact's presence can come in one read,
            # before the reply has been applied to the model.
            return self.contacts.ensure(passport)
        self.stats.stranger_presence += 1
        self.strangers_dropped += 1
        self._stranger_log.log(
            "stranger",
            "%s: dropping %s for passports on none of the lists (%d so far on this link)",
            self.config.passport,
            what,
            self.strangers_dropped,
        )
        return None

    def _presence(self, args: list[str], initial: bool) -> None:
        args, network = split_network(self.protocol, args)
        p = parse_presence(args)
        c = self._listed(p.passport, "ILN" if initial else "NLN")
        if c is None:
            return
        c.network = network
        c.status = sys.intern(p.status)  # one string per status, not per contact
        # Interned: a contact's nick and picture are the same strings in every session that
        # lists it (thousands of sessions in one process), and an unchanged one is kept.
        if p.nick is not None and p.nick != c.nick:
            c.nick = sys.intern(p.nick)
        if p.caps is not None:
            c.caps = p.caps
            c.ext_caps = p.ext_caps
        if p.msnobject is not None and p.msnobject != c.msnobject:
            c.msnobject = sys.intern(p.msnobject)
        obj = _read_msnobject(c.passport, c.msnobject)
        self._emit(
            ev.PresenceChanged(c.passport, c.status, c.nick, c.caps, initial, obj, c.ext_caps)
        )

    def _on_iln(self, cmd: Command) -> None:
        self._presence(cmd.args, True)

    def _on_nln(self, cmd: Command) -> None:
        self._presence(cmd.args, False)

    def _on_fln(self, cmd: Command) -> None:
        if not cmd.args:
            return
        args, _network = split_network(self.protocol, cmd.args, at=0)
        c = self._listed(args[0], "FLN")
        if c is None:
            return
        c.status = "FLN"
        self._emit(ev.PresenceChanged(c.passport, "FLN", c.nick, c.caps, False))

    def _on_ubx(self, cmd: Command) -> None:
        if not cmd.args:
            return
        args, _network = split_network(self.protocol, cmd.args, at=0)
        if self.protocol >= 16 and args[0].lower() == self.config.passport.lower():
            self._own_ubx(cmd.payload or b"")
            return
        c = self._listed(args[0], "UBX")
        if c is None:
            return
        psm, media = parse_ubx(cmd.payload or b"")
        c.psm = psm
        self._emit(ev.PersonalMessageChanged(c.passport, psm, media))

    def _own_ubx(self, payload: bytes) -> None:
        """MSNP16+: our own UBX lists every endpoint we are signed in at."""
        assert self.services is not None
        found, _psm = endpoints_of(payload)
        found.pop(self.services.machine_guid.lower(), None)
        if found != self.contacts.own_endpoints:
            self.contacts.own_endpoints = found
            self._emit(session.OwnEndpointsChanged(dict(found)))

    def _on_adl(self, cmd: Command) -> None:
        if self.ab is not None:
            self.ab.on_adl(cmd)

    def _on_rml(self, cmd: Command) -> None:
        if self.ab is not None:
            self.ab.on_rml(cmd)

    def _on_msg(self, cmd: Command) -> None:
        if self.protocol >= 13 and cmd.payload:
            kind = parse_message(cmd.payload).content_type
            if kind in _OIM_NOTICES:
                if self.on_offline_notice is not None:
                    self.on_offline_notice()
                return
        parsed = parse_payload(cmd.payload or b"")
        if isinstance(parsed, InitialMail):
            self._emit(mailbox.MailboxStatus(parsed.inbox_unread, parsed.folders_unread))
        elif isinstance(parsed, NewMail):
            self._emit(
                mailbox.NewMail(parsed.sender, parsed.sender_address, parsed.subject, parsed.folder)
            )
        elif isinstance(parsed, SystemMessage):
            self._emit(session.SystemNotice(parsed.type, parsed.minutes))
        elif isinstance(parsed, Profile):
            pass  # holds MSPAuth; kept out of events and logs
        else:
            log.debug("%s: ignoring NS message", self.config.passport)

    def _on_rng(self, cmd: Command) -> None:
        # RNG sessid host:port CKI cookie inviter nick
        args = cmd.args
        if len(args) < 5:
            raise ProtocolError(f"short RNG: {cmd}")
        host, port = _split_hostport(args[1])
        invite = SwitchboardInvite(
            host, port, args[3], args[0], args[4], decode_arg(args[5]) if len(args) > 5 else ""
        )
        if self.on_invite is not None:
            self.on_invite(invite)

    def _on_out(self, cmd: Command) -> None:
        if self._signing_out:
            return  # the server's answer to our own OUT
        code = cmd.args[0] if cmd.args else ""
        self.signed_out = code
        self._emit(session.ServerSignedOut(code))
        reason: BaseException = (
            SignedOutElsewhere("signed in from another location")
            if code == "OTH"
            else ConnectionLost(f"server signed us out ({code or 'no reason'})")
        )
        self._on_close(reason)
        if self.conn is not None:
            self._spawn(self.conn.close())

    # --- the end of the link ---

    def _on_close(self, reason: BaseException | None) -> None:
        for handle in (self._ping_handle, self._dead_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._dead_handle = None
        if self._sync_done is not None and not self._sync_done.is_set():
            self._sync_done.set()  # wake the SYN waiter; it checks the link below
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(reason or ConnectionLost("connection closed"))

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: background task failed", self.config.passport, exc_info=error)

    async def sign_out(self) -> None:
        """Send OUT and close."""
        self._signing_out = True
        if self.conn is not None:
            await self.conn.close(Command("OUT"))
        self._on_close(None)

    async def abort(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        self._on_close(None)

    # --- operations ---

    def _require(self, low: int, high: int, what: str) -> None:
        if not low <= self.protocol <= high:
            raise NotSupported(f"{what} is not available in MSNP{self.protocol}")

    def _link(self) -> Connection:
        if self.conn is None or self.conn.closed:
            raise ConnectionLost("not connected")
        return self.conn

    async def _spaced(self, name: str, *args: str, payload: bytes | None = None) -> Command:
        """CHG/REA/PRP/UUX spaced out, since servers answer 800 to rapid changes."""
        if self._change_lock is None:
            self._change_lock = asyncio.Lock()
        async with self._change_lock:
            loop = asyncio.get_running_loop()
            wait = self._last_change + self.config.change_spacing - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self._link().request(
                    name, *args, payload=payload, timeout=self.config.timeout
                )
            finally:
                self._last_change = loop.time()

    async def set_status(self, status: str) -> None:
        if status not in SETTABLE_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        await self._spaced("CHG", *self._status_args(status))

    async def set_nick(self, nick: str) -> None:
        if self.ab is not None:
            await self.ab.set_own_name(nick)  # the address book keeps it from MSNP13
        if self.protocol >= 10:
            await self._spaced("PRP", "MFN", encode_arg(nick))
        else:
            await self._spaced("REA", self.config.passport, encode_arg(nick))
        self.contacts.own_nick = nick

    async def set_psm(self, text: str) -> None:
        self._require(11, 99, "a personal message")
        await self._spaced("UUX", payload=psm_payload(text))

    async def request_switchboard(self) -> tuple[str, int, str]:
        """XFR SB: the address and cookie of a new switchboard session."""
        reply = await self._link().request("XFR", "SB", timeout=self.config.timeout)
        if len(reply.args) < 4 or reply.args[0] != "SB":
            raise ProtocolError(f"unexpected XFR reply: {reply}")
        host, port = _split_hostport(reply.args[1])
        return host, port, reply.args[3]


# Server-pushed commands by name (list handlers come from ListsMixin).
_HANDLERS: dict[str, Callable[[NotificationSession, Command], None]] = {
    "ILN": NotificationSession._on_iln,
    "NLN": NotificationSession._on_nln,
    "FLN": NotificationSession._on_fln,
    "UBX": NotificationSession._on_ubx,
    "MSG": NotificationSession._on_msg,
    "ADD": NotificationSession._on_add,
    "ADC": NotificationSession._on_add,
    "REM": NotificationSession._on_rem,
    "RNG": NotificationSession._on_rng,
    "OUT": NotificationSession._on_out,
    "CHL": NotificationSession._on_chl,
    "QNG": NotificationSession._on_qng,
    "LST": NotificationSession._on_lst,
    "ADL": NotificationSession._on_adl,
    "RML": NotificationSession._on_rml,
    "LSG": NotificationSession._on_lsg,
    "GTC": NotificationSession._on_gtc,
    "BLP": NotificationSession._on_blp,
    "PRP": NotificationSession._on_prp,
    "BPR": NotificationSession._on_bpr,
    "REA": NotificationSession._on_rea,
    "ADG": NotificationSession._on_group,
    "RMG": NotificationSession._on_group,
    "REG": NotificationSession._on_group,
}
