"""One process at a time migrates a database: the core and its pools start side by side
against one (fresh) database, and two processes creating the same tables at once fail
(PostgreSQL: a duplicate key in pg_type; SQLite: "table already exists")."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator

import asyncpg

from ..private_files import sqlite_path

# pg_advisory_lock's key: any constant the bridge alone uses ("msnb" in ASCII).
_PG_LOCK_KEY = 0x6D736E62


@contextlib.asynccontextmanager
async def migration_lock(url: str) -> AsyncIterator[None]:
    if url.startswith(("postgres://", "postgresql://")):
        async with _postgres_lock(url):
            yield
    elif (path := sqlite_path(url)) is not None:
        async with _file_lock(f"{path}.migrating"):
            yield
    else:
        yield


@contextlib.asynccontextmanager
async def _postgres_lock(url: str) -> AsyncIterator[None]:
    # A session lock on a connection of its own, held while the pool's connections migrate.
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _PG_LOCK_KEY)
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", _PG_LOCK_KEY)
        await conn.close()


@contextlib.asynccontextmanager
async def _file_lock(path: str) -> AsyncIterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:  # non-blocking: the holder may be this very process (another task)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
