"""irc_nicks: the IRC nick given to each MSN contact, kept across restarts."""

from __future__ import annotations

from mautrix.util.async_db import Database


async def get(db: Database, passport: str) -> str | None:
    return await db.fetchval("SELECT nick FROM irc_nicks WHERE passport=$1", passport.lower())


async def get_passport(db: Database, nick: str) -> str | None:
    return await db.fetchval("SELECT passport FROM irc_nicks WHERE nick=$1", nick)


async def claim(db: Database, passport: str, nick: str) -> bool:
    """Gives `nick` to `passport`; False if another passport holds that nick already."""
    holder = await get_passport(db, nick)
    if holder is not None and holder != passport.lower():
        return False
    await db.execute(
        """INSERT INTO irc_nicks (passport, nick) VALUES ($1, $2)
        ON CONFLICT (passport) DO UPDATE SET nick=excluded.nick""",
        passport.lower(),
        nick,
    )
    return True
