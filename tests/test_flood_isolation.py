"""One MSN session flooded with strangers' presence stalls no one (issue 9, item 1).

A hostile notification server (the test server's `flood_presence` fault) pushes 30,000 NLN
lines for passports on none of one owner's lists. Against the real parts: Synapse, the
MSNP test server, the bridge in-process (and ngIRCd for the IRC nick path):
- the strangers become no contact, no ghost and no IRC nick; the drop is counted and
  logged once per burst;
- while that owner is flooded, another owner's Matrix message reaches MSN promptly and the
  appservice answers a transaction PUT;
- the IRC "relayed by the bot: over the connection cap" line is logged once per burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from msnbridge.bridge import Bridge
from puppets import Client
from puppets.event.conversation import MessageReceived
from tests.ircd import IRCd, RawClient, command_of, ircd_fixture, message_text
from tests.msn_fixtures import alice_and_bob
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder, online_client
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
    free_port,
    matrix_login,
    msn_settings,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_irc_bridge import friend, login, running_side, stack, write_config
from tests.test_matrix_portals import ghost_id, is_message_from, join, wait_invite

__all__ = ["ircd_fixture", "stack"]  # fixtures shared with test_irc_bridge

pytestmark = pytest.mark.timeout(240)

ALICE, BOB, CAROL, DAVE = (f"{n}@example.com" for n in ("alice", "bob", "carol", "dave"))
PASSWORD = "flood-test-pw"
FLOOD = 30_000
DELIVERY_BOUND = 20.0  # seconds: generous; a stalled bridge took minutes
PUT_BOUND = 10.0


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        for passport in (ALICE, BOB, CAROL, DAVE):
            server.add_account(passport, PASSWORD, nick=passport.split("@")[0].title())
        for a, b in ((ALICE, BOB), (CAROL, DAVE)):
            server.add_contact(a, b, ("FL", "AL"))
            server.add_contact(b, a, ("FL", "AL"))
        yield server


async def portal_with(
    synapse: SynapseServer, owner: MatrixUser, friend_: Client, passport: str
) -> str:
    """The owner's portal room with `friend_`, opened by a message from MSN."""
    assert (await friend_.conversation([passport]).send_text("hi from MSN")).ok
    room = await wait_invite(synapse, owner)
    await join(synapse, owner, room)
    ghost = ghost_id(synapse, friend_.config.passport)
    await wait_for_event(synapse, owner, room, is_message_from(ghost, "hi from MSN"))
    return room


async def matrix_to_msn(
    synapse: SynapseServer, user: MatrixUser, room: str, events: Recorder, tag: str
) -> float:
    """Sends a Matrix message; the seconds until the MSN friend got it."""
    text = f"through the flood ({tag})"
    sent = time.monotonic()
    await send_text(synapse, user, room, text)
    await events.wait_for(MessageReceived, lambda e: e.message.text == text, timeout=DELIVERY_BOUND)
    return time.monotonic() - sent


async def put_transaction(synapse: SynapseServer, name: str) -> float:
    """PUTs a transaction straight to the appservice; the seconds until it was answered."""
    url = f"{synapse.appservice.url}/_matrix/app/v1/transactions/flood-{name}-{os.getpid()}"
    headers = {"Authorization": f"Bearer {synapse.appservice.hs_token}"}
    event = {
        "type": "m.room.message",
        "room_id": f"!nowhere-{name}:{synapse.domain}",
        "sender": f"@someone:{synapse.domain}",
        "event_id": f"$flood-{name}-{os.getpid()}",
        "origin_server_ts": 0,
        "content": {"msgtype": "m.text", "body": "ping"},
    }
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PUT_BOUND * 3)) as session,
        session.put(url, json={"events": [event]}, headers=headers) as resp,
    ):
        assert resp.status == 200
    return time.monotonic() - started


def dropped(client: Client | None) -> int:
    return getattr(getattr(client, "stats", None), "stranger_presence", 0)


async def wait_for_dropped(client: Client | None, count: int, timeout: float = 30) -> None:
    """Until the client has read (and dropped) the whole flood; gives up quietly."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while dropped(client) < count:  # noqa: ASYNC110 - a counter, no event to wait on
                await asyncio.sleep(0.1)


def stranger_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "on none of the lists" in r.getMessage()]


async def test_flooded_owner_stalls_no_one_and_strangers_become_nothing(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole daemon with both sides, as in the field: the flooded owner (alice) is
    bridged to IRC, the other owner (carol) to Matrix."""
    caplog.set_level(logging.INFO)
    b = await synapse.register_user()
    port = free_port()
    config = bridge_config(
        **msn_settings(msn),
        metrics={"enabled": True, "listen_address": "127.0.0.1", "port": port},
        **{
            "bridge.permissions": {"*": "user", b.user_id: "user"},
            "irc": {
                "enabled": True,
                "server": {"host": ircd.host, "port": ircd.port},
                "bot": {"nick": "FloodBot"},
                "puppets": {"max_connections": 1},
            },
        },
    )
    dave, dave_events = await online_client(msn, DAVE, PASSWORD)
    stack.push_async_callback(dave.stop)
    async with running_bridge(config) as bridge:
        irc_owner = await RawClient.connect(ircd, "alicef")
        stack.push_async_callback(irc_owner.close)
        irc_owner.send(f"PRIVMSG FloodBot :login {ALICE} {PASSWORD}")
        await irc_owner.expect(lambda line: "Logged in to MSN" in line, 20)
        await matrix_login(synapse, b, CAROL, PASSWORD)
        room = await portal_with(synapse, b, dave, CAROL)

        flood = asyncio.get_running_loop().create_task(
            msn.flood_presence(ALICE, FLOOD, seconds=3.0)
        )
        try:
            # During the flood, and right after it (when a backlog would be largest),
            # another owner's Matrix message reaches MSN promptly, and the appservice
            # answers a transaction without waiting on MSN-side work.
            await asyncio.sleep(1.0)
            times = [await matrix_to_msn(synapse, b, room, dave_events, "during")]
            times.append(await put_transaction(synapse, "during"))
        finally:
            assert await flood == FLOOD
        times.append(await matrix_to_msn(synapse, b, room, dave_events, "after"))
        times.append(await put_transaction(synapse, "after"))
        assert times[0] < DELIVERY_BOUND and times[2] < DELIVERY_BOUND, times
        assert times[1] < PUT_BOUND and times[3] < PUT_BOUND, times

        await check_strangers_became_nothing(bridge, ALICE, caplog)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            exported = await resp.text()
        assert f"msnbridge_msn_stranger_presence_dropped_total {float(FLOOD)}" in exported


async def check_strangers_became_nothing(
    bridge: Bridge, passport: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert bridge.sessions is not None and bridge.db is not None
    (client,) = [c for c in bridge.sessions.all().values() if c.config.passport == passport]
    await wait_for_dropped(client, FLOOD)
    await asyncio.sleep(0.5)  # anything queued behind the flood gets its chance to run
    strangers = [p for p in client.contacts.contacts if p.startswith("stranger")]
    assert strangers == [], f"{len(strangers)} strangers became contacts"
    for table in ("ghosts", "contacts", "irc_nicks"):
        rows = await bridge.db.fetchval(
            f"SELECT COUNT(*) FROM {table} WHERE passport LIKE 'stranger%'"
        )
        assert rows == 0, f"{rows} strangers in {table}"
    assert bridge.puppet_stats.stranger_presence == FLOOD
    # Logged once per burst (the flood takes ~3 s; the throttle's interval is 60 s).
    assert len(stranger_lines(caplog)) == 1, stranger_lines(caplog)


# --- the IRC nick path ----------------------------------------------------------------------

EXTRA = [f"friend{i}@example.com" for i in range(6)]


@pytest.fixture
async def irc_msn() -> AsyncIterator[MSNPTestServer]:
    async with alice_and_bob((2, 12), ("pa", "pb")) as server:
        for passport in EXTRA:  # listed contacts, all online: more than the puppet cap
            server.add_account(passport, "px", nick=passport.split("@")[0].title())
            server.add_contact(ALICE, passport, ("FL", "AL"))
            server.add_contact(passport, ALICE, ("FL", "AL"))
            server.set_presence(passport, "NLN")
        yield server


async def test_irc_strangers_get_no_nick_and_the_cap_line_is_logged_once(
    tmp_path: Path,
    irc_msn: MSNPTestServer,
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bob, _ = await friend(stack, irc_msn, BOB, "pb")
    config = write_config(tmp_path, irc_msn, ircd, **{"puppets.max_connections": 1})
    async with running_side(config) as h:
        owner, _ = await login(stack, h, ircd, "alicef")
        assert h.side.puppets is not None
        async with asyncio.timeout(20):  # every listed contact has its puppet
            while len(h.side.puppets.puppets) < 1 + len(EXTRA):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        sent = await irc_msn.flood_presence(ALICE, FLOOD, seconds=3.0)
        assert sent == FLOOD
        (client,) = h.sessions.all().values()
        await wait_for_dropped(client, FLOOD)
        await asyncio.sleep(1.0)

        nicks = {r["passport"] for r in await h.sessions.db.fetch("SELECT passport FROM irc_nicks")}
        assert not [p for p in nicks if p.startswith("stranger")], len(nicks)
        assert not [p for p in h.side.puppets.puppets if p.startswith("stranger")]
        relayed = [r for r in caplog.records if "is relayed by the bot" in r.getMessage()]
        assert len(relayed) == 1, [r.getMessage() for r in relayed]
        assert len(stranger_lines(caplog)) == 1, stranger_lines(caplog)

        # The flooded owner still hears from a contact, promptly.
        assert (await bob.conversation([ALICE]).send_text("after the flood")).ok
        invite = await owner.expect(
            lambda line: command_of(line) == "INVITE" and "bob" in line, DELIVERY_BOUND
        )
        await owner.join(message_text(invite) if " :" in invite else invite.split()[-1])
        got = await owner.privmsgs(1, DELIVERY_BOUND)
        # Live from the contact's puppet, or replayed by the bot as "<Bob> …" (the catch-up
        # of lines held until the owner joined).
        assert message_text(got[0]).endswith("after the flood"), got
        await owner.close()
