"""IRCv3 capability negotiation and SASL PLAIN, sans I/O: feed it what the server said,
send the lines it returns.

Flow: ``CAP LS 302`` (multi-line replies joined) → ``CAP REQ`` of the wanted caps the
server offers (one by one after a NAK, since a REQ is all-or-nothing) → SASL
``AUTHENTICATE PLAIN`` when ``sasl`` was acknowledged → ``CAP END``. A server without CAP
answers 421 or ignores it and registers us straight away; both end negotiation.
"""

from __future__ import annotations

import base64
import logging

from .refusal import NUMERIC_KINDS, Refusal

log = logging.getLogger(__name__)

SASL_CHUNK = 400  # AUTHENTICATE payloads are sent in 400-byte base64 pieces


class CapNegotiator:
    def __init__(
        self,
        wanted: frozenset[str],
        sasl_credentials: tuple[str, str] | None = None,
    ):
        self.wanted = set(wanted) | ({"sasl"} if sasl_credentials else set())
        self._credentials = sasl_credentials
        self.offered: dict[str, str | None] = {}
        self.enabled: set[str] = set()
        self.done = False
        self.sasl_refusal: Refusal | None = None  # set when SASL failed
        self._pending = 0  # outstanding REQs
        self._ls_complete = False
        self._registered = False
        self._sasl_started = False
        self._sasl_finished = False

    def start(self) -> list[str]:
        return ["CAP LS 302"]

    def on_cap(self, subcommand: str, params: list[str]) -> list[str]:
        """A ``CAP <nick> <subcommand> [*] :caps`` line; ``params`` follow the subcommand."""
        sub = subcommand.upper()
        more = len(params) > 1 and params[0] == "*"
        caps = (params[-1] if params else "").split()
        if sub == "LS":
            self._offer(caps)
            if more or self._ls_complete:
                return []
            self._ls_complete = True
            return self._request(sorted(self._wanted_offered()))
        if sub == "NEW":
            self._offer(caps)
            return self._request(sorted(self._wanted_offered() - self.enabled - {"sasl"}))
        if sub == "DEL":
            for cap in caps:
                self.offered.pop(cap, None)
                self.enabled.discard(cap)
            return []
        if sub == "ACK":
            self._pending -= 1
            for cap in caps:
                if cap.startswith("-"):
                    self.enabled.discard(cap[1:])
                else:
                    self.enabled.add(cap)
            if "sasl" in caps and self._credentials and not self._sasl_started and not self.done:
                self._sasl_started = True
                return ["AUTHENTICATE PLAIN"]
            return self._maybe_end()
        if sub == "NAK":
            self._pending -= 1
            if len(caps) > 1:  # all-or-nothing: retry each alone
                return self._request(caps, one_by_one=True)
            return self._maybe_end()
        return []

    def on_authenticate(self, argument: str) -> list[str]:
        if argument != "+" or not self._credentials:
            return []
        user, password = self._credentials
        blob = base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode("ascii")
        chunks = [blob[i : i + SASL_CHUNK] for i in range(0, len(blob), SASL_CHUNK)]
        if not chunks or len(chunks[-1]) == SASL_CHUNK:
            chunks.append("+")  # an exact multiple of 400 is terminated by an empty piece
        return [f"AUTHENTICATE {chunk}" for chunk in chunks]

    def on_numeric(self, code: str, params: list[str]) -> list[str]:
        if code == "421" and params and params[0].upper() == "CAP":
            self.done = True  # no CAP support: registration continues on NICK/USER
            return []
        if code in ("903", "904", "905", "906", "907"):  # SASL over: success or not
            if code in NUMERIC_KINDS:
                reason = params[-1] if params else code
                self.sasl_refusal = Refusal(NUMERIC_KINDS[code], f"SASL failed: {reason}")
            self._sasl_finished = True
            return self._maybe_end()
        return []

    def on_welcome(self) -> None:
        """001 arrived: whatever negotiation was open, the server registered us."""
        self.done = True
        self._registered = True

    def _offer(self, caps: list[str]) -> None:
        for item in caps:
            name, _, value = item.partition("=")
            self.offered[name] = value or None

    def _wanted_offered(self) -> set[str]:
        names = self.wanted & set(self.offered)
        mechanisms = self.offered.get("sasl")
        if "sasl" in names and mechanisms and "PLAIN" not in mechanisms.upper().split(","):
            names.discard("sasl")  # only PLAIN is implemented
        return names

    def _request(self, caps: list[str], one_by_one: bool = False) -> list[str]:
        if not caps:
            return self._maybe_end()
        groups = [[cap] for cap in caps] if one_by_one else [caps]
        self._pending += len(groups)
        return [f"CAP REQ :{' '.join(group)}" for group in groups]

    def _maybe_end(self) -> list[str]:
        if self._pending > 0 or self.done or self._registered:
            return []
        if self._sasl_started and not self._sasl_finished:
            return []  # AUTHENTICATE is under way; 90x ends it
        return self._end()

    def _end(self) -> list[str]:
        if self.done:
            return []
        self.done = True
        return [] if self._registered else ["CAP END"]
