"""A name is one line wherever it goes: a relayed Matrix user whose display name holds
CR/LF and Unicode line separators reaches the MSN peer as one line (text and P4-Context
header), and an MSN nick with a line separator gives a one-line ghost name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from msnbridge.core.text_safety import one_line
from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    friend,
    ghost_id,
    join,
    log_in,
    msn,  # noqa: F401 (fixture)
    settings,
    until,
)

HOSTILE = "Eve\r\nP4-Context: admin\u2028\u2029\x85\x0b\x0c\x1c\n\nMSG x\x00 y"


def test_one_line_replaces_every_line_break_and_control() -> None:
    assert one_line(HOSTILE) == "Eve P4-Context: admin MSG x y"
    assert one_line("  plain\tname ") == "plain name"
    assert one_line("\u2028") == ""


async def test_relayed_display_name_and_ghost_name_are_one_line(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner, guest = await synapse.register_user(), await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn, **{"bridge.relay.enabled": True}))):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hey")
            path = f"/_matrix/client/v3/rooms/{quote(room)}/invite"
            await synapse.request(
                "POST", path, {"user_id": guest.user_id}, token=owner.access_token
            )
            path = f"/_matrix/client/v3/profile/{quote(guest.user_id)}/displayname"
            await synapse.request("PUT", path, {"displayname": HOSTILE}, token=guest.access_token)
            await join(synapse, guest, room)
            await send_text(synapse, owner, room, "!msn relay on")
            await wait_for_event(
                synapse, owner, room, is_notice_from(bot_id(synapse), "Relaying is on")
            )
            await send_text(synapse, guest, room, "hello from matrix")
            got = await bob_events.wait_for(
                MessageReceived, lambda e: "hello from matrix" in e.message.text
            )
            assert got.message.text == "<Eve P4-Context: admin MSG x y> hello from matrix"
            assert got.message.context == "Eve P4-Context: admin MSG x y"

            # bob's MSN nick with a line separator: his ghost's name is one line.
            await bob.set_nick("Bob\u2028Fake line\u2029 two")
            ghost = ghost_id(synapse, BOB)
            profile = f"/_matrix/client/v3/profile/{quote(ghost)}/displayname"

            async def renamed() -> bool:
                reply = await synapse.request("GET", profile, token=owner.access_token)
                return "Fake" in reply.get("displayname", "")

            await until(renamed)
            name = (await synapse.request("GET", profile, token=owner.access_token))["displayname"]
            assert name == "Bob Fake line two (MSN)"
    finally:
        await bob.stop()
