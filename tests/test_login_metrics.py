"""Metrics after a failed login, read from the bridge's real /metrics: one wrong password is
one auth failure, and a user without a session leaves no session in the gauge."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests import test_matrix_portals
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    create_dm,
    free_port,
    is_membership,
    is_notice_from,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import ALICE, PASSWORD, bot_id, settings

msn = test_matrix_portals.msn  # the MSNP test server fixture: alice, bob, carol


async def metrics_text(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        return await resp.text()


def samples(text: str, name: str) -> dict[str, float]:
    """The samples of one labelled metric, by the value of its only label."""
    pattern = rf'^{name}\{{[a-z_]+="([a-z_]+)"\}} ([0-9.e+]+)$'
    return {label: float(v) for label, v in re.findall(pattern, text, re.MULTILINE)}


async def test_one_wrong_password_is_one_auth_failure_and_no_session(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    port = free_port()
    config = bridge_config(
        **settings(msn),
        metrics={"enabled": True, "listen_address": "127.0.0.1", "port": port},
    )
    bot = bot_id(synapse)
    owner = await synapse.register_user()
    async with running_bridge(config):
        before = samples(await metrics_text(port), "msnbridge_login_failures_total")
        assert before.get("auth") == 0
        room = await create_dm(synapse, owner, bot)
        await wait_for_event(synapse, owner, room, is_membership(bot, "join"))
        await send_text(synapse, owner, room, f"login {ALICE} not-{PASSWORD}")
        await wait_for_event(
            synapse, owner, room, is_notice_from(bot, "Login failed: wrong passport or password")
        )
        await asyncio.sleep(1.0)  # room for a second count or a late gauge update
        text = await metrics_text(port)
        failures = samples(text, "msnbridge_login_failures_total")
        assert failures["auth"] == 1, failures
        assert sum(failures.values()) == 1, failures
        sessions = samples(text, "msnbridge_puppet_sessions")
        assert all(n == 0 for n in sessions.values()), sessions

        # A right password afterwards: one session, online, and still one failure.
        await send_text(synapse, owner, room, f"login {ALICE} {PASSWORD}")
        await wait_for_event(synapse, owner, room, is_notice_from(bot, "Logged in to MSN"))
        await asyncio.sleep(0.5)
        text = await metrics_text(port)
        sessions = samples(text, "msnbridge_puppet_sessions")
        assert sessions["online"] == 1 and sum(sessions.values()) == 1, sessions
        assert samples(text, "msnbridge_login_failures_total")["auth"] == 1
