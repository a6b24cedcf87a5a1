r"""Lines from the server → state changes and :class:`IRCEvent`\ s. Mixed into
:class:`~msnbridge.irc.connection.IRCConnection`; kept apart so the connection module
holds the lifecycle and sending, and this one the reading."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import Callable

from irc.client import Event, NickMask
from irc.features import FeatureSet

from . import lines
from .events import ConnectionEvent, IRCEvent, Kind, NickChanged
from .refusal import NUMERIC_KINDS, Refusal, classify
from .sendqueue import Priority, SendQueue
from .session import Session
from .settings import IRCSettings

NICK_ERRORS = {"432", "433", "436", "437"}
JOIN_ERRORS = {"403", "405", "471", "473", "474", "475", "477"}
SEND_ERRORS = {"401", "404"}  # no such nick/channel, cannot send to channel
SASL_NUMERICS = {"903", "904", "905", "906", "907"}
CTCP_ACTION = "ACTION"
_EVENT_TARGET = "\0"  # sentinel: use the parsed event's target
# Event types (irc.client's names) with an ``_on_<type>`` handler below. Explicit, so a
# server cannot reach other methods by inventing a command.
HANDLED = frozenset(
    "cap authenticate ping error welcome endofmotd nomotd featurelist nick quit join part "
    "kick invite mode topic away tagmsg pubmsg privmsg pubnotice privnotice action ctcp".split()
)


class IncomingMixin:
    # Provided by IRCConnection.
    settings: IRCSettings
    queue: SendQueue
    nick: str
    wanted_nick: str
    channels: dict[str, tuple[str, str | None]]
    joined: set[str]
    features: FeatureSet
    caps: frozenset[str]
    _session: Session | None
    _userhost_len: tuple[int, int] | None
    _emit: Callable[[ConnectionEvent], None]
    _reg: Callable[[str], None]
    _try_regain_nick: Callable[[], None]
    nicklen: int
    is_channel: Callable[[str], bool]

    def _dispatch(self, session: Session, event: Event) -> None:
        if session is not self._session:
            return
        etype = str(event.type)
        code = getattr(event.type, "code", etype)
        args = [str(a) for a in event.arguments]
        if etype in HANDLED:
            getattr(self, f"_on_{etype}")(session, event, args)
        elif code in NICK_ERRORS:
            self._nick_error(session, code, args)
        elif code in JOIN_ERRORS and args:
            self.joined.discard(args[0].lower())
            if code in ("403", "405"):  # cannot ever succeed: stop rejoining it
                self.channels.pop(args[0].lower(), None)
            self._emit_irc(Kind.JOIN_FAILED, event, target=args[0], params=(code, args[-1]))
        elif code in SEND_ERRORS and args:
            self._emit_irc(Kind.SEND_FAILED, event, target=args[0], params=(code, args[-1]))
        elif code in SASL_NUMERICS or code == "421":
            for line in session.caps.on_numeric(code, args):
                self._reg(line)
            if (
                session.caps.sasl_refusal
                and session.caps.sasl_refusal.kind in self.settings.final_refusals
            ):
                session.end(session.caps.sasl_refusal.message, session.caps.sasl_refusal)
        elif code in ("464", "465"):
            session.refusal = Refusal(NUMERIC_KINDS[code], args[-1] if args else code)

    def _on_cap(self, session: Session, event: Event, args: list[str]) -> None:
        if not args:
            return
        for line in session.caps.on_cap(args[0], args[1:]):
            # After registration (CAP NEW, a late LS) requests are ordinary control lines.
            self.queue.put(line, Priority.CONTROL if session.welcomed else Priority.REGISTRATION)
        if session.welcomed:
            self.caps = frozenset(session.caps.enabled)

    def _on_authenticate(self, session: Session, event: Event, args: list[str]) -> None:
        for line in session.caps.on_authenticate(str(event.target)):
            self._reg(line)

    def _on_ping(self, session: Session, event: Event, args: list[str]) -> None:
        self.queue.put(f"PONG :{event.target}", Priority.PONG)

    def _on_error(self, session: Session, event: Event, args: list[str]) -> None:
        message = str(event.target or "")
        session.end(f"ERROR: {message}", session.refusal or classify(message))

    def _on_welcome(self, session: Session, event: Event, args: list[str]) -> None:
        session.welcomed = True
        session.caps.on_welcome()
        self.nick = str(event.target)
        loop = asyncio.get_running_loop()
        session.motd_timer = loop.call_later(self.settings.motd_grace, self._motd_done, session)

    def _on_endofmotd(self, session: Session, event: Event, args: list[str]) -> None:
        self._motd_done(session)

    _on_nomotd = _on_endofmotd

    def _on_featurelist(self, session: Session, event: Event, args: list[str]) -> None:
        self.features = session.conn.features

    def _motd_done(self, session: Session) -> None:
        if not session.registered.done():
            session.registered.set_result(None)

    def _nick_error(self, session: Session, code: str, args: list[str]) -> None:
        if session.welcomed:
            return  # a regain attempt failed: keep the nick we have, retry later
        if session.nick_alternatives is None:
            base = lines.sanitize_nick(self.wanted_nick, self.nicklen)
            session.nick_alternatives = lines.nick_alternatives(base, self.nicklen)
        candidate = next(session.nick_alternatives, None)
        if candidate is None:  # all numbered variants taken: something random
            candidate = lines.sanitize_nick(f"msn{secrets.randbelow(10**6)}", self.nicklen)
        self.nick = candidate
        self._reg(f"NICK {candidate}")

    def _on_nick(self, session: Session, event: Event, args: list[str]) -> None:
        old, new = NickMask(event.source).nick, str(event.target)
        if old.lower() == self.nick.lower():
            self.nick = new
            self._emit(NickChanged(old, new))
        elif old.lower() == self.wanted_nick.lower():
            self._try_regain_nick()  # the holder moved away
        self._emit_irc(Kind.NICK, event, target=new)

    def _on_quit(self, session: Session, event: Event, args: list[str]) -> None:
        if NickMask(event.source).nick.lower() == self.wanted_nick.lower():
            self._try_regain_nick()
        self._emit_irc(Kind.QUIT, event, target=None, text=args[0] if args else "")

    def _on_join(self, session: Session, event: Event, args: list[str]) -> None:
        mask = NickMask(event.source)
        channel = str(event.target)
        if mask.nick.lower() == self.nick.lower():
            self.joined.add(channel.lower())
            if mask.user and mask.host:
                self._userhost_len = (len(mask.user), len(mask.host.encode("utf-8")))
        self._emit_irc(Kind.JOIN, event, target=channel, params=tuple(args))

    def _on_part(self, session: Session, event: Event, args: list[str]) -> None:
        if NickMask(event.source).nick.lower() == self.nick.lower():
            self.joined.discard(str(event.target).lower())
        self._emit_irc(Kind.PART, event, text=args[0] if args else "")

    def _on_kick(self, session: Session, event: Event, args: list[str]) -> None:
        kicked = args[0] if args else ""
        if kicked.lower() == self.nick.lower():
            # No automatic rejoin: whether to come back is the caller's decision.
            self.joined.discard(str(event.target).lower())
            self.channels.pop(str(event.target).lower(), None)
        self._emit_irc(Kind.KICK, event, text=args[1] if len(args) > 1 else "", params=(kicked,))

    def _on_invite(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.INVITE, event, params=tuple(args))

    def _on_mode(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.MODE, event, params=tuple(args))

    def _on_topic(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.TOPIC, event, text=args[0] if args else "")

    def _on_away(self, session: Session, event: Event, args: list[str]) -> None:
        # away-notify: AWAY :message (away) or AWAY (back); the library made the first
        # argument the target.
        self._emit_irc(
            Kind.AWAY, event, target=None, text=str(event.target) if event.target else None
        )

    def _on_tagmsg(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.TAGMSG, event)

    def _on_pubmsg(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.PRIVMSG, event, text=args[0])

    _on_privmsg = _on_pubmsg

    def _on_pubnotice(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.NOTICE, event, text=args[0])

    _on_privnotice = _on_pubnotice

    def _on_action(self, session: Session, event: Event, args: list[str]) -> None:
        self._emit_irc(Kind.ACTION, event, text=args[0] if args else "")

    def _on_ctcp(self, session: Session, event: Event, args: list[str]) -> None:
        kind = args[0].upper() if args else ""
        if kind == CTCP_ACTION or self.is_channel(str(event.target)):
            return  # ACTION comes as its own event; channel CTCPs are not answered
        nick = NickMask(event.source).nick
        reply = {
            "VERSION": self.settings.ctcp_version,
            "PING": args[1] if len(args) > 1 else "",
            "TIME": datetime.datetime.now(datetime.UTC).strftime("%a %b %d %H:%M:%S %Y UTC"),
            "CLIENTINFO": "ACTION CLIENTINFO PING TIME VERSION",
        }.get(kind)
        if reply is not None:
            self.queue.put(
                f"NOTICE {nick} :\x01{kind} {lines.clean_text(reply)}\x01",
                Priority.CTCP_REPLY,
                nick,
            )

    def _emit_irc(
        self,
        kind: Kind,
        event: Event,
        *,
        target: str | None = _EVENT_TARGET,
        text: str | None = None,
        params: tuple[str, ...] = (),
    ) -> None:
        tags = {t["key"]: t["value"] for t in (event.tags or [])}
        source = str(event.source or "")
        self._emit(
            IRCEvent(
                kind=kind,
                source=source,
                nick=NickMask(source).nick if source else "",
                target=_target_of(event) if target == _EVENT_TARGET else target,
                text=text,
                params=params,
                tags=tags,
                server_time=_parse_time(tags.get("time")),
            )
        )


def _target_of(event: Event) -> str | None:
    return None if event.target is None else str(event.target)


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
