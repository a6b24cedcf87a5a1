"""Faults on the MSN side, end to end (real Synapse, MSNP test server, bridge in-process):
the MSN server dies and comes back, switchboards drop mid-conversation. Messages written
on Matrix meanwhile are delivered once after the reconnect, or reported back as failed
after msn.offline_send_timeout; none is lost silently or delivered twice."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from puppets import Client, SessionState
from puppets.event.conversation import MessageReceived
from puppets.event.session import SessionStateChanged
from tests import test_matrix_portals
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder, online_client
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
    is_notice_from,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    CAROL,
    PASSWORD,
    _dm_room,
    alice_seen_online,
    bot_id,
    ghost_id,
    is_message_from,
    join,
    log_in,
    settings,
    until,
)

msn = test_matrix_portals.msn  # the MSNP test server fixture: alice, bob, carol

# The MSN friends reconnect at once, so they are back before the bridge's session is.
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2}


async def fast_friend(server: MSNPTestServer, passport: str) -> tuple[Client, Recorder]:
    return await online_client(server, passport, PASSWORD, **FAST)


def texts(recorder: Recorder) -> list[str]:
    return [e.message.text for e in recorder.of(MessageReceived)]


async def outage(server: MSNPTestServer, client: Client) -> asyncio.Future[None]:
    """Stops the MSN server; returns a future that restarts it just after the bridge's
    session failed one reconnect attempt (so its next try is ≥ 2 s later, after the
    friends — who retry every 0.2 s — are back)."""
    loop = asyncio.get_running_loop()
    delays: list[float] = []

    def on_state(event: object) -> None:
        if isinstance(event, SessionStateChanged) and event.state is SessionState.BACKING_OFF:
            delays.append(event.retry_in or 0.0)

    client.add_listener(on_state)
    await server.stop()
    await until(lambda: len(delays) >= 1)  # the link loss

    async def restart() -> None:
        await until(lambda: len(delays) >= 2, timeout=10)  # the first retry failed too
        client.remove_listener(on_state)
        await asyncio.sleep(0.3)
        await server.start()

    return loop.create_task(restart())


async def chat_room(synapse: SynapseServer, owner: MatrixUser, management: str, who: str) -> str:
    """Opens a portal with `who` through the bot's `chat` command; the owner joins its room."""
    await send_text(synapse, owner, management, f"chat {who}")
    reply = await wait_for_event(
        synapse, owner, management, is_notice_from(bot_id(synapse), f"conversation with {who}")
    )
    match = re.search(r"\((![^,)]+)", reply["content"]["body"])
    assert match, reply["content"]["body"]
    room = match.group(1)
    await join(synapse, owner, room)
    return room


def failure_notices(events: list[dict[str, Any]], synapse: SynapseServer) -> list[str]:
    return [
        e["content"]["body"]
        for e in events
        if is_notice_from(bot_id(synapse), "Not delivered to MSN")(e)
    ]


async def test_msn_server_restart_queues_matrix_messages_and_delivers_each_once(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    config = bridge_config(**settings(msn, **{"msn.offline_send_timeout": 30}))
    bob, bob_events = await fast_friend(msn, BOB)
    carol, carol_events = await fast_friend(msn, CAROL)
    try:
        async with running_bridge(config) as bridge:
            management = await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            # bob's room carries a live conversation; carol's room has none yet (no
            # message went through it): both must wait for the session, not fail.
            bob_room = await _dm_room(synapse, owner, bob, "hello alice")
            carol_room = await chat_room(synapse, owner, management, CAROL)
            await send_text(synapse, owner, bob_room, "before the outage")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text.endswith("outage"))
            assert bridge.sessions is not None
            client = bridge.sessions.get(owner.user_id)
            assert client is not None

            restarted = await outage(msn, client)
            assert client.state is not SessionState.ONLINE
            await send_text(synapse, owner, bob_room, "during 1")
            await send_text(synapse, owner, carol_room, "to carol during")
            await send_text(synapse, owner, bob_room, "during 2")
            await restarted
            await client.wait_online(timeout=20)
            await bob_events.until(lambda: "during 2" in texts(bob_events), timeout=20)
            await carol_events.until(lambda: "to carol during" in texts(carol_events), timeout=20)
            await send_text(synapse, owner, bob_room, "after")
            await bob_events.until(lambda: "after" in texts(bob_events), timeout=10)
            await asyncio.sleep(0.5)  # room for a duplicate to show up
            assert texts(bob_events) == ["before the outage", "during 1", "during 2", "after"]
            assert texts(carol_events) == ["to carol during"]
            for room in (bob_room, carol_room):
                assert failure_notices(await room_events(synapse, owner, room), synapse) == []
            # MSN → Matrix works again too.
            assert (await bob.conversation([ALICE]).send_text("back again")).ok
            await wait_for_event(
                synapse, owner, bob_room, is_message_from(ghost_id(synapse, BOB), "back again")
            )
    finally:
        await bob.stop()
        await carol.stop()


async def test_msn_outage_longer_than_the_timeout_reports_the_message_failed(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    config = bridge_config(**settings(msn, **{"msn.offline_send_timeout": 2}))
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with running_bridge(config) as bridge:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hi")
            assert bridge.sessions is not None
            client = bridge.sessions.get(owner.user_id)
            assert client is not None
            await msn.stop()
            await until(lambda: client.state is not SessionState.ONLINE)
            lost = await send_text(synapse, owner, room, "sent into the outage")
            notice = await wait_for_event(
                synapse, owner, room, is_notice_from(bot_id(synapse), "Not delivered to MSN"), 20
            )
            body = notice["content"]["body"]
            assert "sent into the outage" in body and "not back within 2 s" in body, body
            assert notice["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == lost
            status = await wait_for_event(
                synapse, owner, room, lambda e: e["type"] == "com.beeper.message_send_status"
            )
            assert status["content"]["status"] == "FAIL_PERMANENT"
            assert status["content"]["m.relates_to"]["event_id"] == lost

            await msn.start()
            await client.wait_online(timeout=20)
            await until(lambda: msn.online_sessions(BOB) == 1)
            await send_text(synapse, owner, room, "after the outage")
            await bob_events.until(lambda: "after the outage" in texts(bob_events), timeout=15)
            await asyncio.sleep(0.3)
            # The failed message was reported, not sent late as well.
            assert texts(bob_events) == ["after the outage"]
    finally:
        await bob.stop()


async def test_dropped_switchboards_are_reopened_by_the_next_message(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "start")
            await send_text(synapse, owner, room, "one")
            await bob_events.until(lambda: "one" in texts(bob_events))

            # 1. The server drops every switchboard connection (as a crashed SB would).
            sbs = msn.hub.switchboards
            assert sbs is not None and sbs.conversations
            for conv in list(sbs.conversations.values()):
                for member in list(conv.members.values()):
                    member.close("kicked", abort=True)
            await until(lambda: bob.conversation([ALICE]).switchboard is None)
            await send_text(synapse, owner, room, "two")
            await bob_events.until(lambda: "two" in texts(bob_events), timeout=15)

            # 2. The friend leaves the switchboard (BYE): alice is alone, it closes.
            await bob.conversation([ALICE]).close()
            await send_text(synapse, owner, room, "three")
            await bob_events.until(lambda: "three" in texts(bob_events), timeout=15)

            # 3. The friend talks back on a switchboard of their own.
            assert (await bob.conversation([ALICE]).send_text("four")).ok
            await wait_for_event(
                synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "four")
            )
            await asyncio.sleep(0.3)
            assert texts(bob_events) == ["one", "two", "three"]
            assert failure_notices(await room_events(synapse, owner, room), synapse) == []
    finally:
        await bob.stop()
