"""Portal rooms say what they bridge (MSC2346 ``m.bridge`` / ``uk.half-shot.bridge``), also
rooms made before (once, at start-up), and a 1:1 room that grew into a group chat points to
the group's room. Real Synapse, the MSNP test server, the bridge in-process, bob and carol
as real puppet clients."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from puppets.event.conversation import ParticipantJoined
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    MatrixHTTPError,
    MatrixUser,
    SynapseServer,
    running_bridge,
    wait_for_event,
)
from tests.test_matrix_portals import (  # noqa: F401 (msn is a fixture)
    ALICE,
    BOB,
    CAROL,
    _dm_room,
    alice_seen_online,
    bot_id,
    friend,
    ghost_id,
    join,
    log_in,
    msn,
    settings,
    sync,
)

EVENT_TYPES = ("m.bridge", "uk.half-shot.bridge")


async def bridge_state(
    synapse: SynapseServer, user: MatrixUser, room: str, owner: str, key: str
) -> dict[str, dict[str, Any]]:
    """Both bridge-info state events of the room, by type ({} where there is none)."""
    state_key = quote(f"net.msnbridge://msn/{owner}/{key}", safe="")
    found = {}
    for event_type in EVENT_TYPES:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/state/{event_type}/{state_key}"
        try:
            found[event_type] = await synapse.request("GET", path, token=user.access_token)
        except MatrixHTTPError as e:
            assert e.status == 404, e
            found[event_type] = {}
    return found


async def group_invite(synapse: SynapseServer, user: MatrixUser) -> str:
    """The room of the next invite that carries a room name (a group room)."""
    for _ in range(100):
        reply = await sync(synapse, user)
        for room_id, data in reply.get("rooms", {}).get("invite", {}).items():
            if any(e["type"] == "m.room.name" for e in data["invite_state"]["events"]):
                return room_id
        await asyncio.sleep(0.2)
    raise AssertionError("no group room invite")


async def test_bridge_info_and_the_pointer_to_a_group_room(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    bob, bob_events = await friend(msn, BOB)
    carol, _ = await friend(msn, CAROL)
    config = bridge_config(**settings(msn))
    try:
        async with running_bridge(config) as bridge:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            dm = await _dm_room(synapse, owner, bob, "hi alice")
            for content in (await bridge_state(synapse, owner, dm, owner.user_id, BOB)).values():
                assert content == {
                    "bridgebot": bot,
                    "creator": ghost_id(synapse, BOB),
                    "protocol": {"id": "msn", "displayname": "MSN Messenger"},
                    "network": {"id": msn.host, "displayname": msn.host},
                    "channel": {"id": BOB, "displayname": "Bob ✨ the builder"},
                }

            # bob brings carol into the same switchboard: a group room, and the DM points to it.
            sb = bob.conversation([ALICE]).switchboard
            assert sb is not None
            await sb.invite(CAROL)
            await bob_events.wait_for(ParticipantJoined, lambda e: e.passport == CAROL)
            group = await group_invite(synapse, owner)
            await join(synapse, owner, group)
            pointer = await wait_for_event(
                synapse, owner, dm,
                lambda e: e["sender"] == bot and "group chat" in e["content"].get("body", ""),
            )  # fmt: skip
            link = f"https://matrix.to/#/{quote(group)}"
            assert link in pointer["content"]["body"] and "Carol" in pointer["content"]["body"]
            assert f'href="{link}' in pointer["content"]["formatted_body"]
            assert pointer["content"]["msgtype"] == "m.notice"
            key = f"{BOB},{CAROL}"
            for content in (await bridge_state(synapse, owner, group, owner.user_id, key)).values():
                assert content["creator"] == bot and content["channel"]["id"] == key
                assert content["protocol"]["id"] == "msn"
            assert bridge.matrix is not None and bridge.matrix._bridge_info is not None
            assert await bridge.matrix._bridge_info == 0  # new rooms got it when created

        # A room made before the bridge sent bridge info: its state is empty and the bridge
        # has no record of it. The next start sends it, once.
        as_bot = MatrixUser(bot, synapse.appservice.as_token, "")
        state_key = quote(f"net.msnbridge://msn/{owner.user_id}/{BOB}", safe="")
        for event_type in EVENT_TYPES:
            path = f"/_matrix/client/v3/rooms/{quote(dm)}/state/{event_type}/{state_key}"
            await synapse.request("PUT", path, {}, token=as_bot.access_token)
        with sqlite3.connect(tmp_path / "msnbridge.db") as db:
            db.execute("DELETE FROM bridge_info_sent WHERE room_id = ?", (dm,))
        assert all(
            not c for c in (await bridge_state(synapse, owner, dm, owner.user_id, BOB)).values()
        )
        async with running_bridge(config) as bridge:
            assert bridge.matrix is not None and bridge.matrix._bridge_info is not None
            assert await bridge.matrix._bridge_info == 1
            for content in (await bridge_state(synapse, owner, dm, owner.user_id, BOB)).values():
                assert content["protocol"] == {"id": "msn", "displayname": "MSN Messenger"}
                assert content["network"]["id"] == msn.host and content["channel"]["id"] == BOB
        async with running_bridge(config) as bridge:
            assert bridge.matrix is not None and bridge.matrix._bridge_info is not None
            assert await bridge.matrix._bridge_info == 0  # nothing sent twice
    finally:
        await bob.stop()
        await carol.stop()
