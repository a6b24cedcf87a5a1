"""Order per portal, not per owner (issue 14, item 4).

Against the real parts (Synapse, the MSNP test server, the bridge in-process, MSN friends
as puppet Clients): one owner (alice, on Matrix) has two portals, with bob and with carol.
Bob's room is made to hold every message the bridge sends into it (a delay hook on the
Matrix side's ``deliver_message``, the one thing faked: it stands for a homeserver that is
slow for that room). While it holds:
- carol's message reaches carol's room (on the old one-worker-per-owner code it waited
  behind bob's);
- the owner's message in carol's room reaches carol on MSN;
- a burst of numbered messages from bob arrives in bob's room in the order bob sent them,
  although the hook delays earlier ones longer than later ones;
and when all is handled, no event lane (and no task of one) is left over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from msnbridge.core.sides import PortalMessage
from msnbridge.db.portal import Portal
from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    CAROL,
    friend,
    ghost_id,
    is_message_from,
    join,
    log_in,
    msn,
    settings,
    wait_invite,
)

__all__ = ["msn"]  # fixture shared with test_matrix_portals

pytestmark = pytest.mark.timeout(180)

BURST = 30
PROMPT = 10.0  # seconds: generous for a loaded machine; the held room holds for 60


async def test_a_held_portal_does_not_hold_the_owners_other_portals_and_order_is_kept(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    bob, _ = await friend(msn, BOB)
    carol, carol_events = await friend(msn, CAROL)
    try:
        async with running_bridge(bridge_config(**settings(msn))) as bridge:
            await log_in(synapse, owner)
            rooms: dict[str, str] = {}
            for person in (bob, carol):
                assert (await person.conversation([ALICE]).send_text("hello")).ok
                room = rooms[person.config.passport] = await wait_invite(synapse, owner)
                await join(synapse, owner, room)
                ghost = ghost_id(synapse, person.config.passport)
                await wait_for_event(synapse, owner, room, is_message_from(ghost, "hello"))

            assert bridge.router is not None
            side: Any = bridge.router.side("matrix")
            deliver = side.deliver_message
            release = asyncio.Event()
            held = asyncio.Event()

            async def slow_for_bob(portal: Portal, message: PortalMessage) -> str | None:
                if portal.participants == [BOB]:
                    held.set()
                    text = message.rich.plain()
                    if text.startswith("burst "):
                        # Earlier messages wait longer: handled side by side, they would
                        # overtake each other.
                        await asyncio.sleep((BURST - int(text.split()[1])) * 0.01)
                    else:
                        await asyncio.wait_for(release.wait(), 60)
                return await deliver(portal, message)

            side.deliver_message = slow_for_bob

            bob_conv = bob.conversation([ALICE])
            assert (await bob_conv.send_text("held")).ok
            await asyncio.wait_for(held.wait(), PROMPT)
            for n in range(1, BURST + 1):
                assert (await bob_conv.send_text(f"burst {n}")).ok

            # Bob's room holds; carol's portal of the same owner goes on, both ways.
            carol_ghost = ghost_id(synapse, CAROL)
            assert (await carol.conversation([ALICE]).send_text("not held")).ok
            await wait_for_event(
                synapse, owner, rooms[CAROL], is_message_from(carol_ghost, "not held"), PROMPT
            )
            await send_text(synapse, owner, rooms[CAROL], "to carol meanwhile")
            await carol_events.wait_for(
                MessageReceived, lambda e: e.message.text == "to carol meanwhile", PROMPT
            )
            assert not release.is_set()  # all of that while bob's room still held

            release.set()
            bob_ghost = ghost_id(synapse, BOB)
            await wait_for_event(
                synapse, owner, rooms[BOB], is_message_from(bob_ghost, f"burst {BURST}"), 60
            )
            bodies = [
                e["content"].get("body", "")
                for e in await room_events(synapse, owner, rooms[BOB])
                if e["type"] == "m.room.message" and e["sender"] == bob_ghost
            ]
            expected = ["hello", "held"] + [f"burst {n}" for n in range(1, BURST + 1)]
            assert bodies == expected

            await bridge.router.events.drain()
            assert bridge.router.events.lanes == 0
    finally:
        await bob.stop()
        await carol.stop()
