"""The bridge's IRC bot connection: an :class:`IRCConnection` that also reports channel
member lists (NAMES), WHOIS account replies and account-notify changes, which the bot
needs and puppet connections do not."""

from __future__ import annotations

from dataclasses import dataclass

from irc.client import Event, NickMask

from .connection import IRCConnection
from .session import Session

_PREFIXES = "~&@%+"


@dataclass(frozen=True, slots=True)
class Names:
    """The members of a channel (NAMES reply, complete at end of names)."""

    channel: str
    nicks: frozenset[str]  # as shown, without status prefixes
    voiced: frozenset[str]


@dataclass(frozen=True, slots=True)
class WhoisAccount:
    """End of a WHOIS: ``account`` is the services account, None when not logged in or
    when the network has no services."""

    nick: str
    account: str | None


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """account-notify: ``nick`` logged in to ``account`` (None: logged out)."""

    nick: str
    account: str | None


class BotConnection(IRCConnection):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._names: dict[str, tuple[set[str], set[str]]] = {}
        self._whois: dict[str, str | None] = {}

    def whois(self, nick: str) -> None:
        self.send_raw(f"WHOIS {nick}")

    def _dispatch(self, session: Session, event: Event) -> None:
        if session is self._session:
            etype = str(event.type)
            args = [str(a) for a in event.arguments]
            if etype == "namreply" and len(args) >= 3:
                nicks, voiced = self._names.setdefault(args[1].lower(), (set(), set()))
                for entry in args[2].split():
                    nick = entry.lstrip(_PREFIXES)
                    nicks.add(nick)
                    if "+" in entry[: len(entry) - len(nick)]:
                        voiced.add(nick)
                return
            if etype == "endofnames" and args:
                nicks, voiced = self._names.pop(args[0].lower(), (set(), set()))
                self._emit(Names(args[0], frozenset(nicks), frozenset(voiced)))
                return
            if etype == "whoisaccount" and len(args) >= 2:
                self._whois[args[0].lower()] = args[1]
                return
            if etype == "endofwhois" and args:
                self._emit(WhoisAccount(args[0], self._whois.pop(args[0].lower(), None)))
                return
            if etype == "account":
                account = str(event.target or "")
                nick = NickMask(str(event.source)).nick
                self._emit(AccountChanged(nick, None if account in ("", "*") else account))  # type: ignore[arg-type]
                return
        super()._dispatch(session, event)
