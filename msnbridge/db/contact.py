"""contacts and contact_groups: one bridged user's MSN contact list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mautrix.util.async_db import Database

_COLUMNS = "owner, passport, nick, lists, groups, status, psm"


@dataclass
class Contact:
    owner: str
    passport: str
    nick: str = ""
    lists: int = 0  # bitmask FL=1 AL=2 BL=4 RL=8 PL=16, as in MSNP
    groups: tuple[str, ...] = ()
    status: str = "FLN"
    psm: str = ""


@dataclass
class Group:
    owner: str
    group_id: str
    name: str


def _from_row(row) -> Contact:
    return Contact(
        owner=row["owner"],
        passport=row["passport"],
        nick=row["nick"],
        lists=row["lists"],
        groups=tuple(g for g in row["groups"].split(",") if g),
        status=row["status"],
        psm=row["psm"],
    )


async def get(db: Database, owner: str, passport: str) -> Contact | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM contacts WHERE owner=$1 AND passport=$2", owner, passport.lower()
    )
    return _from_row(row) if row else None


async def get_all(db: Database, owner: str) -> list[Contact]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM contacts WHERE owner=$1 ORDER BY passport", owner
    )
    return [_from_row(r) for r in rows]


async def save(db: Database, contact: Contact) -> None:
    contact.passport = contact.passport.lower()
    await db.execute(
        f"""INSERT INTO contacts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (owner, passport) DO UPDATE SET nick=excluded.nick, lists=excluded.lists,
            groups=excluded.groups, status=excluded.status, psm=excluded.psm""",
        contact.owner,
        contact.passport,
        contact.nick,
        contact.lists,
        ",".join(contact.groups),
        contact.status,
        contact.psm,
    )


async def delete(db: Database, owner: str, passport: str) -> None:
    await db.execute("DELETE FROM contacts WHERE owner=$1 AND passport=$2", owner, passport.lower())


async def replace_all(
    db: Database, owner: str, contacts: Iterable[Contact], groups: Iterable[Group]
) -> None:
    """Replaces the stored list with a fresh one (after a full SYN), in one transaction."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM contacts WHERE owner=$1", owner)
        await conn.execute("DELETE FROM contact_groups WHERE owner=$1", owner)
        for c in contacts:
            await conn.execute(
                f"INSERT INTO contacts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                owner,
                c.passport.lower(),
                c.nick,
                c.lists,
                ",".join(c.groups),
                c.status,
                c.psm,
            )
        for g in groups:
            await conn.execute(
                "INSERT INTO contact_groups (owner, group_id, name) VALUES ($1, $2, $3)",
                owner,
                g.group_id,
                g.name,
            )


async def get_groups(db: Database, owner: str) -> list[Group]:
    rows = await db.fetch(
        "SELECT owner, group_id, name FROM contact_groups WHERE owner=$1 ORDER BY group_id", owner
    )
    return [Group(r["owner"], r["group_id"], r["name"]) for r in rows]


async def save_group(db: Database, group: Group) -> None:
    await db.execute(
        """INSERT INTO contact_groups (owner, group_id, name) VALUES ($1, $2, $3)
        ON CONFLICT (owner, group_id) DO UPDATE SET name=excluded.name""",
        group.owner,
        group.group_id,
        group.name,
    )


async def delete_group(db: Database, owner: str, group_id: str) -> None:
    await db.execute("DELETE FROM contact_groups WHERE owner=$1 AND group_id=$2", owner, group_id)
