"""An owner who left a portal room is invited back: by the contact's next message from MSN
and by `chat`; what they cannot be brought back to read is not counted as delivered. Real
Synapse, the MSNP test server, the bridge in-process, bob as a real puppet client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from mautrix.types import Membership, RoomID, UserID

from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    MatrixHTTPError,
    MatrixUser,
    SynapseServer,
    free_port,
    is_notice_from,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (  # noqa: F401 (msn is a fixture)
    ALICE,
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    friend,
    ghost_id,
    is_message_from,
    join,
    log_in,
    msn,
    room_events,
    scrape,
    settings,
    until,
    wait_invite,
)


async def leave(synapse: SynapseServer, user: MatrixUser, room: str) -> None:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/leave"
    await synapse.request("POST", path, {}, token=user.access_token)


async def test_owner_who_left_a_dm_is_invited_back(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="msnbridge")
    port = free_port()
    metrics = {"enabled": True, "listen_address": "127.0.0.1", "port": port}
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    bob_ghost = ghost_id(synapse, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn, metrics=metrics))) as bridge:
            management = await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "first")
            assert bridge.matrix is not None
            store = bridge.matrix.state_store

            async def owner_is(membership: Membership) -> None:
                """Until the bridge has seen the owner's membership change."""
                for _ in range(300):
                    got = await store.get_membership(RoomID(room), UserID(owner.user_id))
                    if got == membership:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"the bridge never saw the owner's {membership}")

            # The owner leaves; they cannot come back by themselves (a private room).
            await leave(synapse, owner, room)
            with pytest.raises(MatrixHTTPError) as refused:
                await join(synapse, owner, room)
            assert refused.value.status == 403
            await owner_is(Membership.LEAVE)

            # bob writes: the owner is invited into the same room, by bob's ghost, as a DM,
            # and finds the message there; it counts as delivered once.
            before = await scrape(port)
            assert (await bob.conversation([ALICE]).send_text("are you there?")).ok
            assert await wait_invite(synapse, owner) == room
            as_bot = MatrixUser(bot_id(synapse), synapse.appservice.as_token, "")
            invite = [
                e
                for e in await room_events(synapse, as_bot, room)
                if e["type"] == "m.room.member" and e["state_key"] == owner.user_id
            ][-1]
            assert invite["content"]["membership"] == "invite"
            assert invite["sender"] == bob_ghost and invite["content"].get("is_direct") is True
            await join(synapse, owner, room)
            await wait_for_event(synapse, owner, room, is_message_from(bob_ghost, "are you there?"))
            moved = {k: v - before.get(k, 0) for k, v in (await scrape(port)).items()}
            assert moved.get(("msn_to_matrix", "delivered")) == 1
            logged = caplog.text
            assert f"{owner.user_id} left their portal room {room}" in logged
            assert f"{owner.user_id} is not in their portal room {room} (leave)" in logged

            # `chat` invites a owner who left again, instead of only naming the room.
            await owner_is(Membership.JOIN)
            await leave(synapse, owner, room)
            await owner_is(Membership.LEAVE)
            await send_text(synapse, owner, management, f"chat {BOB}")
            await wait_for_event(synapse, owner, management, is_notice_from(bot_id(synapse), room))
            assert await wait_invite(synapse, owner) == room
            await join(synapse, owner, room)

            # An owner who cannot be invited back (banned from the room) does not get the
            # message: it counts as failed, not delivered.
            await owner_is(Membership.JOIN)
            ban = {"user_id": owner.user_id, "reason": "test"}
            await synapse.request(
                "POST", f"/_matrix/client/v3/rooms/{quote(room)}/ban", ban,
                token=synapse.appservice.as_token,
            )  # fmt: skip
            await owner_is(Membership.BAN)
            before = await scrape(port)
            assert (await bob.conversation([ALICE]).send_text("nobody reads this")).ok

            async def counted() -> bool:
                now = await scrape(port)
                return now.get(("msn_to_matrix", "failed"), 0) > before.get(
                    ("msn_to_matrix", "failed"), 0
                )

            await until(counted)
            await wait_for_event(
                synapse, owner, management, is_notice_from(bot_id(synapse), "could not invite you")
            )
            after = await scrape(port)
            assert after.get(("msn_to_matrix", "delivered")) == before.get(
                ("msn_to_matrix", "delivered")
            )
    finally:
        await bob.stop()
