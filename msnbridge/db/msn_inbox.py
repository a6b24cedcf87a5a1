"""msn_inbox: MSN messages received but not yet delivered to every side (see
migrations/006_message_inboxes.sql, 008_offline_inbox.sql); replayed at start-up after a
kill. Offline messages (MSNP13+) are written together with their offline_seen mark."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mautrix.util.async_db import Database

_COLUMNS = "msn_id, owner, portal_key, sender, nick, text, format, context, seq, oim_id, sent_at"
_previous = 0


def next_seq() -> int:
    """Receipt order: the time in nanoseconds, strictly increasing in this process (two
    messages read within one clock tick keep their order when replayed)."""
    global _previous
    _previous = max(time.time_ns(), _previous + 1)
    return _previous


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
    seq: int = field(default_factory=next_seq)
    oim_id: str = ""  # an offline message's id on the MSN server; "" for a live message
    sent_at: int = 0  # an offline message's original time (unix ms); 0 for a live message


def _values(entry: InboxEntry) -> tuple[object, ...]:
    return tuple(getattr(entry, name) for name in _COLUMNS.split(", "))


_INSERT = (
    f"INSERT INTO msn_inbox ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
    "ON CONFLICT (msn_id) DO NOTHING"
)


async def add(db: Database, entry: InboxEntry) -> None:
    await db.execute(_INSERT, *_values(entry))


async def add_offline(db: Database, entry: InboxEntry) -> bool:
    """Writes an offline message and marks its id seen, in one transaction; False (and
    nothing written) when the id was seen before: the message was taken already."""
    async with db.acquire() as conn, conn.transaction():
        taken = await conn.fetchval(
            "INSERT INTO offline_seen (owner, oim_id, seen_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (owner, oim_id) DO NOTHING RETURNING oim_id",
            entry.owner,
            entry.oim_id,
            int(time.time()),
        )
        if taken is None:
            return False
        await conn.execute(_INSERT, *_values(entry))
    return True


async def remove(db: Database, msn_id: str) -> None:
    await db.execute("DELETE FROM msn_inbox WHERE msn_id=$1", msn_id)


async def get_all(db: Database) -> list[InboxEntry]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM msn_inbox ORDER BY seq, msn_id")
    return [InboxEntry(**{key: row[key] for key in _COLUMNS.split(", ")}) for row in rows]
