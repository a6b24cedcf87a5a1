"""The metrics HTTP endpoint: GET /metrics (Prometheus text format) and GET /health.

Runs on aiohttp inside the bridge's own event loop, so no extra thread is needed and the
health provider can look at live bridge state directly.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthStatus = Literal["ok", "degraded", "starting"]

# "degraded" still serves (some puppets or a side are down), so load balancers keep it.
SERVING: frozenset[str] = frozenset({"ok", "degraded"})


@dataclass(frozen=True, slots=True)
class Health:
    status: HealthStatus
    # Small JSON-able facts for humans, e.g. {"homeserver": "reachable", "puppets_online": 3}.
    # Aggregates only: the endpoint may be reachable by more people than the admin.
    checks: Mapping[str, Any] = field(default_factory=dict)


HealthProvider = Callable[[], Health | Awaitable[Health]]


async def _ask(provider: HealthProvider | None) -> Health:
    if provider is None:
        return Health("starting")
    result = provider()
    if inspect.isawaitable(result):
        result = await result
    return result


def build_app(
    registry: CollectorRegistry, provider: Callable[[], HealthProvider | None]
) -> web.Application:
    """`provider` is read at each request, so the bridge may register it after start."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def health(_request: web.Request) -> web.Response:
        try:
            report = await _ask(provider())
        except Exception:
            # A broken provider must not look healthy; the traceback goes to the log only.
            log.exception("health provider failed")
            return web.json_response(
                {"status": "degraded", "checks": {"health_provider": "failed"}}, status=503
            )
        status = 200 if report.status in SERVING else 503
        return web.json_response(
            {"status": report.status, "checks": dict(report.checks)}, status=status
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app


async def start_server(
    registry: CollectorRegistry,
    provider: Callable[[], HealthProvider | None],
    host: str,
    port: int,
) -> web.AppRunner:
    # access_log=None: Prometheus scrapes every few seconds and would flood the log.
    runner = web.AppRunner(build_app(registry, provider), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("metrics endpoint listening on %s", runner.addresses)
    return runner
