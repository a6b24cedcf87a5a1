"""matrix_inbox: events of portal rooms the homeserver handed over but the bridge has not
handled yet (see migrations/003_message_inboxes.sql).

The homeserver sends a transaction again until it gets a 200, but mautrix answers before
the events are handled (each in its own task): a bridge killed in between would lose
them. They are written here before the answer and removed once handled; the next start
handles what is left (a message already sent to MSN is recognised by its event ID in
message_map and not sent twice). Commands are never written: they may hold a password.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from mautrix.types import JSON
from mautrix.util.async_db import Database

log = logging.getLogger("msnbridge.matrix.inbox")

KEPT_TYPES = frozenset({"m.room.message", "m.reaction", "m.sticker"})
COMMAND_PREFIX = "!msn"

IsPortalRoom = Callable[[str], Awaitable[bool]]


def _worth_keeping(event: JSON) -> bool:
    if not isinstance(event, dict) or event.get("type") not in KEPT_TYPES:
        return False
    if not isinstance(event.get("event_id"), str) or not isinstance(event.get("room_id"), str):
        return False
    content = event.get("content")
    body = content.get("body") if isinstance(content, dict) else None
    return not (isinstance(body, str) and body.strip().lower().startswith(COMMAND_PREFIX))


async def record(
    db: Database,
    events: list[JSON],
    is_portal_room: IsPortalRoom,
    is_ours: Callable[[object], bool] | None = None,
) -> None:
    """Writes the transaction's portal-room messages before it is answered. Not our own
    echoes (``is_ours`` of the sender: the bot, a ghost): they are never relayed."""
    seq = time.time_ns()
    rows = []
    for event in events:
        if is_ours is not None and is_ours(event.get("sender")):
            continue
        if _worth_keeping(event) and await is_portal_room(event["room_id"]):
            rows.append((event["event_id"], event["room_id"], json.dumps(event), seq))
            seq += 1
    for row in rows:
        await db.execute(
            "INSERT INTO matrix_inbox (event_id, room_id, event, seq) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (event_id) DO NOTHING",
            *row,
        )


async def done(db: Database, event_id: str) -> None:
    await db.execute("DELETE FROM matrix_inbox WHERE event_id=$1", event_id)


async def left_over(db: Database) -> list[JSON]:
    """The events a killed bridge had not handled, in the order they came."""
    rows = await db.fetch("SELECT event FROM matrix_inbox ORDER BY seq, event_id")
    events = []
    for row in rows:
        try:
            events.append(json.loads(row["event"]))
        except ValueError:
            log.warning("Dropping a damaged matrix_inbox row")
    return events
