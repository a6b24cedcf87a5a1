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
    when the network has no services. ``connection`` tells one IRC connection of the nick
    from the next: ``user@host`` (311) and the signon time (317) where the server gives
    it; None when the nick is not on IRC."""

    nick: str
    account: str | None
    connection: str | None = None


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
        self._whois_user: dict[str, str] = {}  # lower nick → "user@host"
        self._whois_signon: dict[str, str] = {}

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
            if etype == "whoisuser" and len(args) >= 3:
                self._whois_user[args[0].lower()] = f"{args[1]}@{args[2]}"
                return
            if etype == "whoisidle" and len(args) >= 3 and args[2].isdigit():
                self._whois_signon[args[0].lower()] = args[2]
                return
            if etype == "endofwhois" and args:
                key = args[0].lower()
                user = self._whois_user.pop(key, None)
                signon = self._whois_signon.pop(key, None)
                connection = f"{user} {signon or '?'}" if user else None
                self._emit(WhoisAccount(args[0], self._whois.pop(key, None), connection))
                return
            if etype == "account":
                account = str(event.target or "")
                nick = NickMask(str(event.source)).nick
                self._emit(AccountChanged(nick, None if account in ("", "*") else account))  # type: ignore[arg-type]
                return
        super()._dispatch(session, event)
