"""A connection pool's own metrics, on the registry of its `msnbridge.metrics.Metrics`.

Every series carries the ``pool`` label: the pool's instance name (``pools.instance``, an
operator's choice, so the label stays bounded), since several pools feed one dashboard.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

LEASE_MOVES: Final = frozenset({"taken", "released", "lost", "handed_over"})
# Events in the core's stream it has not read yet ("unread": XINFO GROUPS lag) and read
# but not acknowledged ("pending").
BACKLOG_STATES: Final = ("unread", "pending")


class PoolMetrics:
    def __init__(self, registry: CollectorRegistry, pool: str) -> None:
        self.pool = pool
        self._sessions = Gauge(
            "msnbridge_pool_sessions", "MSN sessions this pool holds.", ["pool"], registry=registry
        )
        self._moves = Counter(
            "msnbridge_pool_lease_moves",
            "Session leases taken, released, lost to another pool or handed over.",
            ["pool", "move"],
            registry=registry,
        )
        self._backlog = Gauge(
            "msnbridge_pool_stream_lag",
            "Events waiting for the core in the events stream, unread or pending.",
            ["pool", "state"],
            registry=registry,
        )
        self._dropped = Counter(
            "msnbridge_pool_events_dropped",
            "Events not kept because the core was down past pools.max_core_downtime.",
            ["pool"],
            registry=registry,
        )
        self._dropped_seen = 0
        self._sessions.labels(pool).set(0)
        for move in LEASE_MOVES:
            self._moves.labels(pool, move)
        for state in BACKLOG_STATES:
            self._backlog.labels(pool, state).set(0)
        self._dropped.labels(pool)

    def set_sessions(self, n: int) -> None:
        self._sessions.labels(self.pool).set(n)

    def lease_moved(self, move: str, n: int = 1) -> None:
        if move not in LEASE_MOVES:
            raise ValueError(f"unknown lease move {move!r}")
        if n:
            self._moves.labels(self.pool, move).inc(n)

    def set_backlog(self, unread: int, pending: int) -> None:
        self._backlog.labels(self.pool, "unread").set(unread)
        self._backlog.labels(self.pool, "pending").set(pending)

    def dropped_total(self, total: int) -> None:
        """Catches the counter up with the link's running total of dropped events."""
        if total > self._dropped_seen:
            self._dropped.labels(self.pool).inc(total - self._dropped_seen)
            self._dropped_seen = total
