"""A database that is not up yet is waited for (msnbridge/db/wait.py): the core started
at the same time as its PostgreSQL (docker compose) comes up once the database does; an
error that waiting cannot fix fails at once; the password never reaches the log.

PostgreSQL is the real one on 127.0.0.1:5432 (skipped with the reason when unreachable),
reached through a TCP forwarder on another port that starts listening only later: the
port refuses connections until then, as a starting PostgreSQL's does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from msnbridge.bridge import Bridge
from msnbridge.config import load_config
from msnbridge.db.wait import open_database_when_ready
from msnbridge.errors import StartupError
from tests import test_matrix_portals
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, free_port
from tests.test_config import write_example
from tests.test_faults_process import daemon, daemon_logging, database_url
from tests.test_matrix_portals import settings

msn = test_matrix_portals.msn  # the MSNP test server fixture

PASSWORD = "pg-s3cret-never-logged"  # trust auth: PostgreSQL does not ask for it


@contextlib.asynccontextmanager
async def postgres_later(after: float | None) -> AsyncIterator[int]:
    """A port that refuses connections, then (``after`` seconds in; never with None)
    forwards them to PostgreSQL on 127.0.0.1:5432."""
    port = free_port()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    servers: list[asyncio.Server] = []

    async def listen_later() -> None:
        assert after is not None
        await asyncio.sleep(after)
        servers.append(await asyncio.start_server(forward, "127.0.0.1", port))

    task = asyncio.create_task(listen_later()) if after is not None else None
    try:
        yield port
    finally:
        if task is not None:
            task.cancel()
        for server in servers:
            server.close()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database's name."""
    async with database_url("postgres", tmp_path) as url:
        yield url.rsplit("/", 1)[1]


def through(port: int, name: str) -> str:
    return f"postgres://postgres:{PASSWORD}@127.0.0.1:{port}/{name}"


async def test_a_database_that_comes_up_later_is_waited_for(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "msnbridge.db")
    async with postgres_later(after=1.5) as port:
        db = await open_database_when_ready(through(port, database), wait=30)
        try:
            assert await db.fetchval("SELECT count(*) FROM users") == 0  # migrated
        finally:
            await db.stop()
    waits = [r.getMessage() for r in caplog.records if "not reachable yet" in r.getMessage()]
    assert waits, caplog.text
    assert all("***" in w for w in waits), waits
    assert PASSWORD not in caplog.text


async def test_a_database_that_never_comes_up_fails_when_the_wait_is_over(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "msnbridge.db")
    async with postgres_later(after=None) as port:
        with pytest.raises(OSError):
            await open_database_when_ready(through(port, database), wait=1.5)
    assert sum("not reachable yet" in r.getMessage() for r in caplog.records) >= 2


async def test_errors_that_waiting_cannot_fix_fail_at_once(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "msnbridge.db")
    with pytest.raises(asyncpg.InvalidCatalogNameError):  # no such database
        await open_database_when_ready(through(5432, database + "_missing"), wait=60)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError, match="Not a directory"):  # a SQLite file under a file
        await open_database_when_ready(f"sqlite:{tmp_path / 'a-file' / 'bridge.db'}", wait=60)
    assert "not reachable yet" not in caplog.text  # not one attempt more


async def test_the_core_started_before_its_database_comes_up_when_it_does(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    database: str,
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "bridge.log"
    async with postgres_later(after=3.0) as port:
        config = bridge_config(
            **settings(msn), database=through(port, database), logging=daemon_logging(log_file)
        )
        async with daemon(synapse, config, tmp_path) as proc:
            assert proc.returncode is None
        log = log_file.read_text()
    assert "is not reachable yet" in log, log
    assert PASSWORD not in log
    assert "Traceback" not in log, log


async def test_a_database_file_that_is_not_one_stops_the_core_with_a_clear_error(
    tmp_path: Path,
) -> None:
    # Not a wait: SQLite says at once that the file is not a database; the core says which
    # database it could not open (before, sqlite3's exception escaped as a traceback).
    bad = tmp_path / "not-a-database.db"
    bad.write_bytes(b"this is not an SQLite file, " * 100)
    path = write_example(tmp_path, "database: sqlite:msnbridge.db", f"database: sqlite:{bad}")
    bridge = Bridge(load_config(str(path)))
    with pytest.raises(StartupError, match=r"cannot open the database sqlite:.*not a database"):
        await bridge._open_database()
