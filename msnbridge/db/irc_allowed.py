"""irc_allowed: who may join each portal's IRC channel besides its owner, kept across
restarts. Nicks are compared lower-case (IRC casemapping, ASCII part)."""

from __future__ import annotations

from mautrix.util.async_db import Database

PortalId = tuple[str, str]  # (owner, portal key)


async def get_all(db: Database) -> dict[PortalId, set[str]]:
    rows = await db.fetch("SELECT owner, portal_key, nick FROM irc_allowed")
    allowed: dict[PortalId, set[str]] = {}
    for row in rows:
        allowed.setdefault((row["owner"], row["portal_key"]), set()).add(row["nick"])
    return allowed


async def add(db: Database, owner: str, portal_key: str, nick: str) -> None:
    await db.execute(
        """INSERT INTO irc_allowed (owner, portal_key, nick) VALUES ($1, $2, $3)
        ON CONFLICT (owner, portal_key, nick) DO NOTHING""",
        owner,
        portal_key,
        nick.lower(),
    )


async def remove(db: Database, owner: str, portal_key: str, nick: str) -> None:
    await db.execute(
        "DELETE FROM irc_allowed WHERE owner=$1 AND portal_key=$2 AND nick=$3",
        owner,
        portal_key,
        nick.lower(),
    )
