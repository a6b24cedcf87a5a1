"""The notification server session (also the dispatch server's handshake): version
negotiation, MD5/TWN sign-in, SYN, CHG and the ILN burst, nicks, PSM, CHL/QRY, PNG
and XFR SB. List commands live in ``lists.py``."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable

from puppets.challenge import PRODUCT_KEYS, answer

from . import endpoints, lists, ml, offline, presence, sso, syncformat
from .accounts import MAX_NICK_BYTES, PHONE_TYPES, STATUSES, Account, valid_passport
from .framing import Incoming, decode_arg, encode_arg, line, payload_line
from .hub import Hub
from .link import Link, Violation

Handler = Callable[["NotificationSession", Incoming], Awaitable[None] | None]

_CVR_REPLY = (
    "6.0.0602 6.0.0602 1.0.0000 "
    "http://download.microsoft.com/download/8/a/4/8a42bcae-f533-4468-b871-d2bc8dd32e9e/SETUP9x.EXE "
    "http://messenger.msn.com"
)
_HANDSHAKE = frozenset({"VER", "CVR", "INF", "USR"})
DISPATCH_GRACE = 10.0  # seconds a redirected client may keep the dispatch link open


def _product_pairs(version: int) -> dict[str, str]:
    for (low, high), pairs in PRODUCT_KEYS.items():
        if low <= version <= high:
            return dict(pairs)
    return {}


def _profile(account: Account, port: int) -> bytes:
    headers = [
        "MIME-Version: 1.0",
        "Content-Type: text/x-msmsgsprofile; charset=UTF-8",
        f"LoginTime: {int(time.time())}",
        "EmailEnabled: 0",
        "MemberIdHigh: 85040",
        f"MemberIdLow: -{abs(hash(account.passport)) % 10**9}",
        "lang_preference: 1033",
        f"preferredEmail: {account.passport}",
        "country: US",
        "PostalCode: ",
        "Gender: ",
        "Kid: 0",
        "Age: ",
        "BDayPre: ",
        "Birthday: ",
        "Wallet: ",
        "Flags: 1027",
        "sid: 507",
        "kv: 5",
        f"MSPAuth: {secrets.token_hex(24)}$$",
        "ClientIP: 127.0.0.1",
        f"ClientPort: {port}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


def _initial_mail(account: Account) -> bytes:
    return (
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/x-msmsgsinitialemailnotification; charset=UTF-8\r\n\r\n"
        f"Inbox-Unread: {account.inbox_unread}\r\nFolders-Unread: 0\r\n"
        "Inbox-URL: /cgi-bin/HoTMaiL\r\nFolders-URL: /cgi-bin/folders\r\n"
        "Post-URL: http://www.hotmail.com\r\n\r\n"
    ).encode()


class NotificationSession(Link):
    def __init__(
        self,
        hub: Hub,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        dispatch: bool = False,
    ) -> None:
        super().__init__(hub, reader, writer)
        self.dispatch = dispatch
        self.version = 0
        self.login_name = ""
        self.auth_method = ""  # set by USR I
        self.salt = ""
        self._account: Account | None = None
        self.presence_started = False  # first accepted CHG done
        self.synced = False
        self.challenges: list[str] = []
        self._chl_timer: asyncio.TimerHandle | None = None
        self._detached = False
        self._grace: asyncio.TimerHandle | None = None
        self.nonce = ""  # MSNP15+: the SSO challenge this session sent
        self.machine_guid = ""  # MSNP16+: the endpoint's id (MPOP)
        self.ep_name = ""  # MSNP18: the endpoint name from UUX PrivateEndpointData
        self.ml_sent = False  # MSNP13+: an ADL arrived

    @property
    def account(self) -> Account:
        assert self._account is not None
        return self._account

    @property
    def signed_in(self) -> bool:
        return self._account is not None

    # -- dispatch of commands -------------------------------------------------
    async def handle(self, cmd: Incoming) -> None:
        if self._account is None:
            self._handshake(cmd)
            return
        spec = COMMANDS.get(cmd.name)
        if spec is None:
            raise Violation("repeated_handshake" if cmd.name in _HANDSHAKE else "unknown_command")
        low, high, handler = spec
        if not low <= self.version <= high:
            raise Violation("wrong_version_command")
        result = handler(self, cmd)
        if result is not None:
            await result

    def reply(self, *parts: object) -> None:
        self.push(line(*parts))

    def error(self, code: int, trid: int | None) -> None:
        self.push(line(code, trid))

    # -- handshake and sign-in ------------------------------------------------
    def _handshake(self, cmd: Incoming) -> None:
        if cmd.name == "VER":
            self._ver(cmd)
        elif self.version == 0:
            raise Violation("before_ver")
        elif cmd.name == "CVR":
            if not 7 <= len(cmd.args) <= 8:
                raise Violation("malformed")
            self.reply("CVR", cmd.trid, _CVR_REPLY)
        elif cmd.name == "INF":
            if self.version >= 8:
                raise Violation("wrong_version_command")
            if cmd.args:
                raise Violation("malformed")
            self.reply("INF", cmd.trid, "MD5")
        elif cmd.name == "USR":
            self._usr(cmd)
        else:
            raise Violation("pre_auth_command")

    def _ver(self, cmd: Incoming) -> None:
        if self.version:
            raise Violation("repeated_handshake")
        offered = {int(tok[4:]) for tok in cmd.args if tok.startswith("MSNP") and tok[4:].isdigit()}
        low, high = self.hub.config.versions
        common = [v for v in offered if low <= v <= high]
        if not common:
            self.reply("VER", cmd.trid, 0)
            self.close("no_common_version")
            return
        self.version = max(common)
        # MSNP8+ servers echoed CVR0; the MSNP6 era answered the version alone.
        cvr = ["CVR0"] if self.version >= 8 and "CVR0" in cmd.args else []
        self.reply("VER", cmd.trid, f"MSNP{self.version}", *cvr)

    def _usr(self, cmd: Incoming) -> None:
        if self.version >= 15:
            self._usr_sso(cmd)
            return
        if len(cmd.args) != 3:
            raise Violation("malformed")
        method, stage, value = cmd.args
        if method != ("MD5" if self.version <= 7 else "TWN"):
            raise Violation("wrong_auth_method")
        if stage == "I":
            if self.auth_method:
                raise Violation("usr_out_of_order")
            self._usr_initial(cmd.trid, method, value)
        elif stage == "S":
            if self.auth_method != method:
                raise Violation("usr_out_of_order")
            self._usr_subsequent(cmd.trid, method, value)
        else:
            raise Violation("malformed")

    def _usr_initial(self, trid: int | None, method: str, name: str) -> None:
        if not valid_passport(name):
            self.error(911, trid)
            self.close("bad_auth")
            return
        self.login_name = name.lower()
        self.auth_method = method
        hub = self.hub
        if self.dispatch and hub.config.redirect:
            ns = f"{hub.config.host}:{hub.ns_port}"
            extra = [ns] if self.version >= 8 else []
            self.reply("XFR", trid, "NS", ns, 0, *extra)
            # The client hangs up after XFR (seed transcripts); drop laggards later.
            self._grace = asyncio.get_running_loop().call_later(
                DISPATCH_GRACE, self.close, "redirect_not_followed"
            )
            self.hub.stats.redirects += 1
        elif method == "MD5":
            self.salt = f"{int(time.time())}.{secrets.randbelow(10**9):09d}"
            self.reply("USR", trid, "MD5", "S", self.salt)
        else:
            self.reply("USR", trid, "TWN", "S", hub.tickets.challenge())

    def _usr_sso(self, cmd: Incoming) -> None:
        """MSNP15-18: ``USR t SSO I email`` then ``USR t SSO S ticket answer [guid]``."""
        args = cmd.args
        if len(args) < 3 or args[0] != "SSO":
            raise Violation("wrong_auth_method")
        if args[1] == "I" and len(args) == 3:
            if self.auth_method:
                raise Violation("usr_out_of_order")
            if self.dispatch and self.hub.config.redirect:
                self._usr_initial(cmd.trid, "SSO", args[2])
                return
            if not valid_passport(args[2]):
                self.error(911, cmd.trid)
                self.close("bad_auth")
                return
            self.login_name, self.auth_method = args[2].lower(), "SSO"
            self.nonce = secrets.token_urlsafe(48)[:64]
            self.reply("USR", cmd.trid, "SSO", "S", "MBI_KEY_OLD", self.nonce)
            return
        most = 5 if self.version >= 16 else 4
        if args[1] != "S" or not 4 <= len(args) <= most or self.auth_method != "SSO":
            raise Violation("usr_out_of_order" if args[1] == "S" else "malformed")
        ticket, response = args[2], args[3]
        guid = args[4] if len(args) == 5 else ""
        if guid and not endpoints.valid_guid(guid):
            raise Violation("malformed")
        token = self.hub.sso_tokens.check(ticket, sso.MESSENGER)
        account = self.hub.directory.get(self.login_name)
        if (
            token is None
            or account is None
            or token.passport != account.passport
            or not sso.verify_mbi_answer(token.secret, self.nonce, response)
        ):
            self.error(911, cmd.trid)
            self.close("bad_auth")
            return
        self.machine_guid = guid.lower()
        self._login(cmd.trid, account)

    def _usr_subsequent(self, trid: int | None, method: str, value: str) -> None:
        account = self.hub.directory.get(self.login_name)
        ok = False
        if account is not None and account.password is not None:
            if method == "MD5":
                digest = hashlib.md5((self.salt + account.password).encode()).hexdigest()
                ok = secrets.compare_digest(digest, value)
            else:
                ok = self.hub.tickets.valid(account.passport, value)
        if not ok or account is None:
            self.error(911, trid)
            self.close("bad_auth")
            return
        self._login(trid, account)

    def _login(self, trid: int | None, account: Account) -> None:
        hub = self.hub
        for old in hub.sessions_of(account.passport):
            if not endpoints.may_coexist(hub, old, self):
                old.signed_in_elsewhere()
        self._account = account
        hub.register(self)
        hub.stats.logins[self.version] += 1
        hub.stats.account_logins[account.passport] += 1
        nick = encode_arg(account.nick)
        if self.version <= 5:
            self.reply("USR", trid, "OK", account.passport, nick)
        elif self.version <= 7:
            self.reply("USR", trid, "OK", account.passport, nick, 1)
        elif self.version <= 9:
            self.reply("USR", trid, "OK", account.passport, nick, 1, 0)
        else:
            self.reply("USR", trid, "OK", account.passport, 1, 0)
        if self.version >= 11:
            self.reply("SBS", 0, "null")
        port = self.writer.get_extra_info("peername", ("", 0))[1]
        self.push(payload_line("MSG", "Hotmail", "Hotmail", payload=_profile(account, port)))
        if hub.config.initial_mail:
            self.push(payload_line("MSG", "Hotmail", "Hotmail", payload=_initial_mail(account)))
        if self.version >= 13:
            self.push(offline.initial_notice(account))
        if self.version >= 16:
            endpoints.announce_own(hub, account)

    # -- leaving ----------------------------------------------------------------
    def detach(self) -> None:
        """Sign the account out of this session (once): FLN to its watchers."""
        if self._detached:
            return
        self._detached = True
        if self._chl_timer is not None:
            self._chl_timer.cancel()
        account = self._account
        if account is not None and self in self.hub.sessions_of(account.passport):
            before = self.hub.seen_by(account)
            if self.hub.unregister(self):
                self.hub.stats.sign_outs[account.passport] += 1
                account.status = "FLN"
                self.hub.announce(account, before)
            elif self.version >= 16:
                endpoints.announce_own(self.hub, account)

    def signed_in_elsewhere(self) -> None:
        self.detach()
        self.push(line("OUT", "OTH"))
        self.close("other_login")

    def shutdown(self) -> None:
        self.push(line("OUT", "SSD"))
        self.close("shutdown")

    def on_closed(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        self.detach()

    # -- signed-in commands ------------------------------------------------------
    def cmd_out(self, cmd: Incoming) -> None:
        self.detach()
        self.push(line("OUT"))
        self.close("client_out")

    def cmd_png(self, cmd: Incoming) -> None:
        self.hub.stats.pings += 1
        if not self.hub.config.answer_png:
            return
        if self.version >= 9:
            self.reply("QNG", self.hub.config.qng_interval)
        else:
            self.reply("QNG")

    def cmd_syn(self, cmd: Incoming) -> None:
        if self.version >= 13:
            self.error(502, cmd.trid)  # the list lives in the address book from MSNP13
            return
        if self.synced:
            raise Violation("repeated_syn")
        self.synced = True
        account, trid = self.account, cmd.trid or 0
        directory = self.hub.directory

        def phones_of(passport: str) -> dict[str, str]:
            other = directory.get(passport)
            return other.phones if other is not None else {}

        if self.version <= 9:
            if len(cmd.args) != 1 or not cmd.args[0].isdigit():
                raise Violation("malformed")
            client_version = int(cmd.args[0])
            if self.version <= 7:
                out = syncformat.sync_old(self.version, trid, account, client_version, phones_of)
            elif client_version == account.list_version:
                out = [line("SYN", trid, account.list_version)]
            else:
                out = syncformat.sync_8(self.version, trid, account, phones_of)
        else:
            if len(cmd.args) != 2:
                raise Violation("malformed")
            out = syncformat.sync_10(self.version, trid, account, phones_of)
        self.push(b"".join(out))

    def cmd_chg(self, cmd: Incoming) -> None:
        args = cmd.args
        most = 1 if self.version <= 7 else 2 if self.version == 8 else 3
        if not 1 <= len(args) <= most:
            raise Violation("malformed_chg")
        if len(args) == 1 and self.version >= 8:
            return  # MSNP8+ servers ignore a CHG without client caps
        status = args[0]
        if status not in STATUSES:
            self.error(201, cmd.trid)
            return
        caps = args[1] if len(args) >= 2 else "0"
        ext = "0"
        if self.version >= 16:
            caps, _, ext = caps.partition(":")  # caps:extcaps
        if not caps.isdigit() or not ext.isdigit():
            raise Violation("malformed_chg")
        account = self.account
        before = self.hub.seen_by(account)
        account.status = status
        account.caps, account.ext_caps = int(caps), int(ext)
        account.msnobj = decode_arg(args[2]) if len(args) == 3 else ""
        self.reply("CHG", cmd.trid, *args)
        first = not self.presence_started
        self.presence_started = True
        if first:
            self._initial_presence(cmd.trid or 0)
        self.hub.announce(account, before)
        if first and self.hub.config.send_chl and self.version >= 6:
            self.send_challenge()
            if self.hub.config.chl_interval:
                self._schedule_challenge()

    def _initial_presence(self, trid: int) -> None:
        account, directory = self.account, self.hub.directory
        psms: list[bytes] = []
        for passport in sorted(account.lists["FL"]):
            other = directory.get(passport)
            if other is not None and other.visible_to(account.passport):
                self.push(presence.iln(self.version, trid, other))
                if other.psm:
                    psms.append(presence.ubx(self.version, other))
        self.push(b"".join(psms))

    def send_challenge(self) -> None:
        challenge = "".join(str(secrets.randbelow(10)) for _ in range(20))
        self.challenges.append(challenge)
        self.hub.stats.challenges_sent += 1
        self.reply("CHL", 0, challenge)

    def _schedule_challenge(self) -> None:
        interval = self.hub.config.chl_interval
        if interval and not self.closed:
            loop = asyncio.get_running_loop()
            self._chl_timer = loop.call_later(interval, self._challenge_tick)

    def _challenge_tick(self) -> None:
        if not self.closed:
            self.send_challenge()
            self._schedule_challenge()

    def cmd_qry(self, cmd: Incoming) -> None:
        if len(cmd.args) != 1 or cmd.payload is None or not self.challenges:
            raise Violation("unexpected_qry")
        challenge = self.challenges.pop(0)
        product_id = cmd.args[0]
        key = _product_pairs(self.version).get(product_id)
        given = cmd.payload.decode("ascii", "replace")
        if key is not None and len(cmd.payload) == 32:
            expected = answer(challenge, self.version, product_id, key)
            if secrets.compare_digest(expected, given):
                self.hub.stats.qry_ok += 1
                self.reply("QRY", cmd.trid)
                return
        self.hub.stats.qry_failed += 1
        self.error(540, cmd.trid)
        self.close("qry_failed")

    def cmd_xfr(self, cmd: Incoming) -> None:
        if cmd.args != ["SB"]:
            raise Violation("malformed")
        if not self.presence_started or self.account.status == "HDN":
            self.error(913, cmd.trid)
            return
        if self.account.passport in self.hub.held_xfr:
            self.hub.stats.xfr_held += 1  # fault: no answer, the client waits
            return
        assert self.hub.switchboards is not None
        cookie = self.hub.switchboards.issue_cookie(self.account.passport, self.version)
        address = f"{self.hub.config.host}:{self.hub.sb_port}"
        self.reply("XFR", cmd.trid, "SB", address, "CKI", cookie)

    def _check_nick(self, raw: str, trid: int | None) -> str | None:
        if len(raw.encode()) > MAX_NICK_BYTES:
            self.error(209, trid)
            return None
        return decode_arg(raw)

    def set_own_nick(self, nick: str) -> None:
        account = self.account
        before = self.hub.seen_by(account)
        account.nick = nick
        self.hub.announce(account, before)

    def cmd_rea(self, cmd: Incoming) -> None:
        if len(cmd.args) != 2:
            raise Violation("malformed")
        passport = cmd.args[0].lower()
        nick = self._check_nick(cmd.args[1], cmd.trid)
        if nick is None:
            return
        account = self.account
        if passport == account.passport:
            self.set_own_nick(nick)
        elif passport in account.contacts:
            account.contacts[passport].nick = nick
        else:
            self.error(216, cmd.trid)
            return
        self.reply("REA", cmd.trid, account.bump(), passport, encode_arg(nick))

    def cmd_prp(self, cmd: Incoming) -> None:
        if not 1 <= len(cmd.args) <= 2:
            raise Violation("malformed")
        kind = cmd.args[0]
        raw = cmd.args[1] if len(cmd.args) == 2 else ""
        account = self.account
        if kind == "MFN" and self.version >= 10:
            nick = self._check_nick(raw, cmd.trid)
            if nick is None:
                return
            if not nick:
                raise Violation("malformed")
            self.set_own_nick(nick)
            self.reply("PRP", cmd.trid, "MFN", encode_arg(nick))
            return
        if kind not in PHONE_TYPES:
            raise Violation("malformed_prp")
        value = decode_arg(raw)
        if value:
            account.phones[kind] = value
        else:
            account.phones.pop(kind, None)
        tail = [encode_arg(value)] if value else []
        if self.version <= 9:
            self.reply("PRP", cmd.trid, account.bump(), kind, *tail)
        else:
            account.bump()
            self.reply("PRP", cmd.trid, kind, *tail)

    def cmd_sbp(self, cmd: Incoming) -> None:
        if len(cmd.args) != 3 or cmd.args[1] != "MFN":
            raise Violation("malformed")
        contact = self.account.contact_by_guid(cmd.args[0])
        if contact is None:
            self.error(208, cmd.trid)
            return
        nick = self._check_nick(cmd.args[2], cmd.trid)
        if nick is None:
            return
        contact.nick = nick
        self.account.bump()
        self.reply("SBP", cmd.trid, contact.guid, "MFN", encode_arg(nick))

    def cmd_uux(self, cmd: Incoming) -> None:
        if cmd.args or cmd.payload is None:
            raise Violation("malformed")
        if self.version >= 18 and endpoints.is_endpoint_data(cmd.payload):
            endpoints.take_uux(self, cmd.payload)
            self.reply("UUX", cmd.trid, 0)
            endpoints.announce_own(self.hub, self.account)
            return
        self.account.psm = cmd.payload
        self.reply("UUX", cmd.trid, 0)
        self.hub.announce_psm(self.account)
        if self.version >= 16:
            endpoints.announce_own(self.hub, self.account)

    def cmd_url(self, cmd: Incoming) -> None:
        if not cmd.args:
            raise Violation("malformed")
        login = f"http://{self.hub.config.host}:{self.hub.http_port}/md5auth.srf?lc=1033"
        self.reply("URL", cmd.trid, "/cgi-bin/HoTMaiL", login, 2)


# name -> (first version, last version, handler)
COMMANDS: dict[str, tuple[int, int, Handler]] = {
    "OUT": (2, 99, NotificationSession.cmd_out),
    "PNG": (2, 99, NotificationSession.cmd_png),
    "SYN": (2, 99, NotificationSession.cmd_syn),
    "ADL": (13, 99, ml.cmd_adl),
    "RML": (13, 99, ml.cmd_rml),
    "FQY": (13, 99, ml.cmd_fqy),
    "CHG": (2, 99, NotificationSession.cmd_chg),
    "XFR": (2, 99, NotificationSession.cmd_xfr),
    "QRY": (6, 99, NotificationSession.cmd_qry),
    "REA": (2, 9, NotificationSession.cmd_rea),
    "PRP": (5, 99, NotificationSession.cmd_prp),
    "SBP": (10, 12, NotificationSession.cmd_sbp),
    "UUX": (11, 99, NotificationSession.cmd_uux),
    "URL": (2, 99, NotificationSession.cmd_url),
    "ADD": (2, 9, lists.cmd_add),
    "ADC": (10, 12, lists.cmd_adc),
    "REM": (2, 12, lists.cmd_rem),
    "ADG": (7, 12, lists.cmd_adg),
    "RMG": (7, 12, lists.cmd_rmg),
    "REG": (7, 12, lists.cmd_reg),
    "GTC": (2, 12, lists.cmd_gtc),
    "BLP": (2, 99, lists.cmd_blp),
}
