"""txn_seen: appservice transaction IDs already processed (the homeserver retries them)."""

from __future__ import annotations

import time

from mautrix.util.async_db import Database


async def claim(db: Database, txn_id: str) -> bool:
    """Marks the transaction seen; False when it had been seen before."""
    result = await db.fetchval(
        "INSERT INTO txn_seen (txn_id, seen_at) VALUES ($1, $2) "
        "ON CONFLICT (txn_id) DO NOTHING RETURNING txn_id",
        txn_id,
        int(time.time()),
    )
    return result is not None


async def delete_older_than(db: Database, seconds: int) -> None:
    await db.execute("DELETE FROM txn_seen WHERE seen_at < $1", int(time.time()) - seconds)
