"""What tests of the core Router without a homeserver share: the parties, the MSNP test
server with them, a bridge.yaml whose homeserver is never contacted, a side that records
what the Router hands it, and a polling wait."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from msnbridge.core.portal import Portal
from msnbridge.core.sides import ContactChange, OwnerNotice, PortalMessage
from puppets.contacts import Contact
from puppets.event.conversation import DeliveryResult
from tests.msnp_server import MSNPTestServer

OWNER = "@owner:example.com"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


@pytest.fixture(name="msn")
async def three_friends_fixture() -> AsyncIterator[MSNPTestServer]:
    """The MSNP test server with ALICE, BOB and CAROL (password "pw"), all friends, as the
    ``msn`` fixture (import ``three_friends_fixture``)."""
    async with MSNPTestServer() as server:
        for passport, nick in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
            server.add_account(passport, "pw", nick=nick)
        for a, b in ((ALICE, BOB), (ALICE, CAROL), (BOB, CAROL)):
            server.add_contact(a, b, ("FL", "AL"))
            server.add_contact(b, a, ("FL", "AL"))
        yield server


def write_offline_config(path: Path, msn: MSNPTestServer | None = None, **sections: Any) -> Path:
    """Write a bridge.yaml (JSON is YAML) with a SQLite database beside it; port 9 refuses,
    so nothing reaches a homeserver. ``msn`` points the MSN section at the test server;
    ``sections`` add or replace top-level sections."""
    settings: dict[str, Any] = {
        "homeserver": {"address": "http://127.0.0.1:9", "domain": "example.com"},
        "appservice": {"as_token": "x", "hs_token": "y"},
        "bridge": {"permissions": {"*": "user"}, "secret_key": secrets.token_urlsafe(32)},
        "database": f"sqlite:{path.parent / 'bridge.db'}",
        "logging": {"version": 1},
    }
    if msn is not None:
        settings["msn"] = {
            "dispatch_host": msn.host,
            "dispatch_port": msn.dispatch_port,
            "nexus_url": msn.nexus_url,
            "verify_tls": False,
        }
    settings.update(sections)
    path.write_text(json.dumps(settings))
    return path


async def until(condition: Callable[[], Any], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


class RecordingSide:
    """A side (no Matrix, no IRC) that records every call. The side named "matrix" makes
    rooms and returns event ids, as the Matrix side does; others do neither."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, Any]] = []
        self._rooms = 0

    def of(self, what: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == what]

    def serves(self, portal: Portal) -> bool:
        return True

    async def ensure_portal(self, portal: Portal) -> None:
        if self.name == "matrix" and portal.room_id is None:
            self._rooms += 1
            portal.room_id = f"!room{self._rooms}:{secrets.token_hex(3)}"
            self.calls.append(("ensure", portal.key))

    async def deliver_message(self, portal: Portal, message: PortalMessage) -> str | None:
        self.calls.append(("message", (portal.key, message)))
        return f"$event{len(self.calls)}{secrets.token_hex(3)}" if self.name == "matrix" else None

    async def deliver_typing(self, portal: Portal, passport: str) -> None:
        self.calls.append(("typing", passport))

    async def deliver_nudge(self, portal: Portal, passport: str, nick: str) -> None:
        self.calls.append(("nudge", passport))

    async def participant_joined(self, portal: Portal, passport: str, nick: str) -> None:
        self.calls.append(("joined", (portal.key, passport)))

    async def participant_left(self, portal: Portal, passport: str) -> None:
        self.calls.append(("left", (portal.key, passport)))

    async def delivery_failed(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        self.calls.append(("failed", (origin_id, text, result.status)))

    async def owner_notice(self, owner: str, notice: OwnerNotice) -> None:
        self.calls.append(("notice", notice))

    async def contact_changed(self, owner: str, contact: Contact, change: ContactChange) -> None:
        self.calls.append(("contact", (contact.passport, change)))
