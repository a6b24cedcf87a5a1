"""The bridge as a daemon (`python -m msnbridge -c …`) killed and stopped: SIGKILL and a
restart resume logins, rooms and contacts from the database, and a message that was being
sent at the kill is reported; offline messages (MSNP13+) fetched but not yet on Matrix at
the kill arrive after the restart, once, in order, at their time; SIGTERM signs every
session out with OUT, closes the database and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from puppets.event.conversation import MessageReceived
from tests import test_matrix_portals
from tests.homeserver_gate import HomeserverGate
from tests.msn_fixtures import alice_and_bob
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    msn_settings,
    room_events,
    send_text,
    wait_for_event,
)
from tests.test_faults_msn import fast_friend, texts
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    ghost_id,
    is_message_from,
    join,
    log_in,
    settings,
    until,
    wait_invite,
)

msn = test_matrix_portals.msn  # the MSNP test server fixture: alice, bob, carol

REPO = Path(__file__).resolve().parent.parent


def daemon_logging(path: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # With the time: a flaky run's log says how long each step took.
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "plain"}
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    }


READY_WITHIN = 120.0  # seconds for a starting daemon's appservice to answer


@contextlib.asynccontextmanager
async def daemon(
    synapse: SynapseServer, config: Path, cwd: Path, umask: int = -1
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The bridge as a subprocess, once its appservice answers; killed if still running.
    ``umask``: the one it starts with (-1: this process's)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msnbridge", "-c", str(config),
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)}, umask=umask,
    )  # fmt: skip
    try:
        url = f"{synapse.appservice.url}/_matrix/mau/ready"
        loop = asyncio.get_running_loop()
        # A deadline, not a count of polls: on a loaded machine starting the bridge
        # (imports, database, homeserver) took longer than 200 polls of 0.1 s.
        deadline = loop.time() + READY_WITHIN
        async with aiohttp.ClientSession() as session:
            while True:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            break
                if proc.returncode is not None:
                    assert proc.stdout is not None
                    raise AssertionError((await proc.stdout.read()).decode())
                if loop.time() > deadline:
                    raise AssertionError(
                        f"the daemon (still running) did not answer {url} within {READY_WITHIN} s"
                    )
                await asyncio.sleep(0.1)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def wal_left(path: Path) -> bool:
    """Whether SQLite left its write-ahead log (a connection was not closed)."""
    return Path(f"{path}-wal").exists()


def db_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


@contextlib.asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database of the backend; PostgreSQL skips when it is not reachable."""
    if backend == "sqlite":
        yield f"sqlite:{tmp_path / 'killed.db'}"
        return
    name = f"msnbridge_kill_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unreachable (user postgres, trust auth): {e}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def rows_of(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query, read beside the running daemon."""
    if url.startswith("sqlite:"):
        return db_rows(Path(url.removeprefix("sqlite:")), sql)
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=3)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def event_ids(url: str, table: str) -> list[str]:
    """The event_id column of message_map or matrix_inbox, read beside the running daemon."""
    sql = f"SELECT event_id FROM {table}"
    if url.startswith("sqlite:"):
        return [e for (e,) in db_rows(Path(url.removeprefix("sqlite:")), sql)]
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=3)
    try:
        return [r["event_id"] for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sigkill_then_restart_resumes_and_sends_the_message_in_flight(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    tmp_path: Path,
    backend: str,
) -> None:
    async with database_url(backend, tmp_path) as url:
        await _sigkill_then_restart(synapse, bridge_config(**settings(msn), database=url), url,
                                    msn, tmp_path)  # fmt: skip


async def _sigkill_then_restart(
    synapse: SynapseServer, config: Path, url: str, msn: MSNPTestServer, tmp_path: Path
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with daemon(synapse, config, tmp_path) as proc:
            management = await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "before the kill")
            await send_text(synapse, owner, room, "delivered before the kill")
            await bob_events.until(lambda: "delivered before the kill" in texts(bob_events))
            # A message the homeserver acknowledged, which the bridge is still sending
            # (MSN is down, so it waits for the session) when it is killed: nothing of it
            # was written to MSN, so the next start sends it (no "may not have arrived").
            await msn.stop()
            in_flight = await send_text(synapse, owner, room, "in flight at the kill")

            async def taken() -> bool:
                return in_flight in await event_ids(url, "matrix_inbox")

            await until(taken)
            await asyncio.sleep(0.5)  # waiting for the session
            assert in_flight not in await event_ids(url, "message_map")
            proc.kill()
            await proc.wait()
        await msn.start()
        await until(lambda: msn.online_sessions(BOB) == 1)

        async with daemon(synapse, config, tmp_path) as proc:
            # The login resumes from the database.
            await until(lambda: msn.online_sessions(ALICE) == 1, timeout=20)
            await bob_events.until(lambda: "in flight at the kill" in texts(bob_events))
            # The same room carries the conversation both ways.
            assert (await bob.conversation([ALICE]).send_text("after the restart")).ok
            await wait_for_event(
                synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "after the restart")
            )
            await send_text(synapse, owner, room, "still here")
            await bob_events.until(lambda: "still here" in texts(bob_events), timeout=15)
            # Contacts resume too.
            await send_text(synapse, owner, management, "contacts")
            await wait_for_event(synapse, owner, management, is_notice_from(bot_id(synapse), BOB))
            await asyncio.sleep(0.3)
            assert texts(bob_events) == [
                "delivered before the kill", "in flight at the kill", "still here"
            ]  # fmt: skip
            notices = [
                e
                for e in await room_events(synapse, owner, room)
                if is_notice_from(bot_id(synapse), "Not delivered")(e)
            ]
            assert notices == []
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await bob.stop()


@pytest.fixture
async def msn18() -> AsyncIterator[MSNPTestServer]:
    async with alice_and_bob() as server:
        yield server


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sigkill_after_offline_messages_were_fetched_loses_none(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn18: MSNPTestServer,
    tmp_path: Path,
    backend: str,
) -> None:
    """The MSN server deletes offline messages once the bridge fetched them; a bridge
    killed before they reached Matrix (the homeserver holds its sends) delivers them after
    the restart: each once, in order, at the time it was written."""
    msn = msn18
    gate = HomeserverGate(synapse.url)
    homeserver = {"address": await gate.start(), "domain": synapse.domain, "verify_ssl": True}
    owner = await synapse.register_user()
    written = time.time() - 3600
    texts = ["first while away", "second while away", "third while away"]
    try:
        async with database_url(backend, tmp_path) as url:
            config = bridge_config(
                **msn_settings(msn, services=True), database=url, homeserver=homeserver
            )
            async with daemon(synapse, config, tmp_path) as proc:
                await log_in(synapse, owner)
                gate.close()  # from here the bridge's messages do not reach Matrix
                for n, text in enumerate(texts):
                    msn.add_oim(ALICE, BOB, text, written + 60 * n, nick="Bob")
                room = await wait_invite(synapse, owner)  # the portal with bob
                await join(synapse, owner, room)
                # Fetched (the server deleted them) and the first one is being sent.
                await until(lambda: not msn.oims(ALICE) and gate.held >= 1, timeout=20)
                await asyncio.sleep(0.3)
                # What the bridge keeps of them: its undelivered messages, by receipt order.
                kept = await rows_of(url, "SELECT text FROM msn_inbox ORDER BY seq")
                assert [text for (text,) in kept] == texts
                proc.kill()
                await proc.wait()
            gate.drop_held()  # what the killed bridge was sending never arrives
            gate.open()
            bob_ghost = ghost_id(synapse, BOB)
            assert not [e for e in await room_events(synapse, owner, room)
                        if e["type"] == "m.room.message"]  # fmt: skip

            async with daemon(synapse, config, tmp_path) as proc:
                await wait_for_event(
                    synapse, owner, room, is_message_from(bob_ghost, texts[-1]), timeout=30
                )
                await until(lambda: msn.online_sessions(ALICE) == 1, timeout=20)
                await asyncio.sleep(1.0)  # time for a second copy that must not come
                events = [
                    e
                    for e in await room_events(synapse, owner, room)
                    if e["type"] == "m.room.message" and e["sender"] == bob_ghost
                ]
                assert [e["content"]["body"] for e in events] == texts
                for n, event in enumerate(events):
                    assert abs(event["origin_server_ts"] - (written + 60 * n) * 1000) < 2000
                assert await rows_of(url, "SELECT msn_id FROM msn_inbox") == []
                proc.terminate()
                assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await gate.stop()


async def test_sigterm_signs_out_closes_the_database_and_exits_0(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    tmp_path: Path,
) -> None:
    database = tmp_path / "term.db"
    log_file = tmp_path / "bridge.log"
    config = bridge_config(
        **settings(msn), database=f"sqlite:{database}", logging=daemon_logging(log_file)
    )
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with daemon(synapse, config, tmp_path) as proc:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hi")
            await send_text(synapse, owner, room, "bye soon")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "bye soon")
            closes = dict(msn.stats.closes)
            proc.send_signal(15)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        after = msn.stats.closes
        # alice's notification session and her switchboard said OUT (and bob's puppet,
        # left alone, left the switchboard with OUT too); nothing was just dropped.
        assert after["client_out"] - closes.get("client_out", 0) == 3, dict(after)
        assert after["peer_closed"] == closes.get("peer_closed", 0), dict(after)
        assert msn.online_sessions(ALICE) == 0
        log = log_file.read_text()
        assert "Stopping on signal" in log and "msnbridge stopped" in log
        assert "Traceback" not in log and "ERROR" not in log, log
        # The database was closed: SQLite checkpointed and removed its write-ahead log.
        assert not wal_left(database)
        rows = db_rows(database, "SELECT id, passport, state FROM users")
        assert rows == [(owner.user_id, ALICE, "logged_in")]  # restored at the next start
        assert db_rows(database, "PRAGMA integrity_check") == [("ok",)]
    finally:
        await bob.stop()
