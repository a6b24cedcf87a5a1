"""Prometheus metrics of the bridge: one `Metrics` per bridge, on its own registry.

Label values only ever come from the fixed sets below; anything else is counted as
"other". That keeps the number of series bounded and guarantees that no passport, Matrix
user id, room or channel name ends up in a label (they are personal data and unbounded).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Final

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from puppets.errors import (
    AuthenticationError,
    ConnectionLost,
    MSNPError,
    ProtocolError,
    ReplyTimeout,
    SignedOutElsewhere,
)
from puppets.stats import ClientStats

from .metrics_http import Health, HealthProvider, HealthStatus, start_server
from .puppet_stats import PuppetStatsCollector

__all__ = [
    "DIRECTIONS",
    "HOMESERVER_ERROR_KINDS",
    "IRC_CONNECTION_KINDS",
    "IRC_ERROR_KINDS",
    "LATENCY_BUCKETS",
    "LOGIN_FAILURE_REASONS",
    "OTHER",
    "PORTAL_SIDES",
    "RESULTS",
    "SESSION_STATES",
    "Health",
    "HealthProvider",
    "HealthStatus",
    "Metrics",
    "Relay",
    "homeserver_error_kind",
    "login_failure_reason",
]

OTHER: Final = "other"

DIRECTIONS: Final = frozenset({"msn_to_matrix", "matrix_to_msn", "msn_to_irc", "irc_to_msn"})
RESULTS: Final = frozenset({"delivered", "failed", "refused", "offline", "dropped"})
SESSION_STATES: Final = frozenset({"connecting", "online", "backing_off", "stopped"})
LOGIN_FAILURE_REASONS: Final = frozenset({"auth", "network", "protocol", "signed_out_elsewhere"})
PORTAL_SIDES: Final = frozenset({"matrix", "irc"})
IRC_CONNECTION_KINDS: Final = frozenset({"bot", "puppet"})
HOMESERVER_ERROR_KINDS: Final = frozenset(
    {"connection", "timeout", "rate_limited", "forbidden", "not_found", "bad_request", "server"}
)
# The first six are msnbridge.irc.refusal.RefusalKind values, so a Refusal maps directly.
IRC_ERROR_KINDS: Final = frozenset(
    {
        "too_many_connections",
        "throttled",
        "banned",
        "bad_password",
        "network",
        "nick_in_use",
        "send_failed",
        "disconnected",
    }
)

# 1 ms (a local hop) to 30 s (a homeserver under load, a switchboard being opened).
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def _bounded(value: object, allowed: frozenset[str]) -> str:
    """The label value for `value`: itself if allowed, else "other". Enums give their value;
    spaces become underscores (puppets' SessionState says "backing off")."""
    if isinstance(value, enum.Enum):
        value = value.value
    text = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    return text if text in allowed else OTHER


def login_failure_reason(exc: BaseException) -> str:
    """The `reason` label for an exception a puppet login raised."""
    if isinstance(exc, SignedOutElsewhere):
        return "signed_out_elsewhere"
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, ConnectionLost | ReplyTimeout | OSError | TimeoutError):
        return "network"
    if isinstance(exc, ProtocolError | MSNPError):
        return "protocol"
    if type(exc).__name__ == "PassportUnavailable":  # puppets.auth; Nexus unreachable
        return "network"
    return OTHER


def homeserver_error_kind(status: int | None) -> str:
    """The `kind` label for a failed homeserver request; `status` None = no HTTP answer."""
    if status is None:
        return "connection"
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "forbidden"
    if status == 404:
        return "not_found"
    if status in (408, 504):
        return "timeout"
    if 400 <= status < 500:
        return "bad_request"
    if status >= 500:
        return "server"
    return OTHER


def _version() -> str:
    try:
        return metadata.version("msnbridge")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(slots=True)
class Relay:
    """Outcome of one relayed message, filled in inside `Metrics.relay`."""

    result: str = "delivered"


class Metrics:
    """All the bridge's metrics, on a registry of its own (several may coexist in tests)."""

    def __init__(self, version: str | None = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        if process:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)

        self._info = Info("msnbridge", "Build of the running bridge.", registry=reg)
        self._info.info({"version": version or _version()})

        self._sessions = Gauge(
            "msnbridge_puppet_sessions", "MSN puppet sessions by state.", ["state"], registry=reg
        )
        self._logins = Counter("msnbridge_logins", "Successful MSN puppet logins.", registry=reg)
        self._login_failures = Counter(
            "msnbridge_login_failures",
            "Failed MSN puppet logins by reason.",
            ["reason"],
            registry=reg,
        )
        self._reconnects = Counter(
            "msnbridge_reconnects", "MSN puppet reconnection attempts.", registry=reg
        )
        self._challenges = Counter(
            "msnbridge_challenges_answered", "MSNP CHL challenges answered.", registry=reg
        )
        self._switchboards = Gauge(
            "msnbridge_switchboards_open", "Open MSN switchboard sessions.", registry=reg
        )
        self._portals = Gauge(
            "msnbridge_portals", "Bridged conversations by side.", ["side"], registry=reg
        )
        self._messages = Counter(
            "msnbridge_messages",
            "Messages relayed, by direction and result.",
            ["direction", "result"],
            registry=reg,
        )
        self._latency = Histogram(
            "msnbridge_bridge_latency_seconds",
            "Time from reading a message on one side to the other side accepting it.",
            ["direction"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._hs_errors = Counter(
            "msnbridge_homeserver_errors",
            "Failed homeserver requests by kind.",
            ["kind"],
            registry=reg,
        )
        self._irc_errors = Counter(
            "msnbridge_irc_errors", "IRC errors by kind.", ["kind"], registry=reg
        )
        self._irc_connections = Gauge(
            "msnbridge_irc_connections", "Open IRC connections by kind.", ["kind"], registry=reg
        )

        self._open_switchboards = 0
        self._health: HealthProvider | None = None
        self._runner: web.AppRunner | None = None
        self._prime()

    def _prime(self) -> None:
        # Create every series at zero so rate() and dashboards see them before the first event.
        for state in (*SESSION_STATES, OTHER):
            self._sessions.labels(state).set(0)
        for reason in (*LOGIN_FAILURE_REASONS, OTHER):
            self._login_failures.labels(reason)
        for side in PORTAL_SIDES:
            self._portals.labels(side).set(0)
        for direction in (*DIRECTIONS, OTHER):
            self._latency.labels(direction)
            for result in (*RESULTS, OTHER):
                self._messages.labels(direction, result)
        for kind in (*HOMESERVER_ERROR_KINDS, OTHER):
            self._hs_errors.labels(kind)
        for kind in (*IRC_ERROR_KINDS, OTHER):
            self._irc_errors.labels(kind)
        for kind in IRC_CONNECTION_KINDS:
            self._irc_connections.labels(kind).set(0)

    # --- messages ---------------------------------------------------------------------

    @staticmethod
    def clock() -> float:
        """The start time to carry along with a message from the moment it is read."""
        return time.monotonic()

    def message(self, direction: str, result: str, latency: float | None = None) -> None:
        """Count one message; `latency` (seconds) is observed only for delivered messages,
        since it measures the time until the other side accepted it."""
        d = _bounded(direction, DIRECTIONS)
        r = _bounded(result, RESULTS)
        self._messages.labels(d, r).inc()
        if r == "delivered" and latency is not None and latency >= 0:
            self._latency.labels(d).observe(latency)

    @contextmanager
    def relay(self, direction: str, started: float) -> Iterator[Relay]:
        """Count a message whose sending happens inside the block; `started` is the
        `clock()` value from when it was read. The result is "delivered" unless the block
        sets another one or raises (then "failed", or "dropped" if cancelled; the exception
        propagates)."""
        outcome = Relay()
        try:
            yield outcome
        except asyncio.CancelledError:
            self.message(direction, "dropped")  # shutdown or a superseded send, not a fault
            raise
        except BaseException:
            self.message(direction, "failed")
            raise
        self.message(direction, outcome.result, time.monotonic() - started)

    # --- MSN puppets --------------------------------------------------------------------

    def login_ok(self) -> None:
        self._logins.inc()

    def login_failed(self, reason: str | BaseException) -> None:
        """`reason` is one of LOGIN_FAILURE_REASONS, or the exception the login raised."""
        if isinstance(reason, BaseException):
            reason = login_failure_reason(reason)
        self._login_failures.labels(_bounded(reason, LOGIN_FAILURE_REASONS)).inc()

    def set_sessions(self, counts: Mapping[str, int] | Mapping[enum.Enum, int]) -> None:
        """Replace the session gauge; states missing from `counts` become 0, unknown ones
        are summed into "other". Keys may be puppets.SessionState members."""
        totals = dict.fromkeys((*SESSION_STATES, OTHER), 0)
        for state, n in counts.items():
            totals[_bounded(state, SESSION_STATES)] += n
        for state, n in totals.items():
            self._sessions.labels(state).set(n)

    def reconnect(self) -> None:
        self._reconnects.inc()

    def challenge_answered(self) -> None:
        self._challenges.inc()

    def switchboard_opened(self) -> None:
        self._open_switchboards += 1
        self._switchboards.set(self._open_switchboards)

    def switchboard_closed(self) -> None:
        # Never below zero: a double close is a caller bug, not a negative count.
        self._open_switchboards = max(0, self._open_switchboards - 1)
        self._switchboards.set(self._open_switchboards)

    def watch_puppet_stats(self, stats: ClientStats) -> None:
        """Serve the counters the puppet clients keep themselves (stranger presence
        dropped, invitations that failed), read from `stats` at each scrape."""
        self.registry.register(PuppetStatsCollector(stats))

    # --- portals and sides --------------------------------------------------------------

    def set_portals(self, side: str, n: int) -> None:
        """Unknown sides are ignored: a gauge of "other" portals would mean nothing."""
        label = _bounded(side, PORTAL_SIDES)
        if label != OTHER:
            self._portals.labels(label).set(n)

    def homeserver_error(self, kind: str) -> None:
        self._hs_errors.labels(_bounded(kind, HOMESERVER_ERROR_KINDS)).inc()

    def irc_error(self, kind: str | enum.Enum) -> None:
        """`kind` is one of IRC_ERROR_KINDS or a msnbridge.irc.refusal.RefusalKind."""
        self._irc_errors.labels(_bounded(kind, IRC_ERROR_KINDS)).inc()

    def set_irc_connections(self, kind: str, n: int) -> None:
        label = _bounded(kind, IRC_CONNECTION_KINDS)
        if label != OTHER:
            self._irc_connections.labels(label).set(n)

    # --- HTTP endpoint ------------------------------------------------------------------

    def set_health_provider(self, provider: HealthProvider | None) -> None:
        """`provider()` (sync or async) returns a Health; without one /health says starting."""
        self._health = provider

    async def start_http(self, host: str, port: int) -> web.AppRunner:
        """Serve /metrics and /health on host:port (port 0 picks a free one)."""
        if self._runner is not None:
            raise RuntimeError("metrics HTTP endpoint already started")
        self._runner = await start_server(self.registry, lambda: self._health, host, port)
        return self._runner

    @property
    def http_port(self) -> int | None:
        """The bound TCP port, once started (useful with port 0)."""
        if self._runner is None:
            return None
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return None

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
