"""Login paths and server notices: Passport over HTTPS with and without TLS verification,
servers that skip the XFR NS redirect, a direct login URL, expired tickets, a link whose
QNGs stop, and the Hotmail/maintenance notices the notification server sends."""

from __future__ import annotations

import asyncio
import itertools
import ssl

import pytest

from puppets import AuthenticationError, Client, SessionState
from puppets.auth import PassportUnavailable
from puppets.event.mailbox import MailboxStatus, NewMail
from puppets.event.session import SessionStateChanged, SystemNotice
from tests.ircd import write_self_signed
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder, make_config, online_client

_ids = itertools.count()


def _account(server: MSNPTestServer) -> str:
    passport = f"user{next(_ids)}@example.com"
    server.add_account(passport, "pw", nick="User")
    return passport


@pytest.fixture(scope="module")
async def https_server(tmp_path_factory):
    cert, key = write_self_signed(tmp_path_factory.mktemp("tls"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = MSNPTestServer(versions=(8, 12), http_ssl=ctx)
    await server.start()
    yield server
    await server.stop()


async def test_passport_over_https_without_verification(https_server):
    assert https_server.nexus_url.startswith("https://")
    client, _ = await online_client(https_server, _account(https_server), "pw", verify_tls=False)
    assert client.protocol == 12
    await client.stop()


async def test_passport_over_https_refuses_an_unverified_certificate(https_server):
    client = Client(
        make_config(https_server, _account(https_server), "pw", reconnect=False, verify_tls=True)
    )
    await client.start()
    with pytest.raises(PassportUnavailable) as info:
        await client.wait_online(timeout=15)
    assert "certificate" in str(info.value).lower()
    await client.stop()


async def test_server_without_redirect_and_direct_login_url():
    server = MSNPTestServer(versions=(2, 12), redirect=False)
    await server.start()
    try:
        p = _account(server)
        client, _ = await online_client(
            server, p, "pw", nexus_url="http://127.0.0.1:9/unused", login_url=server.login_url
        )
        assert client.protocol == 12
        assert server.stats.as_dict()["redirects"] == 0
        await client.stop()
        old, _ = await online_client(server, _account(server), "pw", max_version=7)
        assert old.protocol == 7
        await old.stop()
    finally:
        await server.stop()


async def test_expired_ticket_is_refused():
    # Tickets that expire at once: every TWN login fails, as with a slow Passport round trip.
    server = MSNPTestServer(versions=(8, 12), ticket_ttl=0.0)
    await server.start()
    try:
        client = Client(make_config(server, _account(server), "pw", reconnect=False))
        await client.start()
        with pytest.raises(AuthenticationError) as info:
            await client.wait_online(timeout=15)
        assert "911" in str(info.value)
        await client.stop()
    finally:
        await server.stop()


async def test_link_without_qng_is_treated_as_dead_and_reconnects():
    server = MSNPTestServer(versions=(2, 12), qng_interval=1)
    await server.start()
    try:
        client, events = await online_client(server, _account(server), "pw", ping_interval=1)
        server.config.answer_png = False
        await events.wait_for(
            SessionStateChanged, lambda e: e.state is SessionState.BACKING_OFF, timeout=15
        )
        assert "QNG" in ((client.last_error and str(client.last_error)) or "")
        server.config.answer_png = True
        await client.wait_online(timeout=15)
        await client.stop()
    finally:
        await server.stop()


async def test_mail_and_maintenance_notices():
    server = MSNPTestServer(versions=(2, 12), initial_mail=True)
    await server.start()
    try:
        p = _account(server)
        client = Client(make_config(server, p, "pw"))
        events = Recorder(client)
        await client.start()
        await client.wait_online(timeout=15)
        status = await events.wait_for(MailboxStatus)
        assert status.inbox_unread >= 0
        server.send_new_mail(p, "Mike Mintz", "mike@example.com", "Lunch?")
        mail = await events.wait_for(NewMail)
        assert (mail.sender, mail.address, mail.subject) == (
            "Mike Mintz",
            "mike@example.com",
            "Lunch?",
        )
        server.send_system_message(p, 5)
        notice = await events.wait_for(SystemNotice)
        assert notice.minutes == 5
        await asyncio.sleep(0)
        await client.stop()
    finally:
        await server.stop()
