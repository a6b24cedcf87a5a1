"""Ghost presence as Synapse carries it: shown only where someone shares a room with the
ghost, refreshed before Synapse lets it lapse, refreshes spread over the interval.

The end-to-end test runs its own Synapse with a 3 s ``presence.sync_online_timeout`` (the
default is 30 s) and the bridge refreshing every 2 s."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from mautrix.types import PresenceState

from msnbridge.matrix.ghosts import Ghosts
from msnbridge.matrix.ids import GhostIds
from msnbridge.matrix.settings import MATRIX_OPTIONS
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SYNAPSE_PYTHON,
    SynapseServer,
    running_bridge,
    serving,
    write_bridge_config,
)
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    friend,
    ghost_id,
    join,
    log_in,
    settings,
    wait_invite,
)
from tests.test_matrix_portals import msn as msn  # the MSNP test server fixture

SYNC_ONLINE_TIMEOUT = 3  # seconds, this module's Synapse
HANDLE_TIMEOUTS_AFTER = 30  # Synapse starts putting users offline 30 s after its start


class _FakeIntent:
    def __init__(self, log: list[str], mxid: str) -> None:
        self.log, self.mxid = log, mxid

    async def set_presence(
        self, state: PresenceState, status: str | None = None, ignore_cache: bool = False
    ) -> None:
        self.log.append(self.mxid)


def _ghosts(interval: float) -> tuple[Ghosts, list[str], GhostIds]:
    calls: list[str] = []
    az = SimpleNamespace(intent=None)
    ids = GhostIds("msn_{passport}", "example.com")
    ghosts = Ghosts(
        az,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        ids,
        "{nick}",
        refresh_interval=interval,
        make_intent=lambda mxid: _FakeIntent(calls, mxid),  # type: ignore[arg-type,return-value]
    )
    return ghosts, calls, ids


def test_default_refresh_comes_before_synapse_lets_presence_lapse() -> None:
    if not SYNAPSE_PYTHON.exists():
        pytest.skip("Synapse is not installed (.venv-synapse): its default timeout is unknown")
    read = "from synapse.config.server import DEFAULT_SYNC_ONLINE_TIMEOUT as t; print(t)"
    timeout_ms = int(subprocess.run([str(SYNAPSE_PYTHON), "-c", read], capture_output=True,
                                    text=True, check=True, timeout=60).stdout)  # fmt: skip
    default = next(o for o in MATRIX_OPTIONS if o.path == "bridge.presence_refresh_interval")
    # Synapse checks its timeouts every 5 s; a refresh PUT needs time to arrive too.
    assert default.default + 5 <= timeout_ms / 1000


async def test_ghosts_nobody_can_see_are_not_shown_until_in_a_room() -> None:
    ghosts, calls, ids = _ghosts(25)
    ghosts._visible = set()  # as loaded at start with no portal rooms
    await ghosts.set_presence("bob@example.com", "NLN")
    await ghosts.set_presence("carol@example.com", "AWY")
    assert calls == []
    await ghosts.in_room("bob@example.com")
    await ghosts.in_room("bob@example.com")  # already shown
    await ghosts.in_room("dave@example.com")  # offline: nothing to show
    assert calls == [ids.mxid("bob@example.com")]
    await ghosts.set_presence("bob@example.com", "FLN")
    assert calls == [ids.mxid("bob@example.com")] * 2


async def test_refreshes_of_a_burst_are_spread_and_none_is_late() -> None:
    interval, tick, n = 20.0, 1.0, 1000
    ghosts, _, _ = _ghosts(interval)
    for i in range(n):  # a thousand contacts shown at the same moment
        await ghosts.set_presence(f"c{i}@example.com", "NLN")
    start = asyncio.get_running_loop().time()
    last = dict.fromkeys(ghosts._due, start)
    per_tick: list[int] = []
    for k in range(1, 121):  # six intervals, simulated
        now = start + k * tick
        batch = ghosts.due_refreshes(now, tick)
        per_tick.append(len(batch))
        for passport in batch:
            assert now - last[passport] <= interval + tick  # never later than due
            last[passport] = now
    assert all(now - t <= interval + tick for t in last.values())
    even = n * tick / interval  # 50 a tick if perfectly even
    # The first refreshes come in the second half of the interval; after two intervals
    # no tick carries more than twice its even share.
    assert max(per_tick[40:]) <= 2 * even, per_tick
    assert sum(per_tick[60:]) <= n * 60 * tick / interval * 1.5  # not refreshed too often


@pytest.fixture(scope="module")
def quick_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    server = SynapseServer(
        tmp_path_factory.mktemp("synapse-presence"),
        extra_config={
            "presence": {"enabled": True, "sync_online_timeout": f"{SYNC_ONLINE_TIMEOUT}s"}
        },
    )
    with serving(server):
        server.started_at = time.monotonic()  # type: ignore[attr-defined]
        yield server


@pytest.fixture
async def presence_bridge_config(
    tmp_path: Path, quick_synapse: SynapseServer, msn: MSNPTestServer
) -> AsyncIterator[Callable[..., Path]]:
    def make(**overrides: Any) -> Path:
        return write_bridge_config(
            tmp_path / "bridge.yaml",
            quick_synapse,
            f"sqlite:{tmp_path / 'msnbridge.db'}",
            **settings(msn),
            **overrides,
        )

    yield make


async def test_presence_reaches_a_matrix_user_and_is_refreshed_before_it_lapses(
    quick_synapse: SynapseServer,
    presence_bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
) -> None:
    synapse = quick_synapse
    owner = await synapse.register_user()
    # A control: a user who sets presence once and never syncs (as a ghost without
    # refreshes would be) must go offline here, or this test could not fail.
    control = await synapse.register_user()
    config = presence_bridge_config(**{"bridge.presence_refresh_interval": 2})
    bob, _ = await friend(msn, BOB)
    bob_ghost = ghost_id(synapse, BOB)
    as_token = synapse.appservice.as_token

    async def presence_of(user: str, token: str = as_token) -> dict[str, Any]:
        on_behalf = f"?user_id={quote(user)}" if token == as_token else ""
        return await synapse.request(
            "GET", f"/_matrix/client/v3/presence/{quote(user)}/status{on_behalf}", token=token
        )

    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            await asyncio.sleep(1)  # the contact list is in; bob is online on MSN
            # Nobody on Matrix shares a room with bob's ghost: Synapse was never told.
            assert "last_active_ago" not in await presence_of(bob_ghost)

            await bob.conversation([ALICE]).send_text("hello")
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            for _ in range(100):  # the owner sees bob online
                seen = await presence_of(bob_ghost, owner.access_token)
                if seen["presence"] == "online":
                    break
                await asyncio.sleep(0.1)
            assert seen["presence"] == "online"

            # Wait until Synapse applies its timeouts, then watch several of them pass.
            wait = synapse.started_at + HANDLE_TIMEOUTS_AFTER + 1 - time.monotonic()  # type: ignore[attr-defined]
            await asyncio.sleep(max(0.0, wait))
            await synapse.request(
                "PUT",
                f"/_matrix/client/v3/presence/{quote(control.user_id)}/status",
                {"presence": "online"},
                token=control.access_token,
            )
            since = (await _sync(synapse, owner.access_token, None))["next_batch"]
            states: list[str] = []
            control_states: list[str] = []
            deadline = time.monotonic() + 4 * SYNC_ONLINE_TIMEOUT + 5
            while time.monotonic() < deadline:
                states.append((await presence_of(bob_ghost, owner.access_token))["presence"])
                control_states.append(
                    (await presence_of(control.user_id, control.access_token))["presence"]
                )
                await asyncio.sleep(0.5)
            reply = await _sync(synapse, owner.access_token, since)
            pushed = [
                e["content"]["presence"]
                for e in reply.get("presence", {}).get("events", [])
                if e["sender"] == bob_ghost
            ]
            assert control_states[-1] == "offline", control_states  # lapses do happen here
            assert set(states) == {"online"}, states
            assert "offline" not in pushed, pushed
    finally:
        await bob.stop()


async def _sync(synapse: SynapseServer, token: str, since: str | None) -> dict[str, Any]:
    # A filter no other request had: Synapse caches identical /sync requests.
    nonce = [secrets.token_hex(4)]
    flt = {"room": {"timeline": {"limit": 1}}, "account_data": {"not_types": nonce}}
    path = f"/_matrix/client/v3/sync?timeout=0&filter={quote(json.dumps(flt))}"
    if since:
        path += f"&since={quote(since)}"
    return await synapse.request("GET", path, token=token)


async def test_a_ghosts_lock_serialises_and_is_dropped_when_nobody_holds_it() -> None:
    # One lock per ghost being changed; kept forever it cost ~0.7 KiB per ghost once waited on.
    ghosts, _, _ = _ghosts(25)
    inside: list[int] = []
    order: list[str] = []

    async def change(name: str) -> None:
        async with ghosts._locked("bob@example.com"):
            inside.append(1)
            assert len(inside) == 1  # never two at once
            await asyncio.sleep(0.01)
            order.append(name)
            inside.pop()

    await asyncio.gather(*(change(str(i)) for i in range(5)))
    assert order == [str(i) for i in range(5)]  # in the order they asked
    assert ghosts._locks == {}
    with pytest.raises(RuntimeError):
        async with ghosts._locked("bob@example.com"):
            raise RuntimeError("a failed change")
    assert ghosts._locks == {}
