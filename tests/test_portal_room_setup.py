"""The owner answering a portal's invite and writing while the bridge still sets the room up
(power levels, the bot joining): the message must reach MSN, not be dropped as coming from
an unknown room. Found by benchmarks/bridge_load.py, where a busy Synapse widened the
window: half of 100 owners' first messages were lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, running_bridge, send_text
from tests.test_matrix_portals import (  # noqa: F401 (msn is a fixture)
    ALICE,
    BOB,
    friend,
    join,
    log_in,
    msn,
    settings,
    wait_invite,
)

SETUP_DELAY = 3.0  # seconds the room setup is held after the invite went out


async def test_message_written_during_room_setup_reaches_msn(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))) as bridge:
            await log_in(synapse, owner)
            assert bridge.matrix is not None
            side = bridge.matrix.portal_side
            create = side._create_room

            async def slow_create(portal):  # type: ignore[no-untyped-def]
                room = await create(portal)  # the owner is invited by now
                await asyncio.sleep(SETUP_DELAY)
                return room

            side._create_room = slow_create  # type: ignore[method-assign]
            assert (await bob.conversation([ALICE]).send_text("hello")).ok
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            assert side.creating, "the room setup should still be running"
            await send_text(synapse, owner, room, "written during setup")
            got = await bob_events.wait_for(
                MessageReceived, lambda e: e.message.text == "written during setup", timeout=20
            )
            assert got.sender == ALICE
    finally:
        await bob.stop()
