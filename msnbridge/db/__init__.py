"""The bridge's database: one module per table, schema from migrations/ (see upgrade.py).

Queries use $1-style parameters; mautrix's SQLite driver rewrites them for SQLite.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from mautrix.util.async_db import Database, UnsupportedDatabaseVersion
from yarl import URL

from ..private_files import prepare_sqlite
from .loop_sqlite import LoopSQLiteDatabase
from .migration_lock import migration_lock
from .upgrade import MIGRATIONS_DIR, VERSION_TABLE, MigrationError, build_upgrade_table

__all__ = ["Database", "DatabaseTooNew", "MigrationError", "open_database", "schema_version"]


class DatabaseTooNew(Exception):
    """The database was upgraded by a newer msnbridge than this one."""


POSTGRES_SCHEMES = ("postgres:", "postgresql:", "cockroach:", "cockroachdb:")
# asyncpg opens min_size connections at once, ten by default: the core and each pool
# held ten idle ones apiece, and a few processes filled PostgreSQL's max_connections.
# Opened as needed instead (and closed after 5 idle minutes), still up to ten at once.
POSTGRES_POOL = {"min_size": 1, "max_size": 10}


async def open_database(url: str, *, migrations_dir: Path = MIGRATIONS_DIR) -> Database:
    """Connects and applies the migrations the database has not seen yet."""
    upgrade_table = build_upgrade_table(migrations_dir)
    prepare_sqlite(url)  # users' data: 0600, and so its -wal/-shm
    log = logging.getLogger("msnbridge.db")
    db: Database
    if URL(url).scheme in ("sqlite", "sqlite3"):  # in the loop's thread: see loop_sqlite
        db = LoopSQLiteDatabase(URL(url), upgrade_table=upgrade_table, log=log, owner_name=None)
    else:
        db = Database.create(
            url,
            upgrade_table=upgrade_table,
            log=log,
            owner_name=None,
            db_args=dict(POSTGRES_POOL) if url.startswith(POSTGRES_SCHEMES) else None,
        )
    try:
        async with migration_lock(url):
            await db.start()
    except UnsupportedDatabaseVersion:
        version = await _stored_version(db)
        await db.stop()
        raise DatabaseTooNew(
            f"the database is at schema version {version}, but this msnbridge knows only up to "
            f"version {len(upgrade_table.upgrades)}: it was used by a newer msnbridge. Run that "
            f"newer version, or restore a backup made before the upgrade."
        ) from None
    except BaseException:
        with contextlib.suppress(Exception):  # the pool may not exist if connecting failed
            await db.stop()
        raise
    return db


async def _stored_version(db: Database) -> int | None:
    try:
        return await db.fetchval(f"SELECT version FROM {VERSION_TABLE}")
    except Exception:  # only used to word the error message
        return None


async def schema_version(db: Database) -> int:
    return await db.fetchval(f"SELECT version FROM {VERSION_TABLE}") or 0
