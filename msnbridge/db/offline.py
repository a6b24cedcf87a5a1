"""offline_seen: ids of MSN offline messages already delivered, per owner."""

from __future__ import annotations

import time

from mautrix.util.async_db import Database


async def seen(db: Database, owner: str) -> set[str]:
    rows = await db.fetch("SELECT oim_id FROM offline_seen WHERE owner=$1", owner)
    return {row["oim_id"] for row in rows}


async def mark(db: Database, owner: str, oim_id: str) -> None:
    await db.execute(
        "INSERT INTO offline_seen (owner, oim_id, seen_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (owner, oim_id) DO NOTHING",
        owner,
        oim_id,
        int(time.time()),
    )
