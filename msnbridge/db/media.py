"""media: the mxc URI each MSN object (by SHA1D) was uploaded to."""

from __future__ import annotations

import time

from mautrix.util.async_db import Database


async def get(db: Database, sha1d: str) -> str | None:
    return await db.fetchval("SELECT mxc FROM media WHERE sha1d=$1", sha1d)


async def save(db: Database, sha1d: str, mxc: str, mimetype: str, size: int) -> None:
    await db.execute(
        """INSERT INTO media (sha1d, mxc, mimetype, size, created_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (sha1d) DO UPDATE SET mxc=excluded.mxc, mimetype=excluded.mimetype,
            size=excluded.size""",
        sha1d,
        mxc,
        mimetype,
        size,
        int(time.time()),
    )
