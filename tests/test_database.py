"""Migrations and the per-table modules, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from msnbridge.db import (
    DatabaseTooNew,
    MigrationError,
    contact,
    ghost,
    irc_nick,
    message,
    open_database,
    portal,
    schema_version,
    txn,
    user,
)
from msnbridge.db.upgrade import MIGRATIONS_DIR, read_migrations, split_statements

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
TABLES = (
    "users", "contacts", "contact_groups", "ghosts", "portals",
    "message_map", "txn_seen", "irc_nicks", "irc_allowed", "bridge_info_sent",
    "irc_backlog", "offline_seen", "msn_inbox", "matrix_inbox", "media",
)  # fmt: skip
CURRENT = len(read_migrations())  # the newest schema version the code knows
NEXT = f"{CURRENT + 1:03d}"  # the number a migration of a newer version would take


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'test.db'}"
        return
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} (trust auth expected): {e}")
    name = f"msnbridge_test_{secrets.token_hex(4)}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def migrations_with(tmp_path: Path, **extra: str) -> Path:
    """A copy of the real migrations plus extra files {name: sql}."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    for name, sql in extra.items():
        (directory / f"{name}.sql").write_text(sql)
    return directory


async def test_migrations_create_every_table(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        for table in TABLES:
            assert await db.table_exists(table), table
        assert await schema_version(db) == len(read_migrations())
    finally:
        await db.stop()


async def test_each_migration_applies_once(db_url: str, tmp_path: Path) -> None:
    db = await open_database(db_url)
    await user.save(db, user.User("@alice:example.com", "matrix", passport="Alice@Example.com"))
    await db.stop()
    # A second migration arrives with a new version of the code; 001 must not run again
    # (its CREATE TABLEs would fail) and the data must stay.
    directory = migrations_with(
        tmp_path, **{f"{NEXT}_notes": "CREATE TABLE notes (id TEXT PRIMARY KEY);"}
    )
    for _ in range(2):
        db = await open_database(db_url, migrations_dir=directory)
        try:
            assert await schema_version(db) == CURRENT + 1
            assert await db.table_exists("notes")
            stored = await user.get(db, "@alice:example.com")
            assert stored is not None and stored.passport == "alice@example.com"
        finally:
            await db.stop()


async def test_database_newer_than_code_is_refused(db_url: str, tmp_path: Path) -> None:
    newer = migrations_with(tmp_path, **{f"{NEXT}_notes": "CREATE TABLE notes (id TEXT);"})
    db = await open_database(db_url, migrations_dir=newer)
    await db.stop()
    with pytest.raises(DatabaseTooNew) as info:
        await open_database(db_url)
    assert f"schema version {CURRENT + 1}" in str(info.value)
    assert f"knows only up to version {CURRENT}" in str(info.value)


async def test_failed_migration_is_rolled_back(db_url: str, tmp_path: Path) -> None:
    broken = migrations_with(
        tmp_path,
        **{f"{NEXT}_broken": "CREATE TABLE half (id TEXT);\nINSERT INTO no_such_table VALUES (1);"},
    )
    with pytest.raises(Exception, match="no_such_table"):
        await open_database(db_url, migrations_dir=broken)
    db = await open_database(db_url)  # the code without that migration still starts
    try:
        assert await schema_version(db) == CURRENT
        assert not await db.table_exists("half")
    finally:
        await db.stop()


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    skipped = f"{CURRENT + 2:03d}_skipped"
    directory = migrations_with(tmp_path, **{skipped: "SELECT 1;"})
    with pytest.raises(MigrationError, match="without gaps"):
        read_migrations(directory)
    (directory / f"{skipped}.sql").unlink()
    (directory / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_description"):
        read_migrations(directory)
    with pytest.raises(MigrationError, match="not found"):
        read_migrations(tmp_path / "nowhere")


def test_statement_splitting() -> None:
    sql = (
        "-- header;\nCREATE TABLE a (\n  x TEXT -- a comment\n);\nCREATE INDEX i ON a (x); -- why\n"
    )
    assert split_statements(sql) == (
        "CREATE TABLE a (\n  x TEXT -- a comment\n)",
        "CREATE INDEX i ON a (x)",
    )


async def test_table_modules_round_trip(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        owner = "@alice:example.com"
        await user.save(
            db, user.User(owner, "matrix", passport="alice@example.com", password="v1:x")
        )
        await user.save(db, user.User("irc:bob", "irc"))
        assert (await user.get_by_passport(db, "ALICE@example.com")).id == owner
        assert [u.id for u in await user.get_all(db, with_login=True)] == [owner]
        assert "v1:x" not in repr(await user.get(db, owner))

        await contact.replace_all(
            db,
            owner,
            [
                contact.Contact(owner, "Bob@Example.com", "Bob", 11, ("1", "2"), "NLN", "hi"),
                contact.Contact(owner, "carol@example.com", "Carol", 1),
            ],
            [contact.Group(owner, "1", "Friends"), contact.Group(owner, "2", "Work")],
        )
        bob = await contact.get(db, owner, "bob@example.com")
        assert bob == contact.Contact(owner, "bob@example.com", "Bob", 11, ("1", "2"), "NLN", "hi")
        bob.status = "AWY"
        await contact.save(db, bob)
        assert (await contact.get(db, owner, "bob@example.com")).status == "AWY"
        assert [g.name for g in await contact.get_groups(db, owner)] == ["Friends", "Work"]

        key = portal.portal_key(["carol@example.com", "Bob@example.com"])
        assert key == "bob@example.com,carol@example.com"
        await portal.save(db, portal.Portal(owner, key, room_id="!r:example.com", is_direct=False))
        found = await portal.get_by_room(db, "!r:example.com")
        assert found is not None and found.is_direct is False and found.relay_enabled is False
        assert found.participants == ["bob@example.com", "carol@example.com"]

        await ghost.save(db, ghost.Ghost("bob@example.com", "@msn_bob:example.com", "Bob"))
        g = await ghost.get_by_mxid(db, "@msn_bob:example.com")
        assert g is not None and g.name_set is False and g.displayname == "Bob"

        link = message.MessageLink("$e1", "!r:example.com", msn_id="m1")
        assert await message.claim(db, link) is True
        assert await message.claim(db, message.MessageLink("$e1", "!r:example.com")) is False
        assert (await message.get_by_msn_id(db, "m1")).event_id == "$e1"

        assert await txn.claim(db, "t1") is True
        assert await txn.claim(db, "t1") is False

        assert await irc_nick.claim(db, "bob@example.com", "Bob") is True
        assert await irc_nick.claim(db, "bob2@example.com", "Bob") is False
        assert await irc_nick.get(db, "BOB@example.com") == "Bob"

        # Deleting a user takes their contact list and portals with them.
        await user.delete(db, owner)
        assert await contact.get_all(db, owner) == []
        assert await portal.get_all(db, owner) == []
    finally:
        await db.stop()


async def test_processes_starting_together_migrate_a_fresh_database_once(db_url: str) -> None:
    """The core and its pools start side by side against one fresh database: one of them
    migrates it, the others wait and find it done (PostgreSQL used to answer the second
    CREATE TABLE with a duplicate key in pg_type, and that process did not start)."""
    dbs = await asyncio.gather(*(open_database(db_url) for _ in range(4)))
    try:
        for db in dbs:
            assert await schema_version(db) == CURRENT
    finally:
        for db in dbs:
            await db.stop()


async def test_an_opened_postgresql_database_holds_few_idle_connections(db_url: str) -> None:
    """The core and every pool open the database: each used to hold ten idle connections
    from the start (asyncpg's default pool), and a few bridges (or one with a few pools)
    filled PostgreSQL's max_connections ("sorry, too many clients already")."""
    if not db_url.startswith("postgres"):
        pytest.skip("SQLite has no connection pool")
    name = db_url.rsplit("/", 1)[1]
    db = await open_database(db_url)
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        count = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
        idle = await admin.fetchval(count, name)
        assert idle <= 2, f"{idle} connections held by one idle process"
        # Still up to ten at once when they are needed.
        pool = db.pool  # type: ignore[attr-defined]
        busy = [await pool.acquire() for _ in range(10)]
        assert await admin.fetchval(count, name) == 10
        for conn in busy:
            await pool.release(conn)
    finally:
        await admin.close()
        await db.stop()
