"""Someone who writes in a portal room but is not relayed to MSN (relay off, or no rights
on the bridge) is told so, once per room, and nothing reaches MSN. Real Synapse, the MSNP
test server, the bridge in-process, bob as a real puppet client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, running_bridge, send_text, wait_for_event
from tests.test_matrix_portals import (  # noqa: F401 (msn is a fixture)
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    friend,
    join,
    log_in,
    msn,
    room_events,
    settings,
)


async def test_people_not_relayed_are_told_once_per_room(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    nobody = await synapse.register_user()  # not in bridge.permissions
    relayer = await synapse.register_user()  # may be relayed, but relay is off
    bot = bot_id(synapse)
    permissions = {owner.user_id: "user", relayer.user_id: "relay"}
    bob, bob_events = await friend(msn, BOB)
    try:
        config = bridge_config(**settings(msn), **{"bridge.permissions": permissions})
        async with running_bridge(config):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hello")
            for guest in (nobody, relayer):
                path = f"/_matrix/client/v3/rooms/{quote(room)}/invite"
                await synapse.request(
                    "POST", path, {"user_id": guest.user_id}, token=owner.access_token
                )
                await join(synapse, guest, room)
            first = await send_text(synapse, nobody, room, "can bob read me?")
            told = await wait_for_event(
                synapse, owner, room,
                lambda e: e["sender"] == bot and nobody.user_id in e["content"].get("body", ""),
            )  # fmt: skip
            assert "no rights" in told["content"]["body"]
            assert told["content"]["msgtype"] == "m.notice"
            assert told["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == first
            await send_text(synapse, relayer, room, "and me?")
            told = await wait_for_event(
                synapse, owner, room,
                lambda e: e["sender"] == bot and relayer.user_id in e["content"].get("body", ""),
            )  # fmt: skip
            assert (
                "relaying is off" in told["content"]["body"]
                and "relay on" in told["content"]["body"]
            )
            # Once per room: further messages get no more notices.
            await send_text(synapse, nobody, room, "still nothing?")
            await send_text(synapse, relayer, room, "hello?")
            await send_text(synapse, owner, room, "the owner is relayed")
            await bob_events.wait_for(
                MessageReceived, lambda e: e.message.text == "the owner is relayed"
            )
            await asyncio.sleep(0.5)
            notices = [
                e
                for e in await room_events(synapse, owner, room)
                if e["sender"] == bot and "not sent to MSN" in e["content"].get("body", "")
            ]
            assert len(notices) == 2
            texts = [e.message.text for e in bob_events.of(MessageReceived)]
            assert not any(t in texts for t in ("can bob read me?", "and me?", "hello?"))
    finally:
        await bob.stop()
