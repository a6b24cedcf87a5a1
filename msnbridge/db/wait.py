"""Opening the database when it may not be up yet.

A PostgreSQL started beside the bridge (``docker compose up`` starts both at once, and so
does a machine booting) first refuses connections, then answers "the database system is
starting up" for a few seconds. The core and the pools wait that out instead of exiting;
an error that waiting cannot fix (a wrong password, no such database, a file that cannot
be opened, a schema from a newer msnbridge) is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import asyncpg
from mautrix.util.async_db import Database
from yarl import URL

from . import open_database
from .loop_sqlite import is_busy

DATABASE_WAIT = 60.0  # seconds a database that is not reachable yet is tried again
_FIRST_DELAY, _MAX_DELAY = 0.5, 5.0
# What PostgreSQL answers while it starts, or when every connection slot is taken.
_PG_NOT_YET = (asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)

log = logging.getLogger("msnbridge.db")


def is_transient(error: BaseException, url: str) -> bool:
    """Whether trying again later may succeed."""
    if URL(url).scheme in ("sqlite", "sqlite3"):
        # A file that cannot be opened stays so; another process's lock does not.
        return isinstance(error, sqlite3.OperationalError) and is_busy(error)
    # Refused, reset, unreachable, a name not resolvable yet, a connect that timed out.
    return isinstance(error, (OSError, *_PG_NOT_YET))


def shown(url: str) -> str:
    """The URL as it may be logged: without its password."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


async def open_database_when_ready(url: str, *, wait: float = DATABASE_WAIT) -> Database:
    """``open_database(url)``, tried again for up to ``wait`` seconds while the error is
    one that waiting can fix; the last error is raised when the time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = _FIRST_DELAY
    while True:
        try:
            return await open_database(url)
        except Exception as e:
            left = deadline - loop.time()
            if not is_transient(e, url) or left <= 0:
                raise
            pause = min(delay, left)  # the last attempt comes when the time is up
            log.warning(
                "The database %s is not reachable yet (%s); trying again in %.1f s",
                shown(url), e or type(e).__name__, pause,
            )  # fmt: skip
        await asyncio.sleep(pause)
        delay = min(delay * 2, _MAX_DELAY)
