"""Issue 11 item 11 on Matrix, the whole bridge with a real Synapse at MSNP18: what the
owner writes from their own Messenger (a second endpoint of the same MSN account) appears
in the portal as the owner's own Matrix user with double puppeting (the second
registration's as_token, `bridge.double_puppet.secrets`), exactly once, recorded in the
message map and not sent back to MSN; without double puppeting, or when the homeserver
refuses the token, as a notice of the bot marked "(from another Messenger)"."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from msnbridge.db import message as message_db
from puppets.event.conversation import MessageReceived
from tests.msn_fixtures import msn18_fixture  # noqa: F401 (the msn fixture)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder, online_client
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
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

MESSENGER_GUID = "{11111111-2222-3333-4444-666666666666}"


async def own_message_from_messenger(
    synapse: SynapseServer,
    msn: MSNPTestServer,
    config: Path,
    *,
    owner_joins: bool = True,
    owner: MatrixUser | None = None,
) -> tuple[MatrixUser, dict[str, Any], list[dict[str, Any]], Recorder]:
    """Logs the owner in through the bridge, opens a portal with bob, signs the owner's own
    Messenger in beside the bridge and writes "yes, typing here" from it; then the owner
    writes from Matrix (a barrier: Matrix events of a room are handled in order, so the
    echo of the first was handled before). Returns what the room and bob saw."""
    owner = owner or await synapse.register_user()
    bob, bob_rec = await online_client(msn, BOB, PASSWORD)
    messenger = None
    try:
        async with running_bridge(config) as bridge:
            await log_in(synapse, owner)
            messenger, m_rec = await online_client(
                msn, ALICE, PASSWORD, machine_guid=MESSENGER_GUID, endpoint_name="Home PC"
            )
            client = bridge.sessions.get(owner.user_id)
            assert client is not None
            await until(lambda: MESSENGER_GUID.lower() in client.own_endpoints)
            # Bob writes: the switchboard rings both of the owner's endpoints.
            assert (await bob.conversation([ALICE]).send_text("are you at your PC?")).ok
            room = await wait_invite(synapse, owner)
            if owner_joins:  # else only invited: the double puppet joins for them
                await join(synapse, owner, room)
                await wait_for_event(
                    synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "at your PC")
                )
            await m_rec.wait_for(MessageReceived, lambda e: e.message.text.endswith("PC?"))
            assert (await messenger.conversation([BOB]).send_text("yes, typing here")).ok
            await bob_rec.wait_for(MessageReceived, lambda e: e.message.text == "yes, typing here")
            if not owner_joins:

                async def joined() -> bool:
                    path = "/_matrix/client/v3/joined_rooms"
                    reply = await synapse.request("GET", path, token=owner.access_token)
                    return room in reply["joined_rooms"]

                await until(joined)
            own = await wait_for_event(
                synapse, owner, room, lambda e: "yes, typing here" in e["content"].get("body", "")
            )
            await send_text(synapse, owner, room, "and from Matrix")
            await bob_rec.wait_for(MessageReceived, lambda e: e.message.text == "and from Matrix")
            events = await room_events(synapse, owner, room)
            link = await message_db.get(bridge.db, own["event_id"])  # type: ignore[arg-type]
            assert link is not None and (link.msn_id or "").startswith("msn:")
            return owner, own, events, bob_rec
    finally:
        if messenger is not None:
            await messenger.stop()
        await bob.stop()


def texts_to_bob(recorder: Recorder, text: str) -> int:
    return sum(1 for e in recorder.of(MessageReceived) if e.message.text == text)


@pytest.mark.parametrize("owner_joins", [True, False], ids=["joined", "only-invited"])
async def test_own_message_is_sent_as_the_owner_with_double_puppeting(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    owner_joins: bool,
) -> None:
    assert synapse.double_puppet is not None
    config = bridge_config(
        **msn_settings(msn, services=True),
        **{"bridge.double_puppet": {"secrets": {synapse.domain: synapse.double_puppet.secret}}},
    )
    owner, own, events, bob_rec = await own_message_from_messenger(
        synapse, msn, config, owner_joins=owner_joins
    )
    assert own["sender"] == owner.user_id
    assert own["content"]["body"] == "yes, typing here"
    assert own["content"]["msgtype"] == "m.text"
    assert own["content"].get("fi.mau.double_puppet_source") == "msn"
    shown = [
        e
        for e in events
        if e["type"] == "m.room.message" and "yes, typing here" in e["content"].get("body", "")
    ]
    assert [e["event_id"] for e in shown] == [own["event_id"]]  # exactly once
    # Bob got it once, from the owner's Messenger; the bridge did not send it again.
    assert texts_to_bob(bob_rec, "yes, typing here") == 1
    assert texts_to_bob(bob_rec, "and from Matrix") == 1


@pytest.mark.parametrize("secret", [None, "as_token:not-a-registered-token"])
async def test_own_message_is_a_marked_notice_without_double_puppeting(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    secret: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    overrides = msn_settings(msn, services=True)
    if secret is not None:  # a token the homeserver does not know: it refuses, we fall back
        overrides["bridge.double_puppet"] = {"secrets": {synapse.domain: secret}}
    config = bridge_config(**overrides)
    owner, own, events, bob_rec = await own_message_from_messenger(synapse, msn, config)
    bot = bot_id(synapse)
    assert own["sender"] == bot
    assert own["content"]["msgtype"] == "m.notice"
    assert own["content"]["body"] == "<Alice (from another Messenger)> yes, typing here"
    assert not any(
        e["type"] == "m.room.message" and e["sender"] == owner.user_id
        and "yes, typing here" in e["content"].get("body", "")
        for e in events
    )  # fmt: skip
    assert texts_to_bob(bob_rec, "yes, typing here") == 1
    if secret is not None:
        refusals = [r for r in caplog.records if "Double puppeting" in r.getMessage()]
        assert len(refusals) == 1
        assert "not-a-registered-token" not in caplog.text  # the token is never logged


async def test_own_message_with_a_shared_secret_login(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    """A login shared secret instead of an as_token: the bridge logs in as the owner (here
    Synapse's plain password login stands in for the shared-secret-auth module: the owner's
    password is the HMAC the module would check)."""
    secret = secrets.token_hex(16)
    localpart = f"shared_{secrets.token_hex(3)}"
    user_id = f"@{localpart}:{synapse.domain}"
    password = hmac.new(secret.encode(), user_id.encode(), hashlib.sha512).hexdigest()
    registered = await synapse.register_user(localpart, password=password)
    config = bridge_config(
        **msn_settings(msn, services=True),
        **{"bridge.double_puppet": {"secrets": {synapse.domain: secret}}},
    )
    owner, own, _events, bob_rec = await own_message_from_messenger(
        synapse, msn, config, owner=registered
    )
    assert own["sender"] == owner.user_id == user_id
    assert own["content"]["body"] == "yes, typing here"
    assert own["content"].get("fi.mau.double_puppet_source") == "msn"
    assert texts_to_bob(bob_rec, "yes, typing here") == 1
