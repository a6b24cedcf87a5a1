"""irc_backlog: the catch-up of each IRC channel (lines held while none of its readers was
in it), in the order the bridge received them (``seq``, increasing across channels)."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Database

_COLUMNS = "channel, seq, kind, sender, text, received_at"


@dataclass(frozen=True, slots=True)
class HeldLine:
    channel: str  # lower-case name
    seq: int
    kind: str  # privmsg, action, notice (an MSN message), nudge, announce (the bot's)
    sender: str  # who said it ('' for the bot's own notices)
    text: str  # as shown on IRC (mIRC formatting)
    received_at: int  # Unix seconds


async def get_all(db: Database) -> dict[str, list[HeldLine]]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM irc_backlog ORDER BY seq")
    held: dict[str, list[HeldLine]] = {}
    for row in rows:
        held.setdefault(row["channel"], []).append(HeldLine(**{k: row[k] for k in row.keys()}))
    return held


async def max_seq(db: Database) -> int:
    return int(await db.fetchval("SELECT COALESCE(MAX(seq), 0) FROM irc_backlog") or 0)


async def add(db: Database, line: HeldLine) -> None:
    await db.execute(
        f"INSERT INTO irc_backlog ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
        line.channel,
        line.seq,
        line.kind,
        line.sender,
        line.text,
        line.received_at,
    )


async def remove_before(db: Database, channel: str, seq: int) -> None:
    """Trims a channel's catch-up: lines older than ``seq`` go."""
    await db.execute("DELETE FROM irc_backlog WHERE channel=$1 AND seq<$2", channel, seq)


async def remove_through(db: Database, channel: str, seq: int) -> None:
    """The catch-up was shown up to ``seq``."""
    await db.execute("DELETE FROM irc_backlog WHERE channel=$1 AND seq<=$2", channel, seq)
