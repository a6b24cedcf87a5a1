"""State shared by every connection of one test server: configuration, accounts,
signed-in NS sessions, tickets, counters, and the presence fan-out to watchers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import presence
from .accounts import Account, Directory
from .sso import TokenBook
from .stats import ServerStats
from .tickets import TicketBook

if TYPE_CHECKING:
    from .notification import NotificationSession
    from .switchboard import SwitchboardServer


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    versions: tuple[int, int] = (2, 12)
    send_chl: bool = True
    chl_interval: float | None = None
    ticket_ttl: float = 30.0
    redirect: bool = True
    send_nak: bool = True
    qng_interval: int = 50
    idle_timeout: float | None = None
    initial_mail: bool = False
    sb_payload_cap: int = 1664
    answer_png: bool = True  # False: swallow PNG, as a dead link would (tests flip it)
    token_ttl: float = 86400.0  # SSO token lifetime (MSNP15+)
    mpop: bool = True  # MSNP16+: several endpoints per account (False: OUT OTH as before)
    endpoint_limit: int = 8


class Hub:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.directory = Directory()
        self.stats = ServerStats()
        self.tickets = TicketBook(config.ticket_ttl)
        self.sso_tokens = TokenBook(config.token_ttl)
        self.ns: dict[str, NotificationSession] = {}  # latest signed-in session by passport
        # Every signed-in endpoint by passport (several from MSNP16 with MPOP).
        self.endpoints: dict[str, list[NotificationSession]] = {}
        self.ns_port = 0
        self.sb_port = 0
        self.http_port = 0
        self.switchboards: SwitchboardServer | None = None
        # Called with (sender, payload) for every switchboard MSG relayed (tests look at
        # what travels on the wire).
        self.sb_taps: list[Callable[[str, bytes], None]] = []
        # Faults (MSNPTestServer.hold_switchboard_requests / swallow_messages), by passport.
        self.held_xfr: set[str] = set()
        self.swallowed_msg: set[str] = set()

    def session(self, passport: str) -> NotificationSession | None:
        return self.ns.get(passport.lower())

    def sessions_of(self, passport: str) -> list[NotificationSession]:
        return list(self.endpoints.get(passport.lower(), ()))

    def register(self, session: NotificationSession) -> None:
        passport = session.account.passport
        self.endpoints.setdefault(passport, []).append(session)
        self.ns[passport] = session

    def unregister(self, session: NotificationSession) -> bool:
        """Forget ``session``; True when it was the account's last endpoint."""
        passport = session.account.passport
        left = [s for s in self.endpoints.get(passport, ()) if s is not session]
        if left:
            self.endpoints[passport] = left
            self.ns[passport] = left[-1]
            return False
        self.endpoints.pop(passport, None)
        if self.ns.get(passport) is session:
            del self.ns[passport]
        return True

    # -- presence fan-out ----------------------------------------------------
    def watchers(self, subject: Account) -> Iterator[NotificationSession]:
        """Signed-in sessions (past their first CHG) that currently see ``subject``:
        they have it on FL and it allows them, and it is online and not hidden."""
        if not subject.online or subject.status == "HDN":
            return
        for passport in subject.lists["RL"]:
            for session in self.endpoints.get(passport, ()):
                if (
                    session.presence_started
                    and session.account.on("FL", subject.passport)
                    and subject.allows(passport)
                ):
                    yield session

    def seen_by(self, subject: Account) -> set[str]:
        return {s.account.passport for s in self.watchers(subject)}

    def announce(self, subject: Account, before: set[str], changed: bool = True) -> None:
        """Push NLN/FLN (and UBX to new watchers) after something about ``subject``
        changed; ``before`` is :meth:`seen_by` taken before the change."""
        after: set[str] = set()
        for session in self.watchers(subject):
            passport = session.account.passport
            after.add(passport)
            fresh = passport not in before
            if fresh or changed:
                session.push(presence.nln(session.version, subject))
            if fresh and subject.psm:
                session.push(presence.ubx(session.version, subject))
        for passport in before - after:
            for session in self.endpoints.get(passport, ()):
                session.push(presence.fln(subject.passport, session.version))

    def announce_psm(self, subject: Account) -> None:
        for session in self.watchers(subject):
            session.push(presence.ubx(session.version, subject))
