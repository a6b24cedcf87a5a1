"""Numbered SQL migrations (migrations/NNN_name.sql) fed to mautrix's UpgradeTable.

UpgradeTable keeps the schema version in a version table, runs each missing step once inside
a transaction, and refuses a database whose version is above the newest file here.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mautrix.util.async_db import Connection, Scheme, UpgradeTable


def _find_migrations() -> Path:
    """A checkout keeps them at the top level; an installed wheel puts them under
    <prefix>/share/msnbridge/migrations (pyproject's data-files); an environment variable
    overrides both."""
    override = os.environ.get("MSNBRIDGE_MIGRATIONS")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "msnbridge" / "migrations"


MIGRATIONS_DIR = _find_migrations()
VERSION_TABLE = "msnbridge_version"
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# A statement ends at a semicolon closing a line; the files keep semicolons out of strings.
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)

log = logging.getLogger("msnbridge.db.upgrade")


class MigrationError(Exception):
    """The migrations directory is unusable (missing, a gap in the numbers, a bad name)."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]

    def as_upgrade(self) -> Callable[[Connection, Scheme], Awaitable[None]]:
        # A fresh function per step: UpgradeTable sets attributes on what it registers.
        async def apply(conn: Connection, scheme: Scheme) -> None:
            for statement in self.statements:
                await conn.execute(statement)

        apply.__name__ = f"migration_{self.version:03d}"
        return apply


def split_statements(sql: str) -> tuple[str, ...]:
    statements = []
    for chunk in _STATEMENT_END.split(sql):
        lines = [ln for ln in chunk.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if lines:
            statements.append("\n".join(lines))
    return tuple(statements)


def read_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} not found")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: a second migration numbered {version}")
        statements = split_statements(path.read_text(encoding="utf-8"))
        found[version] = Migration(version, match.group(2).replace("_", " "), statements)
    expected = list(range(1, len(found) + 1))
    if sorted(found) != expected:
        raise MigrationError(
            f"migrations in {directory} must be numbered 001, 002, … without gaps; "
            f"found {sorted(found)}"
        )
    return [found[v] for v in expected]


def build_upgrade_table(directory: Path = MIGRATIONS_DIR) -> UpgradeTable:
    table = UpgradeTable(
        version_table_name=VERSION_TABLE, database_name="msnbridge database", log=log
    )
    for migration in read_migrations(directory):
        table.register(migration.as_upgrade(), description=migration.description)
    return table
