"""The puppet clients' own counters (puppets.stats.ClientStats, shared by every session of
the bridge) as Prometheus counters, read at scrape time: the clients count per line and
without events, so a flood costs an integer increment, not a metrics call."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from puppets.stats import ClientStats


class PuppetStatsCollector(Collector):
    def __init__(self, stats: ClientStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "msnbridge_msn_stranger_presence_dropped",
            "Presence lines (ILN/NLN/FLN/UBX) for passports on none of the owner's lists, dropped.",
            value=self.stats.stranger_presence,
        )
        yield CounterMetricFamily(
            "msnbridge_msn_invitations_failed",
            "Switchboard invitations (RNG) that could not be answered.",
            value=self.stats.invitations_failed,
        )
