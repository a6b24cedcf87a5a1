"""matrix_inbox and the bridge's own echoes (issue 14, per-message cost): Synapse hands every
message a ghost sent back to the bridge. Those are never relayed, so they are neither
written to matrix_inbox nor deleted from it (a write and a delete per MSN -> Matrix message
before); what users wrote still is. A real SQLite database; MatrixSide's `_handled` and
`_replay_inbox` are run with the one attribute each needs besides it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mautrix.types import Event

from msnbridge.db import Database, open_database
from msnbridge.matrix import inbox
from msnbridge.matrix.appservice import MatrixSide

ROOM = "!portal:x"
GHOST, OWNER = "@msn_bob:x", "@owner:x"


def message(event_id: str, sender: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "room_id": ROOM,
        "sender": sender,
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "hi"},
    }


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:{tmp_path / 'inbox.db'}")
    yield database
    await database.stop()


class Counting:
    def __init__(self, db: Database) -> None:
        self.statements: list[str] = []
        real = db.execute

        async def execute(query: str, *args: Any) -> Any:
            self.statements.append(query.split()[0])
            return await real(query, *args)

        db.execute = execute  # type: ignore[method-assign]


def is_ours(sender: object) -> bool:
    return sender == GHOST


async def portal(room_id: str) -> bool:
    return room_id == ROOM


async def test_echoes_are_not_recorded_and_users_messages_are(db: Database) -> None:
    events = [message("$echo", GHOST), message("$user", OWNER)]
    await inbox.record(db, events, portal, is_ours)
    assert [e["event_id"] for e in await inbox.left_over(db)] == ["$user"]


async def test_an_echo_handled_costs_no_database_write(db: Database) -> None:
    counter = Counting(db)
    side = SimpleNamespace(db=db, is_bridge_user=is_ours)
    await MatrixSide._handled(side, Event.deserialize(message("$echo", GHOST)))  # type: ignore[arg-type]
    assert counter.statements == []
    await MatrixSide._handled(side, Event.deserialize(message("$user", OWNER)))  # type: ignore[arg-type]
    assert counter.statements == ["DELETE"]


async def test_an_echo_recorded_by_an_older_bridge_is_dropped_at_start(db: Database) -> None:
    await inbox.record(db, [message("$echo", GHOST), message("$user", OWNER)], portal)
    handled: list[str] = []

    async def handle_matrix_event(event: Event) -> None:
        handled.append(event.event_id)

    side = SimpleNamespace(
        db=db, is_bridge_user=is_ours, az=SimpleNamespace(handle_matrix_event=handle_matrix_event)
    )
    await MatrixSide._replay_inbox(side)  # type: ignore[arg-type]
    assert handled == ["$user"]
    assert [e["event_id"] for e in await inbox.left_over(db)] == ["$user"]  # done() removes it
