"""What rides beside P2P on a switchboard: custom emoticons (fetched like display
pictures), legacy MSNFTP invitations (answered with a cancel), winks and ink."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from puppets.event.conversation import EmoticonsAnnounced, InvitationReceived
from puppets.event.transfer import (
    EmoticonReceived,
    LegacyInvitationRefused,
    P2PInvitationDeclined,
    RichContentReceived,
)
from puppets.mime import build_message
from puppets.msnobject import TYPE_EMOTICON, TYPE_WINK, MSNObject
from puppets.p2p import slp
from puppets.p2p.service import build_emoticon_payload
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

VERSIONS = [9, 12, 18]
_ids = itertools.count()


async def _pair(server: MSNPTestServer, version: int):
    n = next(_ids)
    a, b = f"xa{n}@example.com", f"xb{n}@example.com"
    for who in (a, b):
        server.add_account(who, "pw")
    server.add_contact(a, b)
    server.add_contact(b, a)
    pinned = {"min_version": version, "max_version": version}
    alice, aev = await online_client(server, a, "pw", **pinned)
    bob, bev = await online_client(server, b, "pw", **pinned)
    return (a, alice, aev), (b, bob, bev)


@pytest.mark.parametrize("version", VERSIONS)
async def test_custom_emoticons_are_fetched(server, version):
    (a, alice, _), (_, bob, bev) = await _pair(server, version)
    cat, dog = b"GIF89a cat" * 50, b"GIF89a dog" * 70
    objs = [MSNObject.for_data(a, d, TYPE_EMOTICON) for d in (cat, dog)]
    for obj, data in zip(objs, (cat, dog), strict=True):
        alice.p2p.manager.serve_object(obj, data)
    bob.p2p.auto_fetch_emoticons = True
    try:
        conv = alice.conversation([bob.config.passport])
        payload = build_emoticon_payload([(":cat:", objs[0]), ("(dog)", objs[1])])
        assert (await conv.submit([payload], "A")).ok
        assert (await conv.send_text("look :cat: (dog)")).ok
        announced = await bev.wait_for(EmoticonsAnnounced)
        assert [s for s, _ in announced.emoticons] == [":cat:", "(dog)"]
        await bev.until(lambda: len(bev.of(EmoticonReceived)) == 2, timeout=20)
        got = {e.shortcut: e.data for e in bev.of(EmoticonReceived)}
        assert got == {":cat:": cat, "(dog)": dog}
    finally:
        await alice.stop()
        await bob.stop()


def _msnftp_invite(cookie: str) -> bytes:
    body = (
        "Application-Name: File Transfer\r\n"
        "Application-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n"
        "Invitation-Command: INVITE\r\n"
        f"Invitation-Cookie: {cookie}\r\n"
        "Application-File: holiday.jpg\r\n"
        "Application-FileSize: 123456\r\n"
        "Connectivity: N\r\n\r\n"
    )
    return build_message([("Content-Type", "text/x-msmsgsinvite; charset=UTF-8")], body.encode())


@pytest.mark.parametrize("version", VERSIONS)
async def test_legacy_msnftp_offer_is_cancelled_and_reported(server, version):
    (a, alice, aev), (_, bob, bev) = await _pair(server, version)
    try:
        conv = alice.conversation([bob.config.passport])
        assert (await conv.submit([_msnftp_invite("4242")], "N")).ok
        told = await bev.wait_for(LegacyInvitationRefused)
        assert told.sender == a and told.file_name == "holiday.jpg" and told.size == 123456
        answer = await aev.wait_for(InvitationReceived)
        inv = answer.invitation
        assert inv.command == "CANCEL" and inv.cookie == "4242"
        assert inv.fields["Cancel-Code"] == "REJECT_NOT_INSTALLED"
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_winks_and_ink_are_reported_for_what_they_are(server, version):
    (a, alice, _), (_, bob, bev) = await _pair(server, version)
    wink = MSNObject.for_data(a, b"MSCF cabinet", TYPE_WINK)
    try:
        conv = alice.conversation([bob.config.passport])
        datacast = build_message(
            [("Content-Type", "text/x-msnmsgr-datacast")],
            f"ID: 2\r\nData: {wink.build()}\r\n\r\n".encode(),
        )
        ink = build_message([("Content-Type", "image/gif")], b"base64:R0lGODlh")
        assert (await conv.submit([datacast, ink], "A")).ok
        await bev.until(lambda: len(bev.of(RichContentReceived)) == 2)
        kinds = [(e.kind, e.msnobject) for e in bev.of(RichContentReceived)]
        assert kinds == [("wink", wink), ("ink", None)]
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_p2p_applications_are_declined(server, version):
    (a, alice, _aev), (b, bob, bev) = await _pair(server, version)
    try:
        from puppets.p2p.header import Frame, Header
        from puppets.p2p.transport import build_payload

        invite = slp.request(
            "INVITE",
            b,
            a,
            call_id=slp.new_guid(),
            body={"EUF-GUID": slp.EUF_WEBCAM, "SessionID": "99", "AppID": "4", "Context": "e30="},
        ).build()
        frame = Frame(Header(0, 5, 0, len(invite), len(invite)), invite, 0)
        conv = alice.conversation([b])
        assert (await conv.submit([build_payload(b, frame)], "D")).ok
        declined = await bev.wait_for(P2PInvitationDeclined)
        assert declined.euf_guid == slp.EUF_WEBCAM and declined.sender == a
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_direct_connection_proposals_are_answered_not_listening(server, version):
    (a, alice, _aev), (b, bob, _bev) = await _pair(server, version)
    from puppets.event.conversation import P2PPayloadReceived
    from puppets.p2p.header import Frame, Header
    from puppets.p2p.slp import parse_slp
    from puppets.p2p.transport import build_payload, parse_payload

    seen: list[bytes] = []
    real = alice.p2p.handle

    def spy(event):
        if isinstance(event, P2PPayloadReceived):
            seen.append(event.payload)
        return real(event)

    alice.p2p.handle = spy  # type: ignore[method-assign]
    try:
        call = slp.new_guid()
        invite = slp.request(
            "INVITE",
            b,
            a,
            call_id=call,
            content_type=slp.CT_TRANSFER_REQUEST,
            body={"Bridges": "TRUDPv1 TCPv1", "NetID": "0", "Conn-Type": "Firewall"},
        ).build()
        frame = Frame(Header(0, 7, 0, len(invite), len(invite)), invite, 0)
        conv = alice.conversation([b])
        assert (await conv.submit([build_payload(b, frame)], "D")).ok

        def answered() -> bool:
            for payload in seen:
                _, got = parse_payload(payload)
                if got.data:
                    msg = parse_slp(got.data)
                    if msg.call_id == call:
                        return True
            return False

        for _ in range(200):
            if answered():
                break
            await asyncio.sleep(0.05)
        replies = [parse_slp(parse_payload(p)[1].data) for p in seen if parse_payload(p)[1].data]
        reply = next(r for r in replies if r.call_id == call)
        assert reply.status == 200 and reply.content_type == slp.CT_TRANSFER_RESPONSE
        assert reply.field("Listening") == "false"
    finally:
        await alice.stop()
        await bob.stop()
