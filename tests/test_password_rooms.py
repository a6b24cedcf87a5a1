"""The MSN password never stays in Synapse: the bot asks for and accepts a password only
in a room where it can remove it. A DM made with each createRoom preset, against a real
Synapse: where the invited bot has power level 0 (private_chat, public_chat) it makes a
room of its own and invites the user there; only messages holding a password are removed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
    is_membership,
    is_notice_from,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    ALICE,
    PASSWORD,
    bot_id,
    join,
    msn,  # noqa: F401 (fixture)
    settings,
    wait_invite,
)


async def dm_with_bot(synapse: SynapseServer, user: MatrixUser, preset: str) -> str:
    body = {"invite": [bot_id(synapse)], "is_direct": True, "preset": preset}
    reply = await synapse.request("POST", "/_matrix/client/v3/createRoom", body, user.access_token)
    room = reply["room_id"]
    await wait_for_event(synapse, user, room, is_membership(bot_id(synapse), "join"))
    return room


async def content_of(
    synapse: SynapseServer, user: MatrixUser, room: str, event_id: str
) -> dict[str, Any]:
    events = {e["event_id"]: e for e in await room_events(synapse, user, room)}
    return events[event_id]["content"]


async def redacted(synapse: SynapseServer, user: MatrixUser, room: str, event_id: str) -> None:
    for _ in range(100):
        if await content_of(synapse, user, room, event_id) == {}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id} was not redacted")


async def log_in_asked(synapse: SynapseServer, user: MatrixUser, room: str) -> None:
    """`login <passport>`, then the password alone: only the password is removed."""
    bot = bot_id(synapse)
    ask = await send_text(synapse, user, room, f"login {ALICE}")
    await wait_for_event(synapse, user, room, is_notice_from(bot, "Send the password"))
    answer = await send_text(synapse, user, room, PASSWORD)
    await redacted(synapse, user, room, answer)
    await wait_for_event(synapse, user, room, is_notice_from(bot, "Logged in to MSN"))
    assert (await content_of(synapse, user, room, ask))["body"] == f"login {ALICE}"


@pytest.mark.parametrize("preset", ["trusted_private_chat", "private_chat", "public_chat"])
async def test_a_password_is_only_taken_where_the_bot_can_remove_it(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    preset: str,
) -> None:
    bot = bot_id(synapse)
    user = await synapse.register_user()
    async with running_bridge(bridge_config(**settings(msn))):
        dm = await dm_with_bot(synapse, user, preset)
        if preset == "trusted_private_chat":  # the invited bot has power level 100
            await log_in_asked(synapse, user, dm)
            return
        # Power level 0: told at once, and invited to the bot's own room.
        await wait_for_event(synapse, user, dm, is_notice_from(bot, "cannot remove messages"))
        safe = await wait_invite(synapse, user)
        assert safe != dm
        # Neither asked for nor accepted here.
        await send_text(synapse, user, dm, f"login {ALICE}")
        told = await wait_for_event(synapse, user, dm, is_notice_from(bot, "invited you"))
        assert safe in told["content"]["body"]
        inline = await send_text(synapse, user, dm, f"login {ALICE} {PASSWORD}")
        await wait_for_event(synapse, user, dm, is_notice_from(bot, "did not use that password"))
        await asyncio.sleep(0.5)
        notices = [e["content"].get("body", "") for e in await room_events(synapse, user, dm)]
        assert not any("Send the password" in n or "Logging in" in n for n in notices), notices
        assert msn.online_sessions(ALICE) == 0
        assert (await content_of(synapse, user, dm, inline))["body"]  # it could not be removed
        # The bot's room: it made it (power level 100) and a password is removed there.
        await join(synapse, user, safe)
        state = await synapse.request(
            "GET", f"/_matrix/client/v3/rooms/{safe}/state", token=user.access_token
        )
        create = next(e for e in state if e["type"] == "m.room.create")
        levels = next(e for e in state if e["type"] == "m.room.power_levels")["content"]
        assert create["sender"] == bot
        # Room version 12 gives the creator unlimited power; older versions level 100.
        assert create["content"].get("room_version") == "12" or levels["users"][bot] == 100
        assert levels.get("users", {}).get(user.user_id, 0) < 100
        await log_in_asked(synapse, user, safe)
        assert msn.online_sessions(ALICE) == 1
