"""SQLite run in the event loop's thread, for the embedded (``sqlite:``) database.

mautrix's SQLite driver runs every statement in aiosqlite's thread: a hop there and back
per call (three for a fetch: execute, fetch, close), each a queue put, a thread switch and
a wake-up of the loop through its self-pipe. With WAL and synchronous=NORMAL a commit does
not wait for the disk, so the bridge's statements (one row by primary key) take tens of
microseconds: far less than the hop. Here they run right where they are awaited.

What the thread gave for free is kept:
- the loop never waits for another process's lock (pools may share the file): the
  connection's busy timeout is 0 and a busy database is retried with asyncio sleeps, for
  as long as mautrix's driver waited (BUSY_WAIT);
- a transaction (``acquire()`` then ``transaction()``) has the connection to itself: a
  statement of another task waits until it is over instead of landing inside it.
A WAL checkpoint (every ~1000 pages written) still runs in the committing statement and
syncs the file: a pause of the loop of about a disk flush, now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any, TypeVar

from mautrix.util.async_db import Database, Scheme
from mautrix.util.async_db.connection import LoggingConnection
from mautrix.util.async_db.database import conn_var

T = TypeVar("T")

BUSY_WAIT = 5.0  # seconds a busy database is retried (mautrix's driver: busy_timeout 5000)
_PRAGMAS = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 0",
)
_POSITIONAL = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def sqlite_query(query: str) -> str:
    """$1-style parameters (what the bridge's queries use) as SQLite's ?1."""
    return _POSITIONAL.sub(r"?\1", query)


def is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # not reported: go by the message
        return "locked" in str(error) or "busy" in str(error)
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class LoopConnection:
    """The one sqlite3 connection, with the async methods mautrix's LoggingConnection
    expects of what it wraps."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # Synchronous, for the fast path: raise sqlite3.OperationalError when busy.
    def execute_now(self, query: str, *args: Any) -> sqlite3.Cursor:
        return self.conn.execute(sqlite_query(query), args)

    def fetch_now(self, query: str, *args: Any) -> list[sqlite3.Row]:
        return self.conn.execute(sqlite_query(query), args).fetchall()

    def fetchrow_now(self, query: str, *args: Any) -> sqlite3.Row | None:
        cursor = self.conn.execute(sqlite_query(query), args)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()  # a RETURNING statement is complete only when its cursor is

    def fetchval_now(self, query: str, *args: Any, column: int = 0) -> Any:
        row = self.fetchrow_now(query, *args)
        return None if row is None else row[column]

    async def _retrying(self, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + BUSY_WAIT
        delay = 0.001
        while True:
            try:
                return call()
            except sqlite3.OperationalError as e:
                if not is_busy(e) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._retrying(lambda: self.execute_now(query, *args))

    async def executemany(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._retrying(lambda: self.conn.executemany(sqlite_query(query), args[0]))

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._retrying(lambda: self.fetch_now(query, *args))

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._retrying(lambda: self.fetchrow_now(query, *args))

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        return await self._retrying(lambda: self.fetchval_now(query, *args, column=column))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self.conn.in_transaction:  # nested: part of the outer one, as in mautrix
            yield
            return
        # IMMEDIATE: the write lock is taken (or waited for) here, where a retry is
        # harmless, not at the first write inside, where it could not be retried.
        await self._retrying(lambda: self.conn.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        else:
            await self._retrying(self.conn.commit)


class LoopSQLiteDatabase(Database):
    scheme = Scheme.SQLITE

    def __init__(self, url: Any, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._path: str = url.path
        self._conn: LoopConnection | None = None
        self._lock = asyncio.Lock()  # held by acquire(): one task's statements at a time
        self._stopped = False

    async def start(self) -> None:
        if self._conn is not None or self._stopped:
            raise RuntimeError("the database was started before")
        conn = sqlite3.connect(
            self._path, detect_types=sqlite3.PARSE_DECLTYPES, isolation_level=None
        )
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        conn.row_factory = sqlite3.Row
        self._conn = LoopConnection(conn)
        await super().start()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        async with self._lock:  # a transaction in progress ends first
            if self._conn is not None:
                self._conn.conn.close()
                self._conn = None

    @contextlib.asynccontextmanager
    async def acquire_direct(self) -> AsyncIterator[LoggingConnection]:
        async with self._lock:
            yield LoggingConnection(self.scheme, self._ready(), self.log)  # type: ignore[arg-type]

    def _ready(self) -> LoopConnection:
        if self._conn is None:
            raise RuntimeError("database pool has been stopped")
        return self._conn

    def _free(self) -> LoopConnection | None:
        """The connection when a statement may run at once: nobody holds it, or this task
        does (conn_var: inside acquire())."""
        if self._lock.locked() and conn_var.get() is None:
            return None
        return self._ready()

    # Outside a transaction a statement runs at once when the connection is free;
    # busy or held, it waits for the connection and is retried (mautrix's acquire()).
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        if (conn := self._free()) is not None:
            try:
                return conn.execute_now(query, *args)
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
        return await Database.execute(self, query, *args)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        if (conn := self._free()) is not None:
            try:
                return conn.fetch_now(query, *args)
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
        return await Database.fetch(self, query, *args)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        if (conn := self._free()) is not None:
            try:
                return conn.fetchrow_now(query, *args)
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
        return await Database.fetchrow(self, query, *args)

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any:
        if (conn := self._free()) is not None:
            try:
                return conn.fetchval_now(query, *args, column=column)
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
        return await Database.fetchval(self, query, *args, column=column)
