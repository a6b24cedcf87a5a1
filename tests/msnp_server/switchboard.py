"""The switchboard server: XFR cookies, conversations, CAL/RNG/ANS/IRO/JOI, message relay
with ACK/NAK, BYE, the 1664-byte payload cap and the idle timeout."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from .accounts import Account, valid_passport
from .framing import Incoming, encode_arg, line, payload_line
from .hub import Hub
from .link import Link, Violation

COOKIE_TTL = 120.0


def _cookie() -> str:
    return f"{secrets.randbelow(10**6)}.{int(time.time())}.{secrets.randbelow(10**5)}"


@dataclass(slots=True)
class Invitation:
    cookie: str
    version: int


@dataclass(eq=False)
class Conversation:
    id: str
    members: dict[str, SBConnection] = field(default_factory=dict)
    invited: dict[str, Invitation] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    ended: bool = False


class SwitchboardServer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.cookies: dict[str, tuple[str, int, float]] = {}  # cookie -> passport, version, expiry
        self.conversations: dict[str, Conversation] = {}

    def issue_cookie(self, passport: str, version: int) -> str:
        now = time.monotonic()
        if len(self.cookies) > 4096:
            self.cookies = {k: v for k, v in self.cookies.items() if v[2] > now}
        cookie = _cookie()
        self.cookies[cookie] = (passport, version, now + COOKIE_TTL)
        return cookie

    def take_cookie(self, passport: str, cookie: str) -> int | None:
        """The protocol version the cookie was issued for, if it is valid (single use)."""
        found = self.cookies.pop(cookie, None)
        if found is None or found[0] != passport or found[2] < time.monotonic():
            return None
        return found[1]

    def new_conversation(self) -> Conversation:
        while True:
            sessid = str(10_000_000 + secrets.randbelow(90_000_000))
            if sessid not in self.conversations:
                conv = self.conversations[sessid] = Conversation(sessid)
                return conv

    def touch(self, conv: Conversation) -> None:
        timeout = self.hub.config.idle_timeout
        if timeout is None or conv.ended:
            return
        if conv.timer is not None:
            conv.timer.cancel()
        conv.timer = asyncio.get_running_loop().call_later(timeout, self._expire, conv)

    def _expire(self, conv: Conversation) -> None:
        """Idle timeout: every participant gets ``BYE other 1`` and is disconnected."""
        conv.ended = True
        members = list(conv.members.values())
        for member in members:
            member.push(b"".join(line("BYE", o.passport, 1) for o in members if o is not member))
        for member in members:
            member.close("idle_timeout")
        self.drop(conv)

    def drop(self, conv: Conversation) -> None:
        if conv.timer is not None:
            conv.timer.cancel()
        self.conversations.pop(conv.id, None)

    def close_all(self, reason: str) -> None:
        for conv in list(self.conversations.values()):
            conv.ended = True
            for member in list(conv.members.values()):
                member.close(reason)
            self.drop(conv)


class SBConnection(Link):
    def __init__(
        self, hub: Hub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(hub, reader, writer)
        self.max_payload = hub.config.sb_payload_cap
        assert hub.switchboards is not None
        self.server: SwitchboardServer = hub.switchboards
        self.passport = ""
        self.version = 0
        self.conversation: Conversation | None = None

    @property
    def account(self) -> Account:
        return self.hub.directory[self.passport]

    def _caps(self, account: Account) -> list[object]:
        return [account.caps] if self.version >= 12 else []

    async def handle(self, cmd: Incoming) -> None:
        if self.conversation is None:
            if cmd.name == "USR":
                self._usr(cmd)
            elif cmd.name == "ANS":
                self._ans(cmd)
            else:
                raise Violation("sb_before_auth")
        elif cmd.name == "CAL":
            self._cal(cmd)
        elif cmd.name == "MSG":
            self._msg(cmd)
        elif cmd.name == "OUT":
            self._leave()
            self.close("client_out")
        else:
            raise Violation("unknown_command")

    def _refuse(self, trid: int | None) -> None:
        self.push(line(911, trid))
        self.close("bad_auth")

    def _usr(self, cmd: Incoming) -> None:
        if len(cmd.args) != 2:
            raise Violation("malformed")
        passport, cookie = cmd.args[0].lower(), cmd.args[1]
        version = self.server.take_cookie(passport, cookie)
        if version is None:
            self._refuse(cmd.trid)
            return
        self.passport, self.version = passport, version
        self.conversation = self.server.new_conversation()
        self.conversation.members[passport] = self
        self.server.touch(self.conversation)
        self.push(line("USR", cmd.trid, "OK", passport, encode_arg(self.account.nick)))

    def _ans(self, cmd: Incoming) -> None:
        if len(cmd.args) != 3:
            raise Violation("malformed")
        passport, cookie, sessid = cmd.args[0].lower(), cmd.args[1], cmd.args[2]
        conv = self.server.conversations.get(sessid)
        invitation = conv.invited.get(passport) if conv is not None else None
        if conv is None or invitation is None or invitation.cookie != cookie:
            self._refuse(cmd.trid)
            return
        del conv.invited[passport]
        self.passport, self.version, self.conversation = passport, invitation.version, conv
        others = list(conv.members.values())
        directory = self.hub.directory
        out = []
        for i, other in enumerate(others, 1):
            acc = directory[other.passport]
            out.append(
                line(
                    "IRO",
                    cmd.trid,
                    i,
                    len(others),
                    acc.passport,
                    encode_arg(acc.nick),
                    *self._caps(acc),
                )
            )
        out.append(line("ANS", cmd.trid, "OK"))
        self.push(b"".join(out))
        me = self.account
        for other in others:
            other.push(line("JOI", me.passport, encode_arg(me.nick), *other._caps(me)))
        conv.members[passport] = self
        self.server.touch(conv)

    def _cal(self, cmd: Incoming) -> None:
        if len(cmd.args) != 1:
            raise Violation("malformed")
        conv = self.conversation
        assert conv is not None
        passport = cmd.args[0].lower()
        invitee = self.hub.directory.get(passport) if valid_passport(passport) else None
        if invitee is None:
            self.push(line(208, cmd.trid))
            return
        if passport in conv.members:
            self.push(line(215, cmd.trid))
            return
        if not invitee.visible_to(self.passport):
            self.push(line(217, cmd.trid))
            return
        self.push(line("CAL", cmd.trid, "RINGING", conv.id))
        session = self.hub.session(passport)
        if session is None:
            return  # an "online" account no client drives: it rings forever
        cookie = _cookie()
        conv.invited[passport] = Invitation(cookie, session.version)
        me = self.account
        address = f"{self.hub.config.host}:{self.hub.sb_port}"
        session.push(line("RNG", conv.id, address, "CKI", cookie, me.passport, encode_arg(me.nick)))

    def _msg(self, cmd: Incoming) -> None:
        if len(cmd.args) != 1 or cmd.args[0] not in ("U", "N", "A", "D") or cmd.payload is None:
            raise Violation("malformed")
        conv = self.conversation
        assert conv is not None
        kind = cmd.args[0]
        me = self.account
        data = payload_line("MSG", me.passport, encode_arg(me.nick), payload=cmd.payload)
        delivered = 0
        for passport, other in conv.members.items():
            if passport != self.passport and not other.closed:
                other.push(data)
                delivered += 1
        stats = self.hub.stats
        stats.messages_relayed += delivered
        if delivered and kind in ("A", "D"):
            stats.acks += 1
            self.push(line("ACK", cmd.trid))
        elif not delivered and kind != "U" and self.hub.config.send_nak:
            stats.naks += 1
            self.push(line("NAK", cmd.trid))
        self.server.touch(conv)

    def _leave(self) -> None:
        conv = self.conversation
        if conv is None or conv.members.get(self.passport) is not self:
            return
        del conv.members[self.passport]
        if not conv.ended:
            for other in conv.members.values():
                other.push(line("BYE", self.passport))
        if not conv.members:
            self.server.drop(conv)

    def on_closed(self) -> None:
        self._leave()
