"""The whole bridge on MSNP18 with a real Synapse: offline messages waiting at login
reach the portal in order at their original time, the owner's own Messenger stays signed
in (MPOP) and what the owner writes there is shown as the owner's, a message to an
offline contact goes as an offline message with its own notice, `status` names the
version and the other endpoint, and a restart is the same endpoint (stored GUID)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from puppets import SessionState
from puppets.event.conversation import MessageReceived
from tests.msn_fixtures import msn18_fixture  # noqa: F401 (the msn fixture)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    msn_settings,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    PASSWORD,
    bot_id,
    ghost_id,
    is_message_from,
    join,
    log_in,
    until,
    wait_invite,
)

MESSENGER_GUID = "{11111111-2222-3333-4444-555555555555}"


async def test_msnp18_bridge_end_to_end(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    config = bridge_config(**msn_settings(msn, services=True))
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    bob_ghost = ghost_id(synapse, BOB)
    written = time.time() - 7200
    msn.add_oim(ALICE, BOB, "first while away", written, nick="Bob")
    msn.add_oim(ALICE, BOB, "second while away", written + 60, nick="Bob")
    bob, bob_rec = await online_client(msn, BOB, PASSWORD)
    messenger = None
    try:
        async with running_bridge(config) as bridge:
            management = await log_in(synapse, owner)
            # Offline messages: in the portal with bob, in order, at their original time.
            # (The bridge is the owner's only endpoint yet: an endpoint signed in earlier
            # would have fetched them itself.)
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            second = await wait_for_event(
                synapse, owner, room, is_message_from(bob_ghost, "second while away")
            )
            events = [
                e
                for e in await room_events(synapse, owner, room)
                if e["type"] == "m.room.message" and e["sender"] == bob_ghost
            ]
            bodies = [e["content"]["body"] for e in events]
            assert bodies == ["first while away", "second while away"]
            assert abs(events[0]["origin_server_ts"] - written * 1000) < 2000
            assert abs(second["origin_server_ts"] - (written + 60) * 1000) < 2000
            assert not msn.oims(ALICE)
            # The owner's own Messenger signs in beside the bridge; both stay.
            messenger, m_rec = await online_client(
                msn, ALICE, PASSWORD, machine_guid=MESSENGER_GUID, endpoint_name="Home PC"
            )
            assert msn.online_sessions(ALICE) == 2
            client = bridge.sessions.get(owner.user_id)  # type: ignore[union-attr]
            await until(lambda: MESSENGER_GUID.lower() in client.own_endpoints)
            assert client.state is SessionState.ONLINE
            # status: the version and the owner's other endpoint.
            await send_text(synapse, owner, management, "status")
            reply = await wait_for_event(
                synapse, owner, management, is_notice_from(bot, "Also signed in at")
            )
            assert "MSNP18" in reply["content"]["body"] and "Home PC" in reply["content"]["body"]
            # The owner answers bob from their own Messenger: shown as theirs, marked.
            assert (await bob.conversation([ALICE]).send_text("are you at your PC?")).ok
            await wait_for_event(synapse, owner, room, is_message_from(bob_ghost, "at your PC"))
            await m_rec.wait_for(MessageReceived, lambda e: e.message.text.endswith("PC?"))
            assert (await messenger.conversation([BOB]).send_text("yes, typing here")).ok
            own = await wait_for_event(
                synapse, owner, room, is_message_from(bot, "yes, typing here")
            )
            assert "Alice (from another Messenger)" in own["content"]["body"]
            await bob_rec.wait_for(MessageReceived, lambda e: e.message.text == "yes, typing here")
            # Bob signs out; a message to him goes as an offline message.
            await bob.stop()
            await until(lambda: msn.online_sessions(BOB) == 0)
            await until(
                lambda: bridge.sessions.get(owner.user_id).contacts.get(BOB).status == "FLN"
            )  # type: ignore[union-attr]
            await send_text(synapse, owner, room, "see you later")
            await wait_for_event(
                synapse, owner, room, is_notice_from(bot, "Sent as an offline message")
            )
            assert [o.text for o in msn.oims(BOB)] == ["see you later"]
            guid = client.machine_guid
        # A restart signs in as the same endpoint: the stored machine GUID.
        async with running_bridge(config) as bridge:
            await until(lambda: guid.lower() in msn.endpoints(ALICE))
            assert set(msn.endpoints(ALICE)) == {guid.lower(), MESSENGER_GUID.lower()}
            assert messenger.state is SessionState.ONLINE
            assert not messenger.error
            # logout signs out the bridge's endpoint only.
            await send_text(synapse, owner, management, "logout")
            await wait_for_event(synapse, owner, management, is_notice_from(bot, "Logged out"))
            await until(lambda: set(msn.endpoints(ALICE)) == {MESSENGER_GUID.lower()})
            assert messenger.state is SessionState.ONLINE
    finally:
        if messenger is not None:
            await messenger.stop()
        await bob.stop()
