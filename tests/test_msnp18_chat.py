"""MSNP13-18 presence, personal messages and chat against the test server, both sides
on the same version, and mixed with an MSNP12 peer."""

from __future__ import annotations

import pytest

from puppets.event.contact import PersonalMessageChanged, PresenceChanged
from puppets.event.conversation import DeliveryStatus, MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    add_friends,
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

VERSIONS = list(range(13, 19))


def _pair(server: MSNPTestServer, tag: str) -> tuple[str, str]:
    return add_friends(
        server, f"a{tag}@example.com", f"b{tag}@example.com", (f"Alice {tag}", f"Bob {tag}")
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_presence_psm_and_chat(server: MSNPTestServer, version: int) -> None:
    a, b = _pair(server, str(version))
    alice, alice_rec = await online_client(
        server, a, "pw", min_version=version, max_version=version, reconnect=False
    )
    bob, bob_rec = await online_client(
        server, b, "pw", min_version=version, max_version=version, reconnect=False
    )
    try:
        online = await alice_rec.wait_for(
            PresenceChanged, lambda e: e.passport == b and e.status == "NLN"
        )
        assert online.nick == f"Bob {version}"
        await bob.set_status("AWY")
        await alice_rec.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "AWY")
        await bob.set_psm("out for lunch <b>&</b>")
        psm = await alice_rec.wait_for(PersonalMessageChanged, lambda e: e.passport == b)
        assert psm.psm == "out for lunch <b>&</b>"
        assert alice.contacts.get(b).psm == "out for lunch <b>&</b>"
        await bob.set_nick("Robert ñ")
        await alice_rec.wait_for(
            PresenceChanged, lambda e: e.passport == b and e.nick == "Robert ñ"
        )
        result = await alice.conversation([b]).send_text("hello ñ 13+")
        assert result.status is DeliveryStatus.ACKED
        got = await bob_rec.wait_for(MessageReceived)
        assert got.sender == a and got.message.text == "hello ñ 13+"
        reply = await bob.conversation([a]).send_text("hi back")
        assert reply.ok
        back = await alice_rec.wait_for(MessageReceived)
        assert back.sender == b and back.message.text == "hi back"
        await bob.stop()
        await alice_rec.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "FLN")
    finally:
        await alice.stop()
        await bob.stop()


async def test_msnp18_talks_to_msnp12(server: MSNPTestServer) -> None:
    a, b = _pair(server, "mixed")
    new, new_rec = await online_client(server, a, "pw", min_version=18, reconnect=False)
    old, old_rec = await online_client(server, b, "pw", max_version=12, reconnect=False)
    try:
        assert (new.protocol, old.protocol) == (18, 12)
        await new_rec.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "NLN")
        await old_rec.wait_for(PresenceChanged, lambda e: e.passport == a and e.status == "NLN")
        assert (await new.conversation([b]).send_text("from 18")).ok
        assert (await old_rec.wait_for(MessageReceived)).message.text == "from 18"
        assert (await old.conversation([a]).send_text("from 12")).ok
        got = await new_rec.wait_for(MessageReceived)
        assert got.sender == b and got.message.text == "from 12"
    finally:
        await new.stop()
        await old.stop()
