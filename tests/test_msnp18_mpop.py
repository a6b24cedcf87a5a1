"""MSNP16-18 multiple points of presence: the owner's own Messenger stays signed in while
the bridge's endpoint logs in, each knows where else the owner is, both are invited to
conversations, and what the owner writes from the other endpoint reaches the bridge as
the owner's own message. MSNP15 and a reused machine GUID still sign the first one out."""

from __future__ import annotations

import pytest

from puppets import SessionState
from puppets.event.conversation import MessageReceived, OwnMessageFromOtherEndpoint
from puppets.event.session import OwnEndpointsChanged, ServerSignedOut
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    add_friends,
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

MPOP = [16, 17, 18]
MESSENGER_GUID = "{11111111-2222-3333-4444-555555555555}"
BRIDGE_GUID = "{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}"


def _accounts(server: MSNPTestServer, tag: str) -> tuple[str, str]:
    return add_friends(server, f"mo{tag}@example.com", f"mf{tag}@example.com", ("Owner", "Friend"))


@pytest.mark.parametrize("version", MPOP)
async def test_two_endpoints_stay_signed_in(server: MSNPTestServer, version: int) -> None:
    owner, friend = _accounts(server, str(version))
    kw = {"min_version": version, "max_version": version, "reconnect": False}
    messenger, m_rec = await online_client(
        server, owner, "pw", machine_guid=MESSENGER_GUID, endpoint_name="Home PC", **kw
    )
    bridge, b_rec = await online_client(server, owner, "pw", machine_guid=BRIDGE_GUID, **kw)
    pal, pal_rec = await online_client(server, friend, "pw", **kw)
    try:
        assert bridge.machine_guid == BRIDGE_GUID
        assert messenger.state is SessionState.ONLINE
        assert not m_rec.of(ServerSignedOut)
        assert server.online_sessions(owner) == 2
        await b_rec.until(lambda: MESSENGER_GUID.lower() in bridge.own_endpoints)
        await m_rec.until(lambda: BRIDGE_GUID.lower() in messenger.own_endpoints)
        assert b_rec.of(OwnEndpointsChanged)
        if version >= 18:  # MSNP18 endpoint data carries the names
            assert bridge.own_endpoints[MESSENGER_GUID.lower()] == "Home PC"
            assert messenger.own_endpoints[BRIDGE_GUID.lower()] == "msnbridge"
        # The friend writes: every endpoint of the owner is invited and gets it.
        assert (await pal.conversation([owner]).send_text("hi both")).ok
        for rec in (m_rec, b_rec):
            got = await rec.wait_for(MessageReceived, lambda e: e.message.text == "hi both")
            assert got.sender == friend
        # The owner answers from the Messenger: the friend gets it from the owner; the
        # bridge gets it as the owner's own message from the other endpoint.
        assert (await messenger.conversation([friend]).send_text("from my PC")).ok
        mine = await b_rec.wait_for(OwnMessageFromOtherEndpoint)
        assert mine.message.text == "from my PC"
        assert mine.endpoint.lower() == MESSENGER_GUID.lower()
        assert mine.conversation is not None and mine.conversation.key == {friend}
        got = await pal_rec.wait_for(MessageReceived, lambda e: e.message.text == "from my PC")
        assert got.sender == owner
        assert not [e for e in b_rec.of(MessageReceived) if e.sender == owner]
        # The bridge signs out: the Messenger stays and sees the list shrink.
        await bridge.stop()
        await m_rec.until(lambda: not messenger.own_endpoints)
        assert messenger.state is SessionState.ONLINE
        assert server.online_sessions(owner) == 1
    finally:
        for c in (messenger, bridge, pal):
            await c.stop()


@pytest.mark.parametrize("version", MPOP)
async def test_owner_starts_a_chat_elsewhere(server: MSNPTestServer, version: int) -> None:
    """A conversation the owner opens from the other endpoint reaches the bridge too."""
    owner, friend = _accounts(server, f"s{version}")
    kw = {"min_version": version, "max_version": version, "reconnect": False}
    messenger, _ = await online_client(server, owner, "pw", machine_guid=MESSENGER_GUID, **kw)
    bridge, b_rec = await online_client(server, owner, "pw", machine_guid=BRIDGE_GUID, **kw)
    pal, pal_rec = await online_client(server, friend, "pw", **kw)
    try:
        assert (await messenger.conversation([friend]).send_text("opening line")).ok
        await pal_rec.wait_for(MessageReceived, lambda e: e.message.text == "opening line")
        assert (await messenger.conversation([friend]).send_text("second line")).ok
        mine = await b_rec.wait_for(
            OwnMessageFromOtherEndpoint, lambda e: e.message.text == "second line"
        )
        assert mine.conversation is not None and mine.conversation.key == {friend}
    finally:
        for c in (messenger, bridge, pal):
            await c.stop()


async def test_msnp15_second_login_signs_the_first_out(server: MSNPTestServer) -> None:
    owner, _friend = _accounts(server, "15")
    first, f_rec = await online_client(server, owner, "pw", max_version=15, reconnect=False)
    second, _ = await online_client(server, owner, "pw", max_version=15, reconnect=False)
    try:
        event = await f_rec.wait_for(ServerSignedOut)
        assert event.elsewhere
        assert server.online_sessions(owner) == 1
    finally:
        await first.stop()
        await second.stop()


async def test_same_machine_guid_replaces_the_endpoint(server: MSNPTestServer) -> None:
    owner, _friend = _accounts(server, "same")
    kw = {"machine_guid": BRIDGE_GUID, "reconnect": False}
    first, f_rec = await online_client(server, owner, "pw", **kw)
    second, _ = await online_client(server, owner, "pw", **kw)
    try:
        assert (await f_rec.wait_for(ServerSignedOut)).elsewhere
        assert server.online_sessions(owner) == 1
    finally:
        await first.stop()
        await second.stop()
