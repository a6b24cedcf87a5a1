"""The metrics module through its real HTTP endpoint: a loopback socket, scraped by aiohttp."""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from msnbridge.irc.refusal import RefusalKind
from msnbridge.metrics import (
    DIRECTIONS,
    RESULTS,
    Health,
    Metrics,
    homeserver_error_kind,
    login_failure_reason,
)
from puppets import SessionState
from puppets.errors import (
    AuthenticationError,
    ConnectionLost,
    MSNPError,
    ProtocolError,
    ReplyTimeout,
    SignedOutElsewhere,
)

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, name: str, **labels: str) -> float:
    return series[(name, frozenset(labels.items()))]


@pytest.fixture
async def metrics() -> AsyncIterator[Metrics]:
    m = Metrics(version="1.2.3")
    await m.start_http("127.0.0.1", 0)
    yield m
    await m.stop()


async def fetch(m: Metrics, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{m.http_port}{path}") as resp,
    ):
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def scrape(m: Metrics) -> Series:
    status, content_type, body = await fetch(m, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    return parse(body)


async def test_metrics_endpoint_serves_every_required_metric(metrics: Metrics) -> None:
    series = await scrape(metrics)
    names = {name for name, _ in series}
    for required in (
        "msnbridge_puppet_sessions",
        "msnbridge_logins_total",
        "msnbridge_login_failures_total",
        "msnbridge_reconnects_total",
        "msnbridge_challenges_answered_total",
        "msnbridge_switchboards_open",
        "msnbridge_portals",
        "msnbridge_messages_total",
        "msnbridge_bridge_latency_seconds_bucket",
        "msnbridge_homeserver_errors_total",
        "msnbridge_irc_errors_total",
        "msnbridge_irc_connections",
        "msnbridge_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_info",
    ):
        assert required in names, required
    assert value(series, "msnbridge_info", version="1.2.3") == 1


async def test_counters_move_by_the_right_amounts(metrics: Metrics) -> None:
    before = await scrape(metrics)
    metrics.login_ok()
    metrics.login_ok()
    metrics.login_failed("auth")
    metrics.login_failed(ConnectionLost("reset"))
    metrics.reconnect()
    for _ in range(3):
        metrics.challenge_answered()
    metrics.message("msn_to_matrix", "delivered", 0.02)
    metrics.message("msn_to_matrix", "delivered", None)
    metrics.message("irc_to_msn", "offline", None)
    metrics.homeserver_error("rate_limited")
    metrics.irc_error(RefusalKind.THROTTLED)
    metrics.irc_error("nick_in_use")
    after = await scrape(metrics)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("msnbridge_logins_total") == 2
    assert delta("msnbridge_login_failures_total", reason="auth") == 1
    assert delta("msnbridge_login_failures_total", reason="network") == 1
    assert delta("msnbridge_login_failures_total", reason="protocol") == 0
    assert delta("msnbridge_reconnects_total") == 1
    assert delta("msnbridge_challenges_answered_total") == 3
    assert delta("msnbridge_messages_total", direction="msn_to_matrix", result="delivered") == 2
    assert delta("msnbridge_messages_total", direction="irc_to_msn", result="offline") == 1
    assert delta("msnbridge_messages_total", direction="matrix_to_msn", result="delivered") == 0
    assert delta("msnbridge_homeserver_errors_total", kind="rate_limited") == 1
    assert delta("msnbridge_irc_errors_total", kind="throttled") == 1
    assert delta("msnbridge_irc_errors_total", kind="nick_in_use") == 1
    # Nothing else moved: the sum of all msnbridge counter deltas is exactly what we did.
    moved = {
        key: after[key] - before[key]
        for key in before
        if key[0].startswith("msnbridge_")
        and key[0].endswith("_total")
        and after[key] != before[key]
    }
    assert sum(moved.values()) == 2 + 2 + 1 + 3 + 3 + 1 + 2


async def test_gauges_follow_the_helpers(metrics: Metrics) -> None:
    metrics.set_sessions(
        Tally([SessionState.ONLINE] * 4 + [SessionState.BACKING_OFF, SessionState.CONNECTING])
    )
    metrics.set_portals("matrix", 7)
    metrics.set_portals("irc", 2)
    metrics.set_irc_connections("bot", 1)
    metrics.set_irc_connections("puppet", 5)
    for _ in range(3):
        metrics.switchboard_opened()
    metrics.switchboard_closed()
    series = await scrape(metrics)
    assert value(series, "msnbridge_puppet_sessions", state="online") == 4
    assert value(series, "msnbridge_puppet_sessions", state="backing_off") == 1
    assert value(series, "msnbridge_puppet_sessions", state="connecting") == 1
    assert value(series, "msnbridge_puppet_sessions", state="stopped") == 0
    assert value(series, "msnbridge_portals", side="matrix") == 7
    assert value(series, "msnbridge_portals", side="irc") == 2
    assert value(series, "msnbridge_irc_connections", kind="bot") == 1
    assert value(series, "msnbridge_irc_connections", kind="puppet") == 5
    assert value(series, "msnbridge_switchboards_open") == 2

    # A new snapshot replaces the old one: states it omits go back to zero.
    metrics.set_sessions({"stopped": 2})
    for _ in range(5):  # more closes than opens must not go negative
        metrics.switchboard_closed()
    series = await scrape(metrics)
    assert value(series, "msnbridge_puppet_sessions", state="online") == 0
    assert value(series, "msnbridge_puppet_sessions", state="stopped") == 2
    assert value(series, "msnbridge_switchboards_open") == 0


async def test_unknown_label_values_create_no_series(metrics: Metrics) -> None:
    before = await scrape(metrics)
    personal = ["alice@hotmail.com", "@bob:example.org", "!room:example.org", "#chat"]
    for p in personal:
        metrics.message(p, "delivered", 0.1)
        metrics.message("msn_to_matrix", p)
        metrics.login_failed(p)
        metrics.homeserver_error(p)
        metrics.irc_error(p)
        metrics.set_portals(p, 99)
        metrics.set_irc_connections(p, 99)
    metrics.set_sessions(dict.fromkeys(personal, 1))
    after = await scrape(metrics)

    assert set(after) == set(before)
    leaked = [
        (name, labels)
        for name, labels in after
        for _, v in labels
        if any(p in v or v in p for p in personal)
    ]
    assert leaked == []
    # They were still counted, as "other".
    assert value(after, "msnbridge_messages_total", direction="other", result="delivered") == 4
    assert value(after, "msnbridge_messages_total", direction="msn_to_matrix", result="other") == 4
    assert value(after, "msnbridge_login_failures_total", reason="other") == 4
    assert value(after, "msnbridge_homeserver_errors_total", kind="other") == 4
    assert value(after, "msnbridge_irc_errors_total", kind="other") == 4
    assert value(after, "msnbridge_puppet_sessions", state="other") == 4
    assert value(after, "msnbridge_portals", side="matrix") == 0


async def test_latency_histogram_counts_only_delivered_messages(metrics: Metrics) -> None:
    before = await scrape(metrics)
    metrics.message("matrix_to_msn", "delivered", 0.02)
    metrics.message("matrix_to_msn", "failed", 5.0)  # not "accepted by the other side"
    metrics.message("matrix_to_msn", "delivered", -1.0)  # clock misuse: not observed
    after = await scrape(metrics)

    def delta(name: str, **labels: str) -> float:
        labels["direction"] = "matrix_to_msn"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("msnbridge_bridge_latency_seconds_count") == 1
    assert delta("msnbridge_bridge_latency_seconds_sum") == pytest.approx(0.02)
    assert delta("msnbridge_bridge_latency_seconds_bucket", le="0.01") == 0
    assert delta("msnbridge_bridge_latency_seconds_bucket", le="0.025") == 1
    assert delta("msnbridge_bridge_latency_seconds_bucket", le="+Inf") == 1
    buckets = sorted(
        float(dict(labels)["le"])
        for name, labels in after
        if name == "msnbridge_bridge_latency_seconds_bucket"
        and dict(labels)["direction"] == "matrix_to_msn"
    )
    assert buckets[0] == 0.001
    assert buckets[-2] == 30.0  # last finite bucket; then +Inf


async def test_relay_context_manager_times_and_classifies(metrics: Metrics) -> None:
    before = await scrape(metrics)
    started = metrics.clock()
    await asyncio.sleep(0.03)
    with metrics.relay("msn_to_irc", started):
        pass
    with metrics.relay("msn_to_irc", metrics.clock()) as outcome:
        outcome.result = "refused"
    with pytest.raises(ConnectionError), metrics.relay("msn_to_irc", metrics.clock()):
        raise ConnectionError("irc went away")
    with pytest.raises(asyncio.CancelledError), metrics.relay("msn_to_irc", metrics.clock()):
        raise asyncio.CancelledError
    after = await scrape(metrics)

    def delta(name: str, **labels: str) -> float:
        labels["direction"] = "msn_to_irc"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("msnbridge_messages_total", result="delivered") == 1
    assert delta("msnbridge_messages_total", result="refused") == 1
    assert delta("msnbridge_messages_total", result="failed") == 1
    assert delta("msnbridge_messages_total", result="dropped") == 1
    assert delta("msnbridge_bridge_latency_seconds_count") == 1
    assert delta("msnbridge_bridge_latency_seconds_sum") >= 0.03
    assert delta("msnbridge_bridge_latency_seconds_bucket", le="0.025") == 0


async def test_names_follow_prometheus_conventions(metrics: Metrics) -> None:
    _, _, body = await fetch(metrics, "/metrics")
    families = list(text_string_to_metric_families(body))
    assert families
    for family in families:
        assert family.name.startswith(("msnbridge_", "process_", "python_")), family.name
        if not family.name.startswith("msnbridge_"):
            continue
        assert family.name == family.name.lower()
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_bytes")), family.name
        # Base units only: no milliseconds, kilobytes, minutes.
        assert not any(u in family.name for u in ("_ms", "milli", "_kb", "_minutes")), family.name
    # Label values come from the fixed sets (plus "other"), never from live data.
    allowed = {
        "direction": DIRECTIONS | {"other"},
        "result": RESULTS | {"other"},
    }
    for family in families:
        for sample in family.samples:
            for label, v in sample.labels.items():
                if label in allowed:
                    assert v in allowed[label], (sample.name, label, v)


async def test_health_follows_the_provider(metrics: Metrics) -> None:
    status, _, _ = await fetch(metrics, "/health")
    assert status == 503  # no provider yet: the bridge is starting

    state: dict[str, Health] = {"now": Health("ok", {"puppets_online": 3})}
    metrics.set_health_provider(lambda: state["now"])
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{metrics.http_port}/health"
        for report, code in (
            (Health("ok", {"puppets_online": 3}), 200),
            (Health("degraded", {"homeserver": "unreachable"}), 200),
            (Health("starting"), 503),
        ):
            state["now"] = report
            async with http.get(url) as resp:
                assert resp.status == code
                assert await resp.json() == {"status": report.status, "checks": dict(report.checks)}


async def test_health_accepts_async_providers_and_survives_broken_ones(metrics: Metrics) -> None:
    async def ready() -> Health:
        await asyncio.sleep(0)
        return Health("ok")

    metrics.set_health_provider(ready)
    status, _, body = await fetch(metrics, "/health")
    assert status == 200 and '"ok"' in body

    def broken() -> Health:
        raise RuntimeError("database gone")

    metrics.set_health_provider(broken)
    status, content_type, body = await fetch(metrics, "/health")
    assert status == 503
    assert content_type.startswith("application/json")
    assert "database gone" not in body  # details stay in the log


async def test_instances_are_independent_and_stop_frees_the_port() -> None:
    a, b = Metrics(process=False), Metrics(process=False)
    await a.start_http("127.0.0.1", 0)
    await b.start_http("127.0.0.1", 0)
    try:
        with pytest.raises(RuntimeError):
            await a.start_http("127.0.0.1", 0)
        a.login_ok()
        sa, sb = await scrape(a), await scrape(b)
        assert value(sa, "msnbridge_logins_total") == 1
        assert value(sb, "msnbridge_logins_total") == 0
        assert not any(name.startswith("process_") for name, _ in sa)
    finally:
        port = a.http_port
        await a.stop()
        await b.stop()
    assert a.http_port is None
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


async def test_configured_port_is_used() -> None:
    # Find a free port, then ask for it explicitly as the config would.
    probe = Metrics(process=False)
    await probe.start_http("127.0.0.1", 0)
    port = probe.http_port
    await probe.stop()
    m = Metrics(process=False)
    await m.start_http("127.0.0.1", port)
    try:
        assert m.http_port == port
        assert "msnbridge_info" in {name for name, _ in await scrape(m)}
    finally:
        await m.stop()


def test_login_failure_reasons_from_puppet_exceptions() -> None:
    assert login_failure_reason(AuthenticationError("bad password")) == "auth"
    assert login_failure_reason(SignedOutElsewhere()) == "signed_out_elsewhere"
    assert login_failure_reason(ConnectionLost()) == "network"
    assert login_failure_reason(ReplyTimeout()) == "network"
    assert login_failure_reason(ConnectionRefusedError()) == "network"
    assert login_failure_reason(ProtocolError("garbage")) == "protocol"
    assert login_failure_reason(MSNPError(500, "USR")) == "protocol"
    assert login_failure_reason(ValueError()) == "other"


def test_homeserver_error_kinds_from_http_status() -> None:
    assert homeserver_error_kind(None) == "connection"
    assert homeserver_error_kind(429) == "rate_limited"
    assert homeserver_error_kind(403) == "forbidden"
    assert homeserver_error_kind(404) == "not_found"
    assert homeserver_error_kind(504) == "timeout"
    assert homeserver_error_kind(400) == "bad_request"
    assert homeserver_error_kind(502) == "server"
    assert homeserver_error_kind(302) == "other"


def test_clock_is_monotonic_seconds() -> None:
    a = Metrics.clock()
    assert abs(a - time.monotonic()) < 1
