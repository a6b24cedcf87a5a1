"""The embedded SQLite database run in the event loop's thread (msnbridge/db/loop_sqlite.py,
issue 14, per-message cost): a statement completes without handing the loop over (no hop
to a thread), a transaction keeps other tasks' statements out, and a database locked by
another connection (a pool process sharing the file) is waited for without blocking the
loop, for a bounded time. Real SQLite files, opened as the bridge opens them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msnbridge.db import Database, loop_sqlite, open_database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:{tmp_path / 'loop.db'}")
    await database.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    yield database
    await database.stop()


def finishes_in_one_step(coro) -> object:  # type: ignore[no-untyped-def]
    """The coroutine's result if it ran to the end without suspending; fails otherwise."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    pytest.fail("the statement suspended (waited for another thread)")


async def test_statements_run_without_suspending(db: Database) -> None:
    assert finishes_in_one_step(db.execute("INSERT INTO t VALUES ($1, $2)", "a", 1)) is not None
    claim = "INSERT INTO t VALUES ($1, $2) ON CONFLICT (k) DO NOTHING RETURNING k"
    assert finishes_in_one_step(db.fetchval(claim, "b", 2)) == "b"
    assert finishes_in_one_step(db.fetchval(claim, "b", 3)) is None  # RETURNING: nothing new
    row = finishes_in_one_step(db.fetchrow("SELECT k, v FROM t WHERE k=$1", "b"))
    assert (row["k"], row["v"]) == ("b", 2)  # type: ignore[index]
    rows = finishes_in_one_step(db.fetch("SELECT k FROM t ORDER BY k"))
    assert [r["k"] for r in rows] == ["a", "b"]  # type: ignore[attr-defined]


async def test_written_rows_are_in_the_file_at_once(db: Database, tmp_path: Path) -> None:
    """Each statement outside a transaction is committed when it returns (what a killed
    bridge relies on): another connection sees it."""
    await db.execute("INSERT INTO t VALUES ($1, $2)", "x", 1)
    other = sqlite3.connect(tmp_path / "loop.db")
    try:
        assert other.execute("SELECT v FROM t WHERE k='x'").fetchall() == [(1,)]
    finally:
        other.close()


async def test_a_transaction_keeps_other_tasks_out(db: Database) -> None:
    inside = asyncio.Event()
    go_on = asyncio.Event()

    async def transaction(fail: bool) -> None:
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO t VALUES ($1, $2)", "txn", 1)
            inside.set()
            await go_on.wait()
            if fail:
                raise RuntimeError("rolled back")

    for fail in (True, False):
        inside.clear()
        go_on.clear()
        task = asyncio.create_task(transaction(fail))
        await inside.wait()
        other = asyncio.create_task(db.execute("INSERT INTO t VALUES ($1, $2)", f"o{fail}", 2))
        await asyncio.sleep(0.05)
        assert not other.done()  # waits for the transaction instead of landing inside it
        go_on.set()
        if fail:
            with pytest.raises(RuntimeError):
                await task
        else:
            await task
        await other
        keys = [r["k"] for r in await db.fetch("SELECT k FROM t ORDER BY k")]
        assert keys == (["oTrue"] if fail else ["oFalse", "oTrue", "txn"])


async def test_a_locked_database_is_waited_for_without_blocking_the_loop(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = sqlite3.connect(tmp_path / "loop.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's write lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        write = asyncio.create_task(db.execute("INSERT INTO t VALUES ($1, $2)", "w", 1))
        await asyncio.sleep(0.3)
        assert not write.done()
        assert ticks >= 10  # the loop went on meanwhile
        other.execute("COMMIT")
        await asyncio.wait_for(write, 2)
        assert await db.fetchval("SELECT v FROM t WHERE k=$1", "w") == 1
        ticking.cancel()

        # Held for longer than the bridge waits: the statement fails, it does not hang.
        monkeypatch.setattr(loop_sqlite, "BUSY_WAIT", 0.2)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError):
            await asyncio.wait_for(db.execute("INSERT INTO t VALUES ($1, $2)", "z", 1), 5)
        other.execute("ROLLBACK")
        async with db.acquire() as conn, conn.transaction():  # and a transaction waits too
            await conn.execute("INSERT INTO t VALUES ($1, $2)", "z", 1)
        assert await db.fetchval("SELECT v FROM t WHERE k=$1", "z") == 1
    finally:
        other.close()


async def test_stopped_database_refuses(tmp_path: Path) -> None:
    database = await open_database(f"sqlite:{tmp_path / 'stopped.db'}")
    await database.stop()
    with pytest.raises(RuntimeError):
        await database.fetchval("SELECT 1")


async def test_executemany_and_plain_placeholders_in_a_transaction(db: Database) -> None:
    """What mautrix's state store does when it stores a room's members."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM t WHERE k IN (?, ?)", "a", "b")
        await conn.executemany("INSERT INTO t VALUES ($1, $2)", [("a", 1), ("b", 2), ("c", 3)])
    rows = await db.fetch("SELECT k, v FROM t ORDER BY k")
    assert [(r["k"], r["v"]) for r in rows] == [("a", 1), ("b", 2), ("c", 3)]
