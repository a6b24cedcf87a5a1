"""Credentials never reach the logs: a full puppet run (TWN and MD5 logins, challenges,
switchboards both ways) logged at DEBUG, then searched for every secret it used."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

PASSWORD = "s3cret Pässword&%"


@pytest.mark.parametrize("version", [6, 12])
async def test_no_credentials_in_debug_logs(version, caplog):
    caplog.set_level(logging.DEBUG)
    server = MSNPTestServer(versions=(2, 12), send_chl=True)
    await server.start()
    cookies: list[str] = []
    issue = server.hub.switchboards.issue_cookie

    def recording_issue(*args: object, **kwargs: object) -> str:
        cookie = issue(*args, **kwargs)
        cookies.append(cookie)
        return cookie

    server.hub.switchboards.issue_cookie = recording_issue
    try:
        server.add_account("alice@example.com", PASSWORD, nick="Alice")
        server.add_account("bob@example.com", "bob-" + PASSWORD, nick="Bob")
        server.add_contact("alice@example.com", "bob@example.com")
        server.add_contact("bob@example.com", "alice@example.com")
        alice, _ = await online_client(server, "alice@example.com", PASSWORD, max_version=version)
        bob, bob_ev = await online_client(
            server, "bob@example.com", "bob-" + PASSWORD, max_version=version
        )
        assert (await alice.conversation(["bob@example.com"]).send_text("hi")).ok
        await bob_ev.wait_for(MessageReceived)
        assert (await bob.conversation(["alice@example.com"]).send_text("hello")).ok
        await alice.stop()
        await bob.stop()
        tickets = list(server.hub.tickets._tickets)
    finally:
        await server.stop()
    text = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith("tests.")  # the test server's own logs are not ours
    )
    assert "alice@example.com" in text  # the logs did capture the run
    secrets = [PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)]
    if version >= 8:
        assert tickets, "the test server issued no ticket"
        secrets += [t.split("&")[0] for t in tickets]
    assert cookies, "no switchboard cookie was issued"
    secrets += cookies
    for secret in secrets:
        assert secret not in text, f"a credential reached the logs: {secret[:4]}…"
