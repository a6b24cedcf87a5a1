"""The bridge's per-message database statements through mautrix's SQLite driver (aiosqlite:
a hop to its thread per call) beside the same through msnbridge's in-loop driver
(msnbridge/db/loop_sqlite.py), both on a file with the bridge's schema, interleaved
rounds, best of each. Process CPU (all threads) and wall time per statement.

    .venv/bin/python benchmarks/db_statements.py [--messages 2000] [--rounds 5]

One "message" is what an MSN → Matrix message writes: msn_inbox add, message_map claim
(INSERT … RETURNING), msn_inbox remove.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mautrix.util.async_db import Database

from msnbridge.db import message as message_db
from msnbridge.db import msn_inbox, open_database
from msnbridge.db.upgrade import build_upgrade_table


async def open_mautrix(url: str) -> Database:
    db = Database.create(url, upgrade_table=build_upgrade_table(), owner_name=None)
    await db.start()
    return db


async def one_round(db: Database, messages: int, tag: str) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(messages):
        msn_id = f"msn:{tag}:{i}"
        entry = msn_inbox.InboxEntry(msn_id, "@o:x", "bob@x", "bob@x", "Bob", "hi", "FN=x")
        await msn_inbox.add(db, entry)
        link = message_db.MessageLink(f"${tag}{i}:x", "!r:x", msn_id=msn_id)
        await message_db.claim(db, link)
        await msn_inbox.remove(db, msn_id)
    statements = messages * 3
    return (
        (time.process_time() - cpu0) / statements * 1e6,
        (time.perf_counter() - wall0) / statements * 1e6,
    )


async def main(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        old = await open_mautrix(f"sqlite:{tmp}/old.db")
        new = await open_database(f"sqlite:{tmp}/new.db")
        best: dict[str, tuple[float, float]] = {}
        try:
            for r in range(args.rounds):
                for name, db in (("mautrix (aiosqlite thread)", old), ("in the loop", new)):
                    cpu, wall = await one_round(db, args.messages, f"{r}")
                    prev = best.get(name)
                    best[name] = (min(cpu, prev[0]), min(wall, prev[1])) if prev else (cpu, wall)
        finally:
            await old.stop()
            await new.stop()
    print(f"{os.cpu_count()} cores, load average {load:.2f} at the start")
    print(f"{args.messages} messages x 3 statements, best of {args.rounds}")
    print(f"{'driver':28} {'CPU us/stmt':>12} {'wall us/stmt':>13}")
    base = best["mautrix (aiosqlite thread)"][0]
    for name, (cpu, wall) in best.items():
        print(f"{name:28} {cpu:12.1f} {wall:13.1f}   {cpu / base:.2f}x CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
