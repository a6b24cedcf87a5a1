"""users: people on Matrix or IRC who own an MSN login."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from mautrix.util.async_db import Database

Side = Literal["matrix", "irc"]
_COLUMNS = "id, side, passport, password, management_room, state, status, created_at, machine_guid"


@dataclass
class User:
    id: str  # Matrix user ID, or the IRC side's identity string
    side: Side
    passport: str | None = None
    password: str | None = None  # encrypted (msnbridge.secrets); never log
    management_room: str | None = None
    state: str = "logged_out"
    status: str = "NLN"
    created_at: int = 0
    machine_guid: str | None = None  # MSNP16+: this bridge endpoint's id, kept across restarts

    def __repr__(self) -> str:  # keep the encrypted password out of logs too
        return f"User(id={self.id!r}, side={self.side!r}, passport={self.passport!r})"


def _from_row(row) -> User:
    return User(**{key: row[key] for key in _COLUMNS.split(", ")})


async def get(db: Database, user_id: str) -> User | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id=$1", user_id)
    return _from_row(row) if row else None


async def get_by_passport(db: Database, passport: str) -> User | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE passport=$1", passport.lower())
    return _from_row(row) if row else None


async def get_all(db: Database, *, with_login: bool = False) -> list[User]:
    where = " WHERE passport IS NOT NULL AND password IS NOT NULL" if with_login else ""
    return [_from_row(r) for r in await db.fetch(f"SELECT {_COLUMNS} FROM users{where}")]


async def save(db: Database, user: User) -> None:
    """Inserts or replaces the whole row."""
    if not user.created_at:
        user.created_at = int(time.time())
    if user.passport:
        user.passport = user.passport.lower()
    await db.execute(
        f"""INSERT INTO users ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (id) DO UPDATE SET side=excluded.side, passport=excluded.passport,
            password=excluded.password, management_room=excluded.management_room,
            state=excluded.state, status=excluded.status,
            machine_guid=excluded.machine_guid""",
        user.id,
        user.side,
        user.passport,
        user.password,
        user.management_room,
        user.state,
        user.status,
        user.created_at,
        user.machine_guid,
    )


async def delete(db: Database, user_id: str) -> None:
    """Deletes the user and, by cascade, their contacts and portals."""
    await db.execute("DELETE FROM users WHERE id=$1", user_id)
