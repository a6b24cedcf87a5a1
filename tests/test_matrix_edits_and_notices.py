"""Matrix edits and replies reach MSN in a readable form, and what the MSN server tells the
owner (maintenance, a sign-in elsewhere) reaches the owner's bot room. Real Synapse, the
MSNP test server, the bridge in-process, the MSN friend as a real puppet client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client
from tests.synapse_server import (
    SynapseServer,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    PASSWORD,
    _dm_room,
    alice_seen_online,
    bot_id,
    friend,
    log_in,
    msn,  # noqa: F401  (fixture)
    put_event,
    settings,
)


async def test_edits_and_replies_reach_msn_readably(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "what time?")
            first = await send_text(synapse, owner, room, "at 5")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "at 5")
            # An edit (m.replace) goes out as a corrected copy, marked as such.
            await put_event(synapse, owner, room, "m.room.message", {
                "msgtype": "m.text", "body": "* at 6",
                "m.new_content": {"msgtype": "m.text", "body": "at 6"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            })  # fmt: skip
            edit = await bob_events.wait_for(MessageReceived, lambda e: "at 6" in e.message.text)
            assert edit.message.text.startswith("*") and "* at 6" not in edit.message.text[2:]
            await put_event(synapse, owner, room, "m.room.message", {
                "msgtype": "m.text", "body": "* at 7",
                "m.new_content": {"msgtype": "m.text", "body": "at 7"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            })  # fmt: skip
            await bob_events.wait_for(MessageReceived, lambda e: "at 7" in e.message.text)
            # A reply keeps what it answers, quoted, without Matrix's fallback markup.
            await put_event(synapse, owner, room, "m.room.message", {
                "msgtype": "m.text",
                "body": "> <@someone:localhost> what time?\n\nsee above",
                "m.relates_to": {"m.in_reply_to": {"event_id": first}},
            })  # fmt: skip
            reply = await bob_events.wait_for(
                MessageReceived, lambda e: "see above" in e.message.text
            )
            assert "@someone:localhost" not in reply.message.text
            # It quotes what the message says now: its latest edit.
            assert reply.message.text.startswith("> at 7\n")
    finally:
        await bob.stop()


async def test_maintenance_and_sign_in_elsewhere_reach_the_bot_room(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    async with running_bridge(bridge_config(**settings(msn))):
        management = await log_in(synapse, owner)
        msn.send_system_message(ALICE, 5)
        await wait_for_event(
            synapse, owner, management,
            lambda e: e.get("sender") == bot and "5 minutes" in e["content"].get("body", ""),
        )  # fmt: skip
        # The same MSN account signs in from another client: the bridge stops (no
        # reconnect war) and tells the owner.
        other, _ = await online_client(msn, ALICE, PASSWORD)
        try:
            await wait_for_event(
                synapse, owner, management,
                lambda e: e.get("sender") == bot
                and "another place" in e["content"].get("body", ""),
            )  # fmt: skip
            assert msn.online_sessions(ALICE) == 1  # only the other client: no kicking back
        finally:
            await other.stop()
