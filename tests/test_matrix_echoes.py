"""The bridge's own echoes in appservice transactions (issue 14, per-message cost): Synapse
hands back every message a ghost or the bot put in a room. Messages, reactions and stickers
from the bridge's own users are dropped from the raw JSON before mautrix parses them, so
they reach no handler; what users wrote, and the bridge's own state events (the state
store needs those), still do. A real SQLite database; no homeserver (the appservice's
handle_transaction is called as its HTTP handler calls it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mautrix.types import Event, Membership

from msnbridge.db import Database, open_database
from msnbridge.matrix.appservice import BridgeAppService
from msnbridge.matrix.echoes import is_echo, without_echoes
from msnbridge.matrix.state_cache import CachedStateStore

ROOM = "!portal:x"
GHOST, BOT, OWNER = "@msn_bob:x", "@msnbot:x", "@owner:x"


def event(event_id: str, sender: str, kind: str = "m.room.message", **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": "hi"}
    if kind == "m.reaction":
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}
    return {
        "type": kind,
        "event_id": event_id,
        "room_id": ROOM,
        "sender": sender,
        "origin_server_ts": 1,
        "content": content,
        **extra,
    }


def is_ours(sender: object) -> bool:
    return sender in (GHOST, BOT)


def test_echo_kinds() -> None:
    assert is_echo(event("$1", GHOST), is_ours)
    assert is_echo(event("$2", BOT), is_ours)
    assert is_echo(event("$3", GHOST, "m.reaction"), is_ours)
    assert is_echo(event("$4", GHOST, "m.sticker"), is_ours)
    assert not is_echo(event("$5", OWNER), is_ours)
    member = event("$6", GHOST, "m.room.member", state_key=GHOST)
    member["content"] = {"membership": "join"}
    assert not is_echo(member, is_ours)  # state: kept for the state store
    assert not is_echo(event("$7", GHOST, "m.room.redaction"), is_ours)
    events = [event("$a", OWNER), event("$b", OWNER)]
    assert without_echoes(events, is_ours) is events  # nothing copied when nothing dropped


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:{tmp_path / 'echo.db'}")
    yield database
    await database.stop()


async def test_echoes_reach_no_handler(db: Database) -> None:
    state_store = CachedStateStore(db)
    await state_store.upgrade_table.upgrade(db)
    az = BridgeAppService(
        server="http://127.0.0.1:9",
        domain="x",
        as_token="as",
        hs_token="hs",
        bot_localpart="msnbot",
        id="msn",
        state_store=state_store,
        db=db,
    )
    az.is_ours = is_ours
    seen: list[str] = []
    user_seen = asyncio.Event()

    @az.matrix_event_handler
    async def handler(evt: Event) -> None:
        seen.append(str(evt.event_id))
        if evt.event_id == "$last":
            user_seen.set()

    member = event("$member", GHOST, "m.room.member", state_key=GHOST)
    member["content"] = {"membership": "join"}
    # An echo-only transaction, then one mixing echoes with what a user wrote.
    await az.handle_transaction("1", events=[event("$echo1", GHOST)], extra_data={})
    events = [
        event("$echo2", GHOST),
        event("$user", OWNER),
        event("$react", BOT, "m.reaction"),
        member,
        event("$last", OWNER),
    ]
    await az.handle_transaction("2", events=events, extra_data={})
    await asyncio.wait_for(user_seen.wait(), 5)
    for _ in range(5):  # the handlers run in tasks of their own
        await asyncio.sleep(0)
    assert sorted(seen) == ["$last", "$member", "$user"]
    assert await state_store.get_membership(ROOM, GHOST) == Membership.JOIN  # type: ignore[arg-type]
