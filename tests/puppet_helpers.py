"""Helpers for tests that drive puppet clients against the MSNP test server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

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


@pytest.fixture(name="server", scope="module")
async def msnp12_server_fixture() -> AsyncIterator[MSNPTestServer]:
    """An empty test server up to MSNP12, one per module (tests add accounts of their own)."""
    srv = MSNPTestServer(versions=(2, 12))
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture(name="server", scope="module")
async def msnp18_server_fixture() -> AsyncIterator[MSNPTestServer]:
    """An empty test server up to MSNP18, one per module (tests add accounts of their own)."""
    srv = MSNPTestServer(versions=(2, 18))
    await srv.start()
    yield srv
    await srv.stop()


def add_friends(
    server: MSNPTestServer,
    a: str,
    b: str,
    nicks: tuple[str, str],
    passwords: tuple[str, str] = ("pw", "pw"),
) -> tuple[str, str]:
    """Accounts ``a`` and ``b`` on each other's forward and allow lists."""
    for passport, nick, password in zip((a, b), nicks, passwords, strict=True):
        server.add_account(passport, password, nick=nick)
    server.add_contact(a, b, lists=("FL", "AL"))
    server.add_contact(b, a, lists=("FL", "AL"))
    return a, b
