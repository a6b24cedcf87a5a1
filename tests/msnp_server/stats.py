"""Counters the tests and benchmarks read from ``MSNPTestServer.stats``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerStats:
    logins: Counter[int] = field(default_factory=Counter)  # by protocol version
    challenges_sent: int = 0
    qry_ok: int = 0
    qry_failed: int = 0
    pings: int = 0  # PNGs answered
    redirects: int = 0  # XFR NS answers of the dispatch server
    messages_relayed: int = 0  # switchboard MSGs delivered, counted once per recipient
    acks: int = 0
    naks: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # connections closed, by reason
    soap: Counter[str] = field(default_factory=Counter)  # SOAP requests, by action
    oims_stored: int = 0
    xfr_held: int = 0  # XFR SB left unanswered (fault)
    messages_swallowed: int = 0  # switchboard MSGs read and dropped (fault)
    # By passport: sign-ins, and sign-outs contacts saw (the account's last session left).
    account_logins: Counter[str] = field(default_factory=Counter)
    sign_outs: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "logins": dict(self.logins),
            "challenges_sent": self.challenges_sent,
            "qry_ok": self.qry_ok,
            "qry_failed": self.qry_failed,
            "pings": self.pings,
            "redirects": self.redirects,
            "messages_relayed": self.messages_relayed,
            "acks": self.acks,
            "naks": self.naks,
            "closes": dict(self.closes),
            "soap": dict(self.soap),
            "oims_stored": self.oims_stored,
            "xfr_held": self.xfr_held,
            "messages_swallowed": self.messages_swallowed,
            "account_logins": dict(self.account_logins),
            "sign_outs": dict(self.sign_outs),
        }
