"""Connection pools end to end: the core (`msnbridge -c`) and pools (`msnbridge pool -c`)
as processes, with a real Redis, PostgreSQL as the shared database, real Synapse and the
MSNP test server.

- The core SIGKILLed in the middle of a two-way stream of numbered messages: nothing is
  lost or doubled either way, and MSN saw no sign-out and no new login of the user.
- A pool SIGKILLed: its session is online again on the other pool after the lease TTL,
  and what is sent meanwhile is delivered or reported.
- A pool stopped with SIGTERM on MSNP18: the session moves to the other pool and the
  contacts see no sign-out (MPOP: the new endpoint is online before the old one leaves).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.msnp_server import MSNPTestServer
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.synapse_server import SynapseServer, room_events, send_text
from tests.test_faults_msn import fast_friend, texts
from tests.test_faults_process import daemon, daemon_logging, database_url
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    ghost_id,
    log_in,
    msn,  # noqa: F401 (fixture)
    settings,
)
from tests.test_restart_stream import all_room_events, poll

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parent.parent
N = 80
KILL_AFTER = 25


@contextlib.asynccontextmanager
async def pool_process(
    config: Path, cwd: Path, name: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`msnbridge pool -c config` as a subprocess (its log next to the core's)."""
    log = (cwd / f"{name}.out").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msnbridge", "pool", "-c", str(config),
        cwd=cwd, stdout=log, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


def pool_config(
    bridge_config: Callable[..., Path], server: MSNPTestServer, db: str, redis: str, log: Path,
    ttl: int = 3, **extra: Any,
) -> Path:  # fmt: skip
    return bridge_config(
        **settings(server), database=db, logging=daemon_logging(log),
        pools={"redis_url": redis, "lease_ttl": ttl, "command_timeout": 30}, **extra,
    )  # fmt: skip


async def test_core_sigkill_mid_stream_loses_nothing_and_msn_sees_no_sign_out(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with database_url("postgres", tmp_path) as db:
        config = pool_config(bridge_config, msn, db, redis_url, tmp_path / "core.log")
        await _core_sigkill(synapse, config, msn, tmp_path)


async def _core_sigkill(
    synapse: SynapseServer,
    config: Path,
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    ghost = ghost_id(synapse, BOB)
    room = ""

    async def matrix_texts() -> list[str]:
        events = await all_room_events(synapse, owner, room)
        return [e["content"].get("body", "") for e in events
                if e["type"] == "m.room.message" and e["sender"] == ghost]  # fmt: skip

    async def from_bob() -> None:
        for i in range(N):
            await asyncio.sleep(0.05)
            for _ in range(600):  # not delivered: sent again, as a person would
                if (await bob.conversation([ALICE]).send_text(f"n2m {i}")).ok:
                    break
                await asyncio.sleep(0.2)

    async def from_owner() -> None:
        for i in range(N):
            await send_text(synapse, owner, room, f"m2n {i}")
            await asyncio.sleep(0.05)

    try:
        async with (
            pool_process(config, tmp_path, "pool-a"),
            daemon(synapse, config, tmp_path) as core,
        ):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "start")
            logins = msn.stats.account_logins[ALICE]
            assert logins == 1 and msn.stats.sign_outs[ALICE] == 0
            senders = [asyncio.create_task(from_bob()), asyncio.create_task(from_owner())]

            async def midway() -> bool:
                got = [t for t in texts(bob_events) if t.startswith("m2n ")]
                return len(got) >= KILL_AFTER and len(await matrix_texts()) >= KILL_AFTER

            assert await poll(midway, 120)
            core.kill()
            await core.wait()
            await asyncio.sleep(3)  # bob keeps sending to alice, whose session stays up
            async with daemon(synapse, config, tmp_path) as core:
                await asyncio.wait_for(asyncio.gather(*senders), 240)

                async def all_arrived() -> bool:
                    got = {t for t in texts(bob_events) if t.startswith("m2n ")}
                    mine = {t for t in await matrix_texts() if t.startswith("n2m ")}
                    return len(got) >= N and len(mine) >= N

                await poll(all_arrived, 120)  # what is missing is counted below
                await asyncio.sleep(1)
                to_msn = collections.Counter(t for t in texts(bob_events) if t.startswith("m2n "))
                to_matrix = collections.Counter(
                    t for t in await matrix_texts() if t.startswith("n2m ")
                )
                failures = [
                    e["content"].get("body", "")
                    for e in await room_events(synapse, owner, room)
                    if e["sender"] == bot_id(synapse)
                    and "Not delivered" in e["content"].get("body", "")
                ]
                core.terminate()
                await asyncio.wait_for(core.wait(), 15)
            report = {
                "lost to MSN": sorted(set(range(N)) - {int(t.split()[1]) for t in to_msn}),
                "doubled to MSN": sorted(t for t, n in to_msn.items() if n > 1),
                "lost to Matrix": sorted(set(range(N)) - {int(t.split()[1]) for t in to_matrix}),
                "doubled to Matrix": sorted(t for t, n in to_matrix.items() if n > 1),
            }
            assert not {k: v for k, v in report.items() if v}, (report, failures)
            # The session stayed in the pool through the kill and the restarts.
            assert msn.stats.account_logins[ALICE] == logins, msn.stats.as_dict()
            assert msn.stats.sign_outs[ALICE] == 0, msn.stats.as_dict()
            assert msn.online_sessions(ALICE) == 1
    finally:
        await bob.stop()
