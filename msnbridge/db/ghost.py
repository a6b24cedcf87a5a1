"""ghosts: the Matrix users standing for MSN contacts."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Database

from . import media as media_db

_COLUMNS = "passport, mxid, displayname, avatar_url, name_set, avatar_set"


@dataclass
class Ghost:
    passport: str
    mxid: str
    displayname: str | None = None
    avatar_url: str | None = None
    name_set: bool = False  # the displayname above was set on the homeserver
    avatar_set: bool = False


def _from_row(row) -> Ghost:
    return Ghost(
        passport=row["passport"],
        mxid=row["mxid"],
        displayname=row["displayname"],
        avatar_url=row["avatar_url"],
        name_set=bool(row["name_set"]),
        avatar_set=bool(row["avatar_set"]),
    )


async def get(db: Database, passport: str) -> Ghost | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM ghosts WHERE passport=$1", passport.lower())
    return _from_row(row) if row else None


async def shows_picture(db: Database, ghost: Ghost | None, sha1d: str) -> bool:
    """Whether ``ghost``'s avatar is already the picture with this SHA1D (uploaded once,
    found in the media table)."""
    if ghost is None or not ghost.avatar_set or not ghost.avatar_url:
        return False
    return ghost.avatar_url == await media_db.get(db, sha1d)


async def get_by_mxid(db: Database, mxid: str) -> Ghost | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM ghosts WHERE mxid=$1", mxid)
    return _from_row(row) if row else None


async def save(db: Database, ghost: Ghost) -> None:
    ghost.passport = ghost.passport.lower()
    await db.execute(
        f"""INSERT INTO ghosts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (passport) DO UPDATE SET mxid=excluded.mxid,
            displayname=excluded.displayname, avatar_url=excluded.avatar_url,
            name_set=excluded.name_set, avatar_set=excluded.avatar_set""",
        ghost.passport,
        ghost.mxid,
        ghost.displayname,
        ghost.avatar_url,
        ghost.name_set,
        ghost.avatar_set,
    )
