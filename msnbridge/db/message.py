"""message_map: a Matrix event and what it became on MSN/IRC (or came from), for dedup."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mautrix.util.async_db import Database

_COLUMNS = "event_id, room_id, msn_id, irc_id, created_at"


@dataclass
class MessageLink:
    event_id: str
    room_id: str
    msn_id: str | None = None
    irc_id: str | None = None
    created_at: int = 0


def _from_row(row) -> MessageLink:
    return MessageLink(**{key: row[key] for key in _COLUMNS.split(", ")})


async def get(db: Database, event_id: str) -> MessageLink | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM message_map WHERE event_id=$1", event_id)
    return _from_row(row) if row else None


async def get_by_msn_id(db: Database, msn_id: str) -> MessageLink | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM message_map WHERE msn_id=$1", msn_id)
    return _from_row(row) if row else None


async def get_by_irc_id(db: Database, irc_id: str) -> MessageLink | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM message_map WHERE irc_id=$1", irc_id)
    return _from_row(row) if row else None


async def claim(db: Database, link: MessageLink) -> bool:
    """Records the link; False when the event was already recorded (a retry: skip it)."""
    link.created_at = link.created_at or int(time.time())
    result = await db.fetchval(
        f"""INSERT INTO message_map ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
        link.event_id,
        link.room_id,
        link.msn_id,
        link.irc_id,
        link.created_at,
    )
    return result is not None


async def update(db: Database, link: MessageLink) -> None:
    await db.execute(
        "UPDATE message_map SET msn_id=$2, irc_id=$3 WHERE event_id=$1",
        link.event_id,
        link.msn_id,
        link.irc_id,
    )


PENDING = "pending:"  # msn_id prefix from just before a Matrix message is written to MSN
# until the server answered (see core.router._Claim)


async def get_pending(db: Database) -> list[MessageLink]:
    """Messages whose sending was interrupted (the bridge died mid-send)."""
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM message_map WHERE msn_id LIKE $1", PENDING + "%")
    return [_from_row(row) for row in rows]


async def delete_older_than(db: Database, seconds: int) -> None:
    await db.execute("DELETE FROM message_map WHERE created_at < $1", int(time.time()) - seconds)
