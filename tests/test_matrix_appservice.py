"""The appservice against a real Synapse: bot DMs, commands, permissions, tokens, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from msnbridge.bridge import Bridge
from msnbridge.db import user as user_db
from msnbridge.errors import StartupError
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
    create_dm,
    is_membership,
    is_notice_from,
    msn_settings,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)

REPO = Path(__file__).resolve().parent.parent


def bot_id(synapse: SynapseServer) -> str:
    return f"@{synapse.appservice.bot_localpart}:{synapse.domain}"


async def test_bot_joins_dm_and_answers_help(synapse: SynapseServer, bridge: Bridge) -> None:
    alice = await synapse.register_user()
    room = await create_dm(synapse, alice, bot_id(synapse))
    await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
    await send_text(synapse, alice, room, "help")
    reply = await wait_for_event(synapse, alice, room, is_notice_from(bot_id(synapse), "Commands:"))
    assert reply["content"]["msgtype"] == "m.notice"
    assert reply["content"]["body"].startswith("Commands:")
    assert "List the commands you can use" in reply["content"]["body"]


async def test_unknown_command_is_answered(synapse: SynapseServer, bridge: Bridge) -> None:
    alice = await synapse.register_user()
    room = await create_dm(synapse, alice, bot_id(synapse))
    await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
    await send_text(synapse, alice, room, "frobnicate now")
    await wait_for_event(
        synapse, alice, room, is_notice_from(bot_id(synapse), "Unknown command 'frobnicate'")
    )


async def test_user_not_in_permissions_is_refused(
    synapse: SynapseServer, bridge_config: Callable[..., Path]
) -> None:
    alice = await synapse.register_user()
    mallory = await synapse.register_user()
    # Only alice is listed; her server (and so mallory's) is not.
    config = bridge_config(**{"bridge.permissions": {alice.user_id: "user"}})
    async with running_bridge(config):
        room = await create_dm(synapse, mallory, bot_id(synapse))
        await wait_for_event(
            synapse, mallory, room, is_notice_from(bot_id(synapse), "not allowed to use")
        )
        await wait_for_event(synapse, mallory, room, is_membership(bot_id(synapse), "leave"))
        # alice, listed by user ID, is served.
        room = await create_dm(synapse, alice, bot_id(synapse))
        await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
        await send_text(synapse, alice, room, "help")
        await wait_for_event(synapse, alice, room, is_notice_from(bot_id(synapse), "Commands:"))


async def test_command_prefix_needed_outside_a_dm(synapse: SynapseServer, bridge: Bridge) -> None:
    alice, bob = await synapse.register_user(), await synapse.register_user()
    room = (
        await synapse.request(
            "POST",
            "/_matrix/client/v3/createRoom",
            {"invite": [bot_id(synapse), bob.user_id], "preset": "trusted_private_chat"},
            token=alice.access_token,
        )
    )["room_id"]
    await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
    await synapse.request("POST", f"/_matrix/client/v3/join/{room}", {}, token=bob.access_token)
    await send_text(synapse, alice, room, "help")  # conversation, not a command: 3 members
    await send_text(synapse, alice, room, "!msn help")
    await wait_for_event(synapse, alice, room, is_notice_from(bot_id(synapse), "Commands:"))
    answers = [
        e
        for e in await room_events(synapse, alice, room)
        if is_notice_from(bot_id(synapse), "Commands:")(e)
    ]
    assert len(answers) == 1


async def test_wrong_hs_token_is_refused(synapse: SynapseServer, bridge: Bridge) -> None:
    url = f"{synapse.appservice.url}/_matrix/app/v1/transactions/probe-{os.getpid()}"
    body = {"events": []}
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}):
            async with session.put(url, json=body, headers=headers) as resp:
                assert resp.status in (401, 403)
        async with session.get(
            f"{synapse.appservice.url}/_matrix/app/v1/users/@msn_x:localhost",
            headers={"Authorization": "Bearer wrong-token"},
        ) as resp:
            assert resp.status in (401, 403)
        good = {"Authorization": f"Bearer {synapse.appservice.hs_token}"}
        async with session.put(url, json=body, headers=good) as resp:
            assert resp.status == 200


async def test_wrong_as_token_stops_start_up_with_a_clear_error(
    synapse: SynapseServer, bridge_config: Callable[..., Path]
) -> None:
    config = bridge_config(**{"appservice.as_token": "not-the-registered-token"})
    with pytest.raises(StartupError, match="refused the bridge's as_token"):
        async with running_bridge(config):
            pass


async def test_retried_transaction_is_handled_once_across_restarts(
    synapse: SynapseServer, bridge_config: Callable[..., Path]
) -> None:
    """Synapse resends a transaction until it gets a 200; one it resends after a bridge
    restart must not run the command again (txn_seen)."""
    config = bridge_config()
    alice = await synapse.register_user()
    async with running_bridge(config):
        room = await create_dm(synapse, alice, bot_id(synapse))
        await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
    txn_url = f"{synapse.appservice.url}/_matrix/app/v1/transactions/replayed-{os.getpid()}"
    event = {
        "type": "m.room.message",
        "room_id": room,
        "sender": alice.user_id,
        "event_id": f"$replayed{os.getpid()}",
        "origin_server_ts": 0,
        "content": {"msgtype": "m.text", "body": "help"},
    }
    headers = {"Authorization": f"Bearer {synapse.appservice.hs_token}"}
    for _ in range(2):
        async with running_bridge(config):
            async with (
                aiohttp.ClientSession() as session,
                session.put(txn_url, json={"events": [event]}, headers=headers) as resp,
            ):
                assert resp.status == 200
            await wait_for_event(synapse, alice, room, is_notice_from(bot_id(synapse), "Commands:"))
            await asyncio.sleep(0.5)  # time for a second (wrong) answer to arrive
    answers = [
        e
        for e in await room_events(synapse, alice, room)
        if is_notice_from(bot_id(synapse), "Commands:")(e)
    ]
    assert len(answers) == 1


async def bot_presence(synapse: SynapseServer, viewer: MatrixUser) -> str:
    # Synapse shows presence only to users who share a room with the bot.
    reply = await synapse.request(
        "GET", f"/_matrix/client/v3/presence/{bot_id(synapse)}/status", token=viewer.access_token
    )
    return reply["presence"]


async def test_bot_profile_and_presence(synapse: SynapseServer, bridge: Bridge) -> None:
    alice = await synapse.register_user()
    room = await create_dm(synapse, alice, bot_id(synapse))
    await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
    profile = await synapse.request(
        "GET", f"/_matrix/client/v3/profile/{bot_id(synapse)}", token=alice.access_token
    )
    assert profile["displayname"] == "MSN bridge bot"
    assert await bot_presence(synapse, alice) == "online"


async def test_daemon_runs_and_stops_cleanly_on_sigterm(
    synapse: SynapseServer, bridge_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = bridge_config()
    alice = await synapse.register_user()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "msnbridge", "-c", str(config),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # the checkout, whatever is installed
    )  # fmt: skip
    try:
        ready_url = f"{synapse.appservice.url}/_matrix/mau/ready"
        async with aiohttp.ClientSession() as session:
            for _ in range(150):
                try:
                    async with session.get(ready_url) as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert proc.returncode is None, (await proc.stdout.read()).decode()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the daemon never became ready")
        room = await create_dm(synapse, alice, bot_id(synapse))
        await wait_for_event(synapse, alice, room, is_membership(bot_id(synapse), "join"))
        assert await bot_presence(synapse, alice) == "online"
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=15)
        assert proc.returncode == 0, output.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert await bot_presence(synapse, alice) == "offline"


# --- login through the bot, against the MSNP test server --------------------------------------


@pytest.fixture
async def msn_server() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        server.add_account("alice@example.com", "correct horse", nick="Alice")
        yield server


async def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Polls state held by the MSNP test server (it has no event to wait on)."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


async def test_login_status_logout_through_the_bot(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn_server: MSNPTestServer
) -> None:
    bot = bot_id(synapse)
    owner = await synapse.register_user()
    config = bridge_config(**msn_settings(msn_server))
    async with running_bridge(config) as bridge:
        room = await create_dm(synapse, owner, bot)
        await wait_for_event(synapse, owner, room, is_membership(bot, "join"))
        login_event = await send_text(synapse, owner, room, "login alice@example.com correct horse")
        await wait_for_event(
            synapse, owner, room, is_notice_from(bot, "Logged in to MSN as alice@example.com")
        )
        assert msn_server.online_sessions("alice@example.com") == 1
        # The message with the password was redacted, and the stored copy is encrypted.
        events = {e["event_id"]: e for e in await room_events(synapse, owner, room)}
        assert events[login_event]["content"] == {}
        assert bridge.db is not None
        stored = await user_db.get(bridge.db, owner.user_id)
        assert stored is not None and stored.management_room == room
        assert "correct horse" not in (stored.password or "")
        assert bridge.secrets.decrypt(stored.password, context=owner.user_id) == "correct horse"

        await send_text(synapse, owner, room, "status")
        await wait_for_event(
            synapse, owner, room, is_notice_from(bot, "Logged in as alice@example.com: online")
        )
        await send_text(synapse, owner, room, "logout")
        await wait_for_event(synapse, owner, room, is_notice_from(bot, "Logged out of MSN"))
        await wait_until(lambda: msn_server.online_sessions("alice@example.com") == 0)
        stored = await user_db.get(bridge.db, owner.user_id)
        assert stored is not None and stored.password is None


async def test_login_with_wrong_password_is_reported(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn_server: MSNPTestServer
) -> None:
    bot = bot_id(synapse)
    owner = await synapse.register_user()
    async with running_bridge(bridge_config(**msn_settings(msn_server))) as bridge:
        room = await create_dm(synapse, owner, bot)
        await wait_for_event(synapse, owner, room, is_membership(bot, "join"))
        await send_text(synapse, owner, room, "login alice@example.com wrong")
        await wait_for_event(
            synapse, owner, room, is_notice_from(bot, "Login failed: wrong passport or password")
        )
        assert msn_server.online_sessions("alice@example.com") == 0
        assert bridge.db is not None
        assert await user_db.get(bridge.db, owner.user_id) is None


async def test_sessions_are_restored_after_a_restart(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn_server: MSNPTestServer
) -> None:
    bot = bot_id(synapse)
    owner = await synapse.register_user()
    config = bridge_config(**msn_settings(msn_server))
    async with running_bridge(config):
        room = await create_dm(synapse, owner, bot)
        await wait_for_event(synapse, owner, room, is_membership(bot, "join"))
        await send_text(synapse, owner, room, "login alice@example.com correct horse")
        await wait_for_event(synapse, owner, room, is_notice_from(bot, "Logged in to MSN"))
    await wait_until(lambda: msn_server.online_sessions("alice@example.com") == 0)
    async with running_bridge(config) as bridge:
        await wait_until(lambda: msn_server.online_sessions("alice@example.com") == 1)
        assert bridge.sessions is not None
        client = bridge.sessions.get(owner.user_id)
        assert client is not None and client.config.passport == "alice@example.com"


async def test_login_with_the_password_in_the_next_message(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn_server: MSNPTestServer
) -> None:
    bot = bot_id(synapse)
    owner = await synapse.register_user()
    async with running_bridge(bridge_config(**msn_settings(msn_server))):
        room = await create_dm(synapse, owner, bot)
        await wait_for_event(synapse, owner, room, is_membership(bot, "join"))
        await send_text(synapse, owner, room, "login alice@example.com")
        await wait_for_event(synapse, owner, room, is_notice_from(bot, "Send the password"))
        secret = await send_text(synapse, owner, room, "correct horse")
        await wait_for_event(
            synapse, owner, room, is_notice_from(bot, "Logged in to MSN as alice@example.com")
        )
        events = {e["event_id"]: e for e in await room_events(synapse, owner, room)}
        assert events[secret]["content"] == {}  # the password message was redacted
        assert msn_server.online_sessions("alice@example.com") == 1
