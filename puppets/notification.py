"""The notification-server session: login, contact-list sync, presence, list operations,
challenges and keepalive, in the form each MSNP version (2-12) defines.

One :class:`NotificationSession` is one login on one TCP link; reconnecting is the
supervisor's job (see client.py). Everything the server pushes becomes a typed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import aiohttp

from . import challenge
from .auth import md5_response, twn_ticket
from .command import SERVER_NO_TRID, Command, decode_arg, encode_arg
from .config import ClientConfig
from .connection import Connection
from .contacts import SETTABLE_STATUSES, ContactList, Group, Lists
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
from .message import InitialMail, NewMail, Profile, SystemMessage, parse_payload

log = logging.getLogger("puppets.notification")

_NO_TRID_8 = SERVER_NO_TRID | {"LST", "LSG"}  # MSNP8+ sends the SYN burst without trids
_AUTH_FAILED = {911, 917, 928, 923, 924}


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


def _groups(value: str) -> frozenset[str]:
    # Group 0 ("Other Contacts", MSNP7-9) is where ungrouped contacts live: in the model
    # they have no group, as in MSNP10+, so every version yields the same model.
    return frozenset(g for g in value.split(",") if g and g != "0")


def _parse_ubx(payload: bytes) -> tuple[str, str]:
    """The PSM and current media of a UBX payload; tolerant of junk."""
    if not payload.strip():
        return "", ""
    try:
        root = ET.fromstring(payload.decode("utf-8", "replace"))
    except ET.ParseError:
        return "", ""
    return (root.findtext("PSM") or "", root.findtext("CurrentMedia") or "")


def _psm_payload(text: str) -> bytes:
    from xml.sax.saxutils import escape

    return f"<Data><PSM>{escape(text)}</PSM><CurrentMedia></CurrentMedia></Data>".encode()


class NotificationSession:
    """One login to a notification server."""

    def __init__(
        self,
        config: ClientConfig,
        contacts: ContactList,
        emit: Callable[[object], None],
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.contacts = contacts
        self._emit = emit
        self._http = http
        self.protocol: int = 0
        self.conn: Connection | None = None
        self.closed: asyncio.Future[BaseException | None] | None = None
        self.on_invite: Callable[[SwitchboardInvite], None] | None = None
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
            mech = "TWN"
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
        if mech == "MD5":
            response = md5_response(reply.args[2], self.config.password)
        else:
            response = await twn_ticket(
                passport,
                self.config.password,
                reply.args[2],
                self.config.passport_config,
                self._http,
            )
        try:
            ok = await conn.request("USR", mech, "S", response, timeout=timeout)
        except MSNPError as e:
            raise self._auth_error(e) from e
        if not ok.args or ok.args[0] != "OK":
            raise ProtocolError(f"unexpected USR reply: {ok}")
        if self.protocol < 10 and len(ok.args) >= 3:
            self.contacts.own_nick = decode_arg(ok.args[2])
        return None

    @staticmethod
    def _auth_error(e: MSNPError) -> PuppetError:
        if e.code in _AUTH_FAILED:
            return AuthenticationError(f"login refused: {e.code} {e.meaning}")
        return e

    # --- contact-list sync ---

    async def _sync(self) -> None:
        assert self.conn is not None
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
        self._emit(ev.ContactListSynced(len(self.contacts.contacts), len(self.contacts.groups)))

    def _check_sync_done(self) -> None:
        if self._sync_expect is not None and self._sync_done is not None:
            if self._sync_seen[0] >= self._sync_expect[0] and (
                self._sync_seen[1] >= self._sync_expect[1]
            ):
                self._sync_done.set()

    def _on_lst(self, cmd: Command) -> None:
        args = cmd.args
        contacts = self.contacts
        if self.protocol < 8:
            # LST t LIST ver i n [email nick [groups]]
            if len(args) < 4:
                raise ProtocolError(f"short LST: {cmd}")
            lst = Lists.from_name(args[0])
            done = args[2] == args[3]
            if len(args) >= 6 and args[3] != "0":
                c = contacts.ensure(args[4])
                c.nick = decode_arg(args[5])
                c.lists |= lst
                if lst is Lists.FL and len(args) >= 7:
                    c.groups |= _groups(args[6])
            if lst is Lists.RL and done and self._sync_done is not None:
                self._sync_done.set()
            return
        if self.protocol >= 10:
            fields = {a[:2]: a[2:] for a in args if len(a) > 2 and a[1] == "="}
            rest = [a for a in args if not (len(a) > 2 and a[1] == "=")]
            passport = fields.get("N=")
            if not passport or not rest:
                raise ProtocolError(f"LST without N= or list bits: {cmd}")
            c = contacts.ensure(passport)
            c.nick = decode_arg(fields.get("F=", passport))
            c.guid = fields.get("C=") or c.guid
            c.lists = Lists(_int(rest[0]) & 0x1F)
            tail = rest[1:]
            if (
                self.protocol >= 12
                and tail
                and tail[0].isdigit()
                and "," not in tail[0]
                and (len(tail[0]) < 3)
            ):
                tail = tail[1:]  # network id (1 = MSN)
            if tail:
                c.groups = _groups(tail[0])
        else:
            if len(args) < 3:
                raise ProtocolError(f"short LST: {cmd}")
            c = contacts.ensure(args[0])
            c.nick = decode_arg(args[1])
            c.lists = Lists(_int(args[2]) & 0x1F)
            if len(args) >= 4:
                c.groups = _groups(args[3])
        self._last_listed = c.passport
        self._sync_seen[0] += 1
        self._check_sync_done()

    def _on_lsg(self, cmd: Command) -> None:
        args = cmd.args
        if self.protocol < 8:  # LSG t ver i n gid name 0
            if len(args) >= 5:
                self.contacts.groups[args[3]] = Group(args[3], decode_arg(args[4]))
            return
        if self.protocol >= 10:  # LSG name guid
            if len(args) < 2:
                raise ProtocolError(f"short LSG: {cmd}")
            self.contacts.groups[args[1]] = Group(args[1], decode_arg(args[0]))
        else:  # LSG id name 0
            if len(args) < 2:
                raise ProtocolError(f"short LSG: {cmd}")
            self.contacts.groups[args[0]] = Group(args[0], decode_arg(args[1]))
        self._sync_seen[1] += 1
        self._check_sync_done()

    # --- going online, keepalive, challenges ---

    def _status_args(self, status: str) -> list[str]:
        if self.protocol >= 8:
            return [status, str(self.config.caps)]
        return [status]

    async def _go_online(self) -> None:
        assert self.conn is not None
        await self.conn.request(
            "CHG", *self._status_args(self.config.initial_status), timeout=self.config.timeout
        )
        self._status_set = True
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
        handler = self._HANDLERS.get(cmd.name)
        if handler is not None:
            handler(self, cmd)
        elif cmd.is_error:
            log.info("%s: server error %s (trid %s)", self.config.passport, cmd.name, cmd.trid)
        else:
            log.debug("%s: ignoring %s", self.config.passport, cmd.name)

    def _presence(self, cmd: Command, args: list[str], initial: bool) -> None:
        if len(args) < 2:
            raise ProtocolError(f"short {cmd.name}")
        status, passport = sys.intern(args[0]), args[1]
        c = self.contacts.ensure(passport)
        c.status = status
        if len(args) >= 3:
            c.nick = decode_arg(args[2])
        if len(args) >= 4:
            c.caps = _int(args[3])
        if len(args) >= 5:
            c.msnobject = decode_arg(args[4])
        self._emit(ev.PresenceChanged(c.passport, status, c.nick, c.caps, initial))

    def _on_iln(self, cmd: Command) -> None:
        self._presence(cmd, cmd.args, True)

    def _on_nln(self, cmd: Command) -> None:
        self._presence(cmd, cmd.args, False)

    def _on_fln(self, cmd: Command) -> None:
        if not cmd.args:
            return
        c = self.contacts.ensure(cmd.args[0])
        c.status = "FLN"
        self._emit(ev.PresenceChanged(c.passport, "FLN", c.nick, c.caps, False))

    def _on_ubx(self, cmd: Command) -> None:
        if not cmd.args:
            return
        psm, media = _parse_ubx(cmd.payload or b"")
        c = self.contacts.ensure(cmd.args[0])
        c.psm = psm
        self._emit(ev.PersonalMessageChanged(c.passport, psm, media))

    def _on_msg(self, cmd: Command) -> None:
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

    def _on_add(self, cmd: Command) -> None:
        # ≤9: ADD t LIST ver email nick [gid]; MSNP10+: ADC t LIST N=email [F=nick] [C=guid] [gid]
        args = cmd.args
        if not args:
            return
        try:
            lst = Lists.from_name(args[0])
        except ValueError:
            return
        if cmd.name == "ADC":
            fields = {a[:2]: a[2:] for a in args[1:] if len(a) > 2 and a[1] == "="}
            plain = [a for a in args[1:] if not (len(a) > 2 and a[1] == "=")]
            passport = fields.get("N=")
            c = self.contacts.by_guid(fields["C="]) if "C=" in fields and not passport else None
            if c is None:
                if not passport:
                    return
                c = self.contacts.ensure(passport)
            if "C=" in fields:
                c.guid = fields["C="]
            nick = decode_arg(fields.get("F=", c.nick or c.passport))
            group = plain[0] if plain else None
        else:
            if len(args) < 4:
                return
            c = self.contacts.ensure(args[2])
            nick = decode_arg(args[3])
            group = args[4] if len(args) >= 5 else None
        c.nick = nick
        c.lists |= lst
        if group is not None:
            c.groups = c.groups | {group}
        if cmd.trid == 0 and lst is Lists.RL:
            self._emit(ev.AddedBy(c.passport, nick))
        else:
            self._emit(ev.ContactAdded(c.passport, lst, nick, group))

    def _on_rem(self, cmd: Command) -> None:
        # ≤9: REM t LIST ver email [gid]; MSNP10+: REM t LIST guid|email [gid]
        args = cmd.args
        if len(args) < 2:
            return
        try:
            lst = Lists.from_name(args[0])
        except ValueError:
            return
        rest = args[2:] if self.protocol < 10 else args[1:]
        if not rest:
            return
        who = rest[0]
        c = self.contacts.get(who) if "@" in who else self.contacts.by_guid(who)
        if c is None:
            return
        group = rest[1] if len(rest) >= 2 else None
        if group is not None:
            c.groups = c.groups - {group}
        else:
            c.lists &= ~lst
            if lst is Lists.FL:
                c.groups = frozenset()
        if cmd.trid == 0 and lst is Lists.RL:
            self._emit(ev.RemovedBy(c.passport))
        else:
            self._emit(ev.ContactRemoved(c.passport, lst, group))

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

    def _on_gtc(self, cmd: Command) -> None:
        if cmd.args:
            self.contacts.gtc = cmd.args[-1]

    def _on_blp(self, cmd: Command) -> None:
        if cmd.args:
            self.contacts.blp = cmd.args[-1]

    def _on_prp(self, cmd: Command) -> None:
        args = cmd.args
        if self.protocol < 8 and cmd.trid is not None and args and args[0].isdigit():
            args = args[1:]  # PRP t ver TYPE value
        if args and args[0] == "MFN" and len(args) >= 2:
            self.contacts.own_nick = decode_arg(args[1])
            if cmd.trid is not None and self._status_set:
                self._emit(ev.OwnNickChanged(self.contacts.own_nick))
        elif len(args) >= 2:
            self.contacts.own_phones[args[0]] = decode_arg(args[1])

    def _on_bpr(self, cmd: Command) -> None:
        args = cmd.args
        if self.protocol < 8:  # BPR ver email TYPE value
            if len(args) >= 4:
                self.contacts.ensure(args[1]).set_phone(args[2], decode_arg(args[3]))
            return
        if len(args) >= 2 and self._last_listed is not None:
            c = self.contacts.get(self._last_listed)
            if c is not None:
                c.set_phone(args[0], decode_arg(args[1]))

    def _on_rea(self, cmd: Command) -> None:
        # REA t ver email nick (own nick change confirmed, or someone else's in old versions)
        if len(cmd.args) >= 3:
            passport, nick = cmd.args[1], decode_arg(cmd.args[2])
            if passport.lower() == self.config.passport.lower():
                self.contacts.own_nick = nick
                self._emit(ev.OwnNickChanged(nick))
            else:
                c = self.contacts.ensure(passport)
                c.nick = nick

    def _on_group(self, cmd: Command) -> None:
        args = cmd.args
        groups = self.contacts.groups
        if cmd.name == "ADG":
            # ≤9: ADG t ver name gid 0 ; 10+: ADG t name guid
            if self.protocol < 10 and len(args) >= 3:
                gid, name = args[2], decode_arg(args[1])
            elif len(args) >= 2:
                gid, name = args[1], decode_arg(args[0])
            else:
                return
            groups[gid] = Group(gid, name)
            self._emit(ev.GroupAdded(gid, name))
        elif cmd.name == "RMG":
            gid = args[-1] if args else ""
            if gid in groups:
                del groups[gid]
                for c in self.contacts.contacts.values():
                    c.groups = c.groups - {gid}
                self._emit(ev.GroupRemoved(gid))
        elif cmd.name == "REG":
            # ≤9: REG t ver gid name 0 ; 10+: REG t guid name
            rest = args[1:] if self.protocol < 10 else args
            if len(rest) >= 2 and rest[0] in groups:
                groups[rest[0]].name = decode_arg(rest[1])
                self._emit(ev.GroupRenamed(rest[0], groups[rest[0]].name))

    _HANDLERS: ClassVar[dict[str, Callable[[NotificationSession, Command], None]]] = {
        "ILN": _on_iln,
        "NLN": _on_nln,
        "FLN": _on_fln,
        "UBX": _on_ubx,
        "MSG": _on_msg,
        "ADD": _on_add,
        "ADC": _on_add,
        "REM": _on_rem,
        "RNG": _on_rng,
        "OUT": _on_out,
        "CHL": _on_chl,
        "QNG": _on_qng,
        "LST": _on_lst,
        "LSG": _on_lsg,
        "GTC": _on_gtc,
        "BLP": _on_blp,
        "PRP": _on_prp,
        "BPR": _on_bpr,
        "REA": _on_rea,
        "ADG": _on_group,
        "RMG": _on_group,
        "REG": _on_group,
    }

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
        task.add_done_callback(self._tasks.discard)

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
        if self.protocol >= 10:
            await self._spaced("PRP", "MFN", encode_arg(nick))
        else:
            await self._spaced("REA", self.config.passport, encode_arg(nick))
        self.contacts.own_nick = nick

    async def set_psm(self, text: str) -> None:
        self._require(11, 99, "a personal message")
        await self._spaced("UUX", payload=_psm_payload(text))

    async def add_to_list(
        self, passport: str, lst: Lists, nick: str | None = None, group: str | None = None
    ) -> None:
        conn = self._link()
        name = lst.name or "FL"
        if self.protocol >= 10:
            if lst is Lists.FL:
                args = [name, f"N={passport}", f"F={encode_arg(nick or passport)}"]
            else:
                args = [name, f"N={passport}"]
            reply = await conn.request("ADC", *args, timeout=self.config.timeout)
            self._on_add(Command(reply.name, reply.trid, reply.args))
            if group is not None and lst is Lists.FL:
                await self.add_to_group(passport, group)
            return
        else:
            args = [name, passport, encode_arg(nick or passport)]
            if group is not None and lst is Lists.FL and self.protocol >= 7:
                args.append(group)
            reply = await conn.request("ADD", *args, timeout=self.config.timeout)
        self._on_add(Command(reply.name, reply.trid, reply.args))

    async def add_to_group(self, passport: str, group: str) -> None:
        """Put a contact already on the FL into one more group."""
        self._require(7, 99, "groups")
        c = self.contacts.get(passport)
        if self.protocol >= 10:
            if c is None or not c.guid:
                raise MSNPError(216, "ADC")
            args = ["FL", f"C={c.guid}", group]
            name = "ADC"
        else:
            args = ["FL", passport, encode_arg(c.nick if c else passport), group]
            name = "ADD"
        reply = await self._link().request(name, *args, timeout=self.config.timeout)
        self._on_add(Command(reply.name, reply.trid, reply.args))

    async def remove_from_list(self, passport: str, lst: Lists, group: str | None = None) -> None:
        conn = self._link()
        who = passport
        if self.protocol >= 10 and lst is Lists.FL:
            c = self.contacts.get(passport)
            if c is None or not c.guid:
                raise MSNPError(216, "REM")
            who = c.guid
        args = [lst.name or "FL", who]
        if group is not None:
            args.append(group)
        reply = await conn.request("REM", *args, timeout=self.config.timeout)
        self._on_rem(Command(reply.name, reply.trid, reply.args))

    async def add_group(self, name: str) -> str:
        self._require(7, 99, "groups")
        conn = self._link()
        args = [encode_arg(name)] if self.protocol >= 10 else [encode_arg(name), "0"]
        reply = await conn.request("ADG", *args, timeout=self.config.timeout)
        self._on_group(reply)
        gid = reply.args[1] if self.protocol >= 10 else reply.args[2]
        return gid

    async def remove_group(self, gid: str) -> None:
        self._require(7, 99, "groups")
        reply = await self._link().request("RMG", gid, timeout=self.config.timeout)
        self._on_group(reply)

    async def rename_group(self, gid: str, name: str) -> None:
        self._require(7, 99, "groups")
        args = [gid, encode_arg(name)] if self.protocol >= 10 else [gid, encode_arg(name), "0"]
        reply = await self._link().request("REG", *args, timeout=self.config.timeout)
        self._on_group(reply)

    async def set_privacy(self, gtc: str | None = None, blp: str | None = None) -> None:
        conn = self._link()
        if gtc is not None:
            self._on_gtc(await conn.request("GTC", gtc, timeout=self.config.timeout))
        if blp is not None:
            self._on_blp(await conn.request("BLP", blp, timeout=self.config.timeout))

    async def request_switchboard(self) -> tuple[str, int, str]:
        """XFR SB: the address and cookie of a new switchboard session."""
        reply = await self._link().request("XFR", "SB", timeout=self.config.timeout)
        if len(reply.args) < 4 or reply.args[0] != "SB":
            raise ProtocolError(f"unexpected XFR reply: {reply}")
        host, port = _split_hostport(reply.args[1])
        return host, port, reply.args[3]
