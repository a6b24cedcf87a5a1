"""Files holding secrets or users' data (the registration, the SQLite database and its
-wal/-shm, the log) are readable by the bridge's own user only (0600), whatever the umask.

SQLite creates its -wal and -shm files with the mode of the database file, so creating
the database file 0600 first is enough for all three.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from yarl import URL

PRIVATE = 0o600
DAEMON_UMASK = 0o077  # anything else the daemon creates is private too


def make_private(path: str | Path) -> None:
    """Creates ``path`` empty with mode 0600 if missing; tightens it to 0600 if present."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)


def tighten_existing(paths: Iterable[str | Path]) -> None:
    """0600 for those of ``paths`` that exist (files left by an older version)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, PRIVATE)


def write_private(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` with mode 0600 (also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        os.fchmod(fd, PRIVATE)
        stream.write(text)


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:`` database URL, read as mautrix reads it (None for other
    databases or in-memory)."""
    parsed = URL(url)
    if parsed.scheme not in ("sqlite", "sqlite3"):
        return None
    return Path(parsed.path) if parsed.path and parsed.path != ":memory:" else None


def prepare_sqlite(url: str) -> None:
    """The database file (and a -wal/-shm left from before) private before SQLite opens it."""
    path = sqlite_path(url)
    if path is None:
        return
    make_private(path)
    tighten_existing((f"{path}-wal", f"{path}-shm", f"{path}-journal"))


def log_files(logging_config: Mapping[str, Any]) -> list[str]:
    """The files the logging configuration's handlers write to."""
    handlers = logging_config.get("handlers") or {}
    return [
        str(h["filename"])
        for h in handlers.values()
        if isinstance(h, Mapping) and isinstance(h.get("filename"), str | os.PathLike)
    ]
