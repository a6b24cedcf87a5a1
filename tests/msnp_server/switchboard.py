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
from .presence import caps_of

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
        self.endpoint = ""  # MSNP16+: the machine GUID after "email;" (MPOP)
        self.version = 0
        self.conversation: Conversation | None = None

    @property
    def key(self) -> str:
        """This member's name in the conversation: ``email;{guid}`` for an MSNP16+
        endpoint, the passport otherwise."""
        return f"{self.passport};{self.endpoint}" if self.endpoint else self.passport

    def name_for(self, viewer: SBConnection) -> str:
        return self.key if viewer.version >= 16 else self.passport

    def visible_to(self, viewer: SBConnection) -> bool:
        """MSNP2-15 clients never see the owner's other endpoints (their own passport)."""
        return viewer.version >= 16 or self.passport != viewer.passport

    @property
    def account(self) -> Account:
        return self.hub.directory[self.passport]

    def _caps(self, account: Account) -> list[object]:
        return [caps_of(self.version, account)] if self.version >= 12 else []

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
        passport, _, endpoint = cmd.args[0].lower().partition(";")
        cookie = cmd.args[1]
        version = self.server.take_cookie(passport, cookie)
        if version is None or (endpoint and version < 16):
            self._refuse(cmd.trid)
            return
        self.passport, self.version, self.endpoint = passport, version, endpoint
        self.conversation = self.server.new_conversation()
        self.conversation.members[self.key] = self
        self.server.touch(self.conversation)
        self.push(line("USR", cmd.trid, "OK", passport, encode_arg(self.account.nick)))

    def _ans(self, cmd: Incoming) -> None:
        if len(cmd.args) != 3:
            raise Violation("malformed")
        key, cookie, sessid = cmd.args[0].lower(), cmd.args[1], cmd.args[2]
        conv = self.server.conversations.get(sessid)
        invitation = conv.invited.get(key) if conv is not None else None
        if conv is None or invitation is None or invitation.cookie != cookie:
            self._refuse(cmd.trid)
            return
        del conv.invited[key]
        passport, _, endpoint = key.partition(";")
        self.passport, self.version, self.conversation = passport, invitation.version, conv
        self.endpoint = endpoint
        directory = self.hub.directory
        others = [o for o in conv.members.values() if o.visible_to(self)]
        if self.version < 16:  # one line per person, however many endpoints they have
            unique: dict[str, SBConnection] = {}
            for o in others:
                unique.setdefault(o.passport, o)
            others = list(unique.values())
        out = []
        for i, other in enumerate(others, 1):
            acc = directory[other.passport]
            out.append(
                line(
                    "IRO",
                    cmd.trid,
                    i,
                    len(others),
                    other.name_for(self),
                    encode_arg(acc.nick),
                    *self._caps(acc),
                )
            )
        out.append(line("ANS", cmd.trid, "OK"))
        self.push(b"".join(out))
        me = self.account
        for other in conv.members.values():
            if self.visible_to(other):
                other.push(line("JOI", self.name_for(other), encode_arg(me.nick), *other._caps(me)))
        conv.members[self.key] = self
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
        if any(m.passport == passport for m in conv.members.values()):
            self.push(line(215, cmd.trid))
            return
        if not invitee.visible_to(self.passport):
            self.push(line(217, cmd.trid))
            return
        self.push(line("CAL", cmd.trid, "RINGING", conv.id))
        # Every endpoint of the invitee rings (MPOP), and from MSNP16 so do the caller's
        # own other endpoints, so that they see the conversation too.
        self._ring(conv, passport)
        if self.version >= 16:
            self._ring(conv, self.passport)

    def _ring(self, conv: Conversation, passport: str) -> None:
        me = self.account
        address = f"{self.hub.config.host}:{self.hub.sb_port}"
        for session in self.hub.sessions_of(passport):
            guid = session.machine_guid if session.version >= 16 else ""
            key = f"{passport};{guid}" if guid else passport
            if key in conv.members or key in conv.invited or key == self.key:
                continue
            if passport == self.passport and not guid:
                continue
            cookie = _cookie()
            conv.invited[key] = Invitation(cookie, session.version)
            inviter = self.key if session.version >= 16 else me.passport
            tail = ["U", "messenger.msn.com", 1] if session.version >= 13 else []
            session.push(
                line("RNG", conv.id, address, "CKI", cookie, inviter, encode_arg(me.nick), *tail)
            )

    def _msg(self, cmd: Incoming) -> None:
        if len(cmd.args) != 1 or cmd.args[0] not in ("U", "N", "A", "D") or cmd.payload is None:
            raise Violation("malformed")
        conv = self.conversation
        assert conv is not None
        kind = cmd.args[0]
        me = self.account
        if self.passport in self.hub.swallowed_msg:
            self.hub.stats.messages_swallowed += 1  # fault: read, never relayed or answered
            return
        delivered = 0
        for tap in self.hub.sb_taps:
            tap(self.passport, cmd.payload)
        for key, other in conv.members.items():
            if key != self.key and not other.closed and self.visible_to(other):
                name = self.name_for(other)
                other.push(payload_line("MSG", name, encode_arg(me.nick), payload=cmd.payload))
                if other.passport != self.passport:
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
        if conv is None or conv.members.get(self.key) is not self:
            return
        del conv.members[self.key]
        if not conv.ended:
            for other in conv.members.values():
                if self.visible_to(other):
                    other.push(line("BYE", self.name_for(other)))
        if not conv.members:
            self.server.drop(conv)

    def on_closed(self) -> None:
        self._leave()
