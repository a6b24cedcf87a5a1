"""Security end to end (real Synapse, MSNP test server, bridge in-process): two bridged
users and an outsider see nothing of each other's sessions; secrets never reach the logs
or /metrics; a changed bridge.secret_key gives a clear message, not a crash."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from msnbridge.core.commands import REFUSAL
from msnbridge.db import user as user_db
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client
from tests.synapse_server import (
    MatrixHTTPError,
    MatrixUser,
    SynapseServer,
    create_dm,
    free_port,
    is_membership,
    is_notice_from,
    matrix_login,
    msn_settings,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_faults_msn import texts
from tests.test_matrix_portals import (
    alice_seen_online,
    bot_id,
    ghost_id,
    is_message_from,
    join,
    sync,
    until,
)

ALICE, CAROL, BOB, DAVE = (f"{n}@example.com" for n in ("alice", "carol", "bob", "dave"))
# Distinct, recognisable passwords: any of them in a log line is a leak.
PASSWORDS = {p: f"pw-{p.split('@')[0]}-{secrets.token_hex(6)}" for p in (ALICE, CAROL, BOB, DAVE)}


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        for passport, password in PASSWORDS.items():
            server.add_account(passport, password, nick=passport.split("@")[0].title())
        # alice has dave, carol has not: dave is alice's private contact.
        for a, b in ((ALICE, BOB), (CAROL, BOB), (ALICE, DAVE)):
            server.add_contact(a, b, ("FL", "AL"))
            server.add_contact(b, a, ("FL", "AL"))
        yield server


async def login_as(synapse: SynapseServer, user: MatrixUser, passport: str) -> str:
    return await matrix_login(synapse, user, passport, PASSWORDS[passport])


async def invites(synapse: SynapseServer, user: MatrixUser) -> dict[str, Any]:
    return (await sync(synapse, user)).get("rooms", {}).get("invite", {})


async def everything_seen(synapse: SynapseServer, user: MatrixUser) -> str:
    """All a user can see through /sync (joined rooms' timelines, invites), as text."""
    reply = await sync(synapse, user, {"timeline": {"limit": 100}})
    return repr(reply)


async def test_users_are_isolated_and_secrets_stay_out_of_logs_and_metrics(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, ours and the libraries'
    a, b, outsider = [await synapse.register_user() for _ in range(3)]
    port = free_port()
    config = bridge_config(
        **msn_settings(msn),
        metrics={"enabled": True, "listen_address": "127.0.0.1", "port": port},
        **{"bridge.permissions": {a.user_id: "user", b.user_id: "user"}},
    )
    bob, bob_events = await online_client(msn, BOB, PASSWORDS[BOB])
    try:
        async with running_bridge(config) as bridge:
            a_mgmt = await login_as(synapse, a, ALICE)
            b_mgmt = await login_as(synapse, b, CAROL)
            await alice_seen_online(bob_events)
            bot = bot_id(synapse)

            # The outsider is refused by the bot, also in a room where the bot stays.
            dm = await create_dm(synapse, outsider, bot)
            await wait_for_event(synapse, outsider, dm, is_notice_from(bot, "not allowed"))
            shared = (
                await synapse.request(
                    "POST", "/_matrix/client/v3/createRoom",
                    {"invite": [bot, outsider.user_id], "preset": "trusted_private_chat"},
                    token=b.access_token,
                )
            )["room_id"]  # fmt: skip
            await wait_for_event(synapse, b, shared, is_membership(bot, "join"))
            await join(synapse, outsider, shared)
            for command in ("contacts", "status", "sessions", f"chat {BOB}", "logout"):
                await send_text(synapse, outsider, shared, f"!msn {command}")

            async def all_refused() -> bool:
                events = await room_events(synapse, b, shared)
                return sum(1 for e in events if is_notice_from(bot, REFUSAL)(e)) == 5

            await until(all_refused)
            assert msn.online_sessions(CAROL) == 1 and msn.online_sessions(ALICE) == 1

            # B's commands act on B's own session only: no trace of alice's contacts.
            await send_text(synapse, b, b_mgmt, "contacts")
            b_contacts = await wait_for_event(synapse, b, b_mgmt, is_notice_from(bot, BOB))
            assert DAVE not in b_contacts["content"]["body"]
            await send_text(synapse, a, a_mgmt, "contacts")
            a_contacts = await wait_for_event(synapse, a, a_mgmt, is_notice_from(bot, DAVE))
            assert BOB in a_contacts["content"]["body"]
            await send_text(synapse, b, b_mgmt, "sessions")
            await wait_for_event(synapse, b, b_mgmt, is_notice_from(bot, "needs admin rights"))

            # A's portal: only A is invited; B and the outsider cannot join it.
            assert (await bob.conversation([ALICE]).send_text("secret for alice")).ok
            for _ in range(75):
                if found := await invites(synapse, a):
                    break
                await asyncio.sleep(0.2)
            (a_room,) = found
            await join(synapse, a, a_room)
            await wait_for_event(
                synapse, a, a_room, is_message_from(ghost_id(synapse, BOB), "secret for alice")
            )
            for intruder in (b, outsider):
                with pytest.raises(MatrixHTTPError) as refused:
                    await join(synapse, intruder, a_room)
                assert refused.value.status == 403
                assert a_room not in await invites(synapse, intruder)
            join_rules = await synapse.request(
                "GET",
                f"/_matrix/client/v3/rooms/{quote(a_room)}/state/m.room.join_rules/",
                token=a.access_token,
            )
            assert join_rules["join_rule"] == "invite"
            await send_text(synapse, a, a_room, "reply from alice")
            await bob_events.until(lambda: "reply from alice" in texts(bob_events))
            await asyncio.sleep(0.5)
            for intruder in (b, outsider):
                seen = await everything_seen(synapse, intruder)
                assert "secret for alice" not in seen
                assert "reply from alice" not in seen
                assert a_room not in seen
                assert DAVE not in seen

            assert bridge.metrics is not None
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as resp,
            ):
                metrics_text = await resp.text()
            assert "msnbridge_messages_total" in metrics_text
            tickets = [t.split("&")[0] for t in msn.hub.tickets._tickets]
            assert tickets, "the test server issued no Passport ticket"
    finally:
        await bob.stop()

    slot = synapse.appservice
    secret_key = bridge_config_secret(config)
    forbidden = {
        **{f"password of {p}": pw for p, pw in PASSWORDS.items()},
        "as_token": slot.as_token,
        "hs_token": slot.hs_token,
        "bridge.secret_key": secret_key,
        **{f"ticket {i}": t for i, t in enumerate(tickets)},
    }
    logs = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith("tests.")  # the test server's own logs are not the bridge's
    )
    assert "Logged in to MSN" in logs or "logged in to MSN" in logs  # the logs saw the run
    for what, value in forbidden.items():
        assert value not in logs, f"{what} reached the logs"
        assert value not in metrics_text, f"{what} reached /metrics"


def bridge_config_secret(config: Path) -> str:
    import json

    return str(json.loads(config.read_text())["bridge"]["secret_key"])


async def test_changed_secret_key_tells_the_owner_and_keeps_serving(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = await synapse.register_user()
    config = bridge_config(**msn_settings(msn))
    async with running_bridge(config):
        management = await login_as(synapse, owner, ALICE)
    await until(lambda: msn.online_sessions(ALICE) == 0)
    # The operator regenerates bridge.secret_key: stored passwords cannot be decrypted.
    config = bridge_config(**msn_settings(msn), **{"bridge.secret_key": secrets.token_urlsafe(32)})
    with caplog.at_level(logging.WARNING):
        async with running_bridge(config) as bridge:
            notice = await wait_for_event(
                synapse, owner, management, is_notice_from(bot_id(synapse), "could not be restored")
            )
            assert "secret_key" in notice["content"]["body"]
            assert "login" in notice["content"]["body"]
            assert msn.online_sessions(ALICE) == 0
            assert bridge.db is not None
            stored = await user_db.get(bridge.db, owner.user_id)
            assert stored is not None and stored.state == "needs_login"
            # The bridge serves on: logging in again works and stores a fresh password.
            await send_text(synapse, owner, management, f"login {ALICE} {PASSWORDS[ALICE]}")

            async def logged_in_again() -> bool:
                events = await room_events(synapse, owner, management)
                logged = is_notice_from(bot_id(synapse), "Logged in to MSN")
                return sum(1 for e in events if logged(e)) == 2

            await until(logged_in_again)
            assert msn.online_sessions(ALICE) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("msnbridge")]
    assert any("Cannot restore the MSN session" in w and "secret_key" in w for w in warnings)
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("msnbridge"))
