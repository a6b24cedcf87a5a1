"""portals: one conversation of one bridged user, with its Matrix room and/or IRC channel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mautrix.util.async_db import Database

_COLUMNS = "owner, key, room_id, irc_channel, is_direct, relay_enabled, name"


def portal_key(passports: Iterable[str]) -> str:
    """The stable key of a conversation: the other participants, lower-case and sorted."""
    return ",".join(sorted({p.strip().lower() for p in passports}))


@dataclass
class Portal:
    owner: str
    key: str  # portal_key() of the other participants
    room_id: str | None = None
    irc_channel: str | None = None
    is_direct: bool = True
    relay_enabled: bool = False
    name: str | None = None

    @property
    def participants(self) -> list[str]:
        return self.key.split(",") if self.key else []


def _from_row(row) -> Portal:
    return Portal(
        owner=row["owner"],
        key=row["key"],
        room_id=row["room_id"],
        irc_channel=row["irc_channel"],
        is_direct=bool(row["is_direct"]),
        relay_enabled=bool(row["relay_enabled"]),
        name=row["name"],
    )


async def get(db: Database, owner: str, key: str) -> Portal | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM portals WHERE owner=$1 AND key=$2", owner, key)
    return _from_row(row) if row else None


async def get_by_room(db: Database, room_id: str) -> Portal | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM portals WHERE room_id=$1", room_id)
    return _from_row(row) if row else None


async def get_by_channel(db: Database, channel: str) -> Portal | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM portals WHERE irc_channel=$1", channel)
    return _from_row(row) if row else None


async def get_all(db: Database, owner: str) -> list[Portal]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM portals WHERE owner=$1 ORDER BY key", owner)
    return [_from_row(r) for r in rows]


async def save(db: Database, portal: Portal) -> None:
    await db.execute(
        f"""INSERT INTO portals ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (owner, key) DO UPDATE SET room_id=excluded.room_id,
            irc_channel=excluded.irc_channel, is_direct=excluded.is_direct,
            relay_enabled=excluded.relay_enabled, name=excluded.name""",
        portal.owner,
        portal.key,
        portal.room_id,
        portal.irc_channel,
        portal.is_direct,
        portal.relay_enabled,
        portal.name,
    )


async def delete(db: Database, owner: str, key: str) -> None:
    await db.execute("DELETE FROM portals WHERE owner=$1 AND key=$2", owner, key)
