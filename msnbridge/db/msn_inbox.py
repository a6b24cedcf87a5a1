"""msn_inbox: MSN messages received but not yet delivered to every side (see
migrations/003_message_inboxes.sql); replayed at start-up after a kill."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mautrix.util.async_db import Database

_COLUMNS = "msn_id, owner, portal_key, sender, nick, text, format, context, seq"


@dataclass
class InboxEntry:
    msn_id: str
    owner: str
    portal_key: str
    sender: str
    nick: str
    text: str
    format: str
    context: str = ""
    seq: int = field(default_factory=time.time_ns)


async def add(db: Database, entry: InboxEntry) -> None:
    await db.execute(
        f"INSERT INTO msn_inbox ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (msn_id) DO NOTHING",
        entry.msn_id,
        entry.owner,
        entry.portal_key,
        entry.sender,
        entry.nick,
        entry.text,
        entry.format,
        entry.context,
        entry.seq,
    )


async def remove(db: Database, msn_id: str) -> None:
    await db.execute("DELETE FROM msn_inbox WHERE msn_id=$1", msn_id)


async def get_all(db: Database) -> list[InboxEntry]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM msn_inbox ORDER BY seq, msn_id")
    return [InboxEntry(**{key: row[key] for key in _COLUMNS.split(", ")}) for row in rows]
