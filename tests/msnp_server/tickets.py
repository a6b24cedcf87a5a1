"""Passport tickets and TWN challenge strings shared by the Nexus and the NS."""

from __future__ import annotations

import secrets
import time

# Real tickets were full of '!', '*' and '$': keep them, so clients that mangle them fail.
_TICKET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*$"


def _token(n: int) -> str:
    return "".join(secrets.choice(_TICKET_CHARS) for _ in range(n))


class TicketBook:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._tickets: dict[str, tuple[str, float]] = {}  # ticket -> (passport, expiry)
        self._tpfs: dict[str, float] = {}  # issued TWN challenge tpf -> expiry

    def _prune(self, now: float) -> None:
        if len(self._tickets) > 4096:
            self._tickets = {k: v for k, v in self._tickets.items() if v[1] > now}
        if len(self._tpfs) > 4096:
            self._tpfs = {k: v for k, v in self._tpfs.items() if v > now}

    def challenge(self) -> str:
        """The ``USR t TWN S`` string; its tpf must come back in the login request."""
        now = time.time()
        self._prune(now)
        tpf = secrets.token_hex(16)
        self._tpfs[tpf] = now + 300
        return (
            "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,"
            f"ct={int(now)},kpp=1,kv=5,ver=2.1.0173.1,tpf={tpf}"
        )

    def known_challenge(self, tpf: str) -> bool:
        return self._tpfs.get(tpf, 0) > time.time()

    def issue(self, passport: str) -> str:
        """A from-PP value ``t=…&p=…``; the client sends it whole in ``USR t TWN S``."""
        now = time.time()
        self._prune(now)
        ticket = f"t={_token(60)}$$&p={_token(90)}$"
        self._tickets[ticket] = (passport.lower(), now + self.ttl)
        return ticket

    def valid(self, passport: str, ticket: str) -> bool:
        found = self._tickets.get(ticket)
        return found is not None and found[0] == passport.lower() and found[1] > time.time()
