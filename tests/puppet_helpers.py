"""Helpers for tests that drive puppet clients against the MSNP test server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from puppets import Client, ClientConfig
from tests.msnp_server import MSNPTestServer

E = TypeVar("E")


class Recorder:
    """Collects a client's events and waits for the one a test expects."""

    def __init__(self, client: Client) -> None:
        self.events: list[object] = []
        self._changed = asyncio.Event()
        client.add_listener(self._add)

    def _add(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(
        self, kind: type[E], pred: Callable[[E], bool] = lambda e: True, timeout: float = 10
    ) -> E:
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if isinstance(event, kind) and pred(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    async def until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        """Wait until ``condition()`` holds, re-checking after every new event."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def make_config(server: MSNPTestServer, passport: str, password: str, **kw: Any) -> ClientConfig:
    defaults: dict[str, Any] = {
        "dispatch_host": server.host,
        "dispatch_port": server.dispatch_port,
        "nexus_url": server.nexus_url,
        "services_url": server.services_url,
        "change_spacing": 0.0,
        "backoff_initial": 0.2,
        "backoff_max": 1.0,
        "timeout": 10.0,
    }
    defaults.update(kw)
    return ClientConfig(passport=passport, password=password, **defaults)


async def online_client(
    server: MSNPTestServer, passport: str, password: str, **kw: Any
) -> tuple[Client, Recorder]:
    client = Client(make_config(server, passport, password, **kw))
    recorder = Recorder(client)
    await client.start()
    await client.wait_online(timeout=15)
    return client, recorder
