"""The homeserver stopped and started again under a running bridge (real Synapse, MSNP test
server, bridge in-process): messages from MSN meanwhile reach the room once it is back, in
order and once each; a Matrix message sent just before the stop reaches MSN once.

Synapse is the session-wide fixture: this module's one test restarts it and always leaves
it running, so the modules after it are unaffected."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests import test_matrix_portals
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_faults_msn import fast_friend, texts
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    _dm_room,
    alice_seen_online,
    ghost_id,
    is_message_from,
    log_in,
    settings,
)

msn = test_matrix_portals.msn  # the MSNP test server fixture: alice, bob, carol


async def test_homeserver_restart_delivers_msn_messages_in_order_once(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    ghost = ghost_id(synapse, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))) as bridge:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hello")
            # Synapse drops a transaction it was sending when stopped (it is not retried
            # until the appservice is marked down): stop only once this one arrived.
            await send_text(synapse, owner, room, "just before the stop")
            await bob_events.until(lambda: "just before the stop" in texts(bob_events), 10)
            await asyncio.to_thread(synapse.stop)
            try:
                for i in (1, 2, 3):
                    assert (await bob.conversation([ALICE]).send_text(f"while down {i}")).ok
                await asyncio.sleep(1.0)  # the bridge meets the dead homeserver
            finally:
                await asyncio.to_thread(synapse.start)
            await wait_for_event(synapse, owner, room, is_message_from(ghost, "while down 3"), 40)
            # Synapse on SQLite numbers transactions from 1 again after a restart: new ones
            # reusing the IDs of handled ones must still be processed.
            await send_text(synapse, owner, room, "after the restart")
            await bob_events.until(lambda: "after the restart" in texts(bob_events), 15)
            assert bridge.db is not None
            seen = await bridge.db.fetchval("SELECT txn_id FROM txn_seen LIMIT 1")
            reused = str(seen).split("/")[0]
            event = {
                "type": "m.room.message", "room_id": room, "sender": owner.user_id,
                "event_id": f"$reused{secrets.token_hex(6)}", "origin_server_ts": 0,
                "content": {"msgtype": "m.text", "body": "reused transaction id"},
            }  # fmt: skip
            url = f"{synapse.appservice.url}/_matrix/app/v1/transactions/{reused}"
            headers = {"Authorization": f"Bearer {synapse.appservice.hs_token}"}
            async with aiohttp.ClientSession() as session:
                for _ in range(2):  # the second time is a retry: handled once
                    async with session.put(url, json={"events": [event]}, headers=headers) as r:
                        assert r.status == 200
            await bob_events.until(lambda: "reused transaction id" in texts(bob_events), 15)
            await asyncio.sleep(0.5)  # room for duplicates to show up
            shown = [
                e["content"]["body"]
                for e in await room_events(synapse, owner, room)
                if e["type"] == "m.room.message" and e["sender"] == ghost
            ]
            assert shown == ["hello", "while down 1", "while down 2", "while down 3"]
            assert texts(bob_events) == [
                "just before the stop", "after the restart", "reused transaction id"
            ]  # fmt: skip
    finally:
        await bob.stop()
        if synapse._proc is None:  # a failure between stop and start: leave it running
            await asyncio.to_thread(synapse.start)
