"""Portals of a Matrix owner on IRC: the whole Bridge (real Synapse, ngIRCd, the MSNP test
server) with both sides. The owner talks to bob from Matrix; the conversation gets an
invite-only IRC channel; the owner lets an IRC user in with `irc allow <nick>` in the
Matrix room; that user then reads bob and the owner and is relayed to both."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from puppets.event.conversation import MessageReceived
from puppets.message import TextFormat
from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    fresh_ircd_fixture,  # noqa: F401 (the ircd fixture)
    message_text,
)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client
from tests.synapse_server import (
    SynapseServer,
    create_dm,
    is_membership,
    is_notice_from,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    bot_id,
    ghost_id,
    is_message_from,
    join,
    until,
    wait_invite,
)

pytestmark = pytest.mark.timeout(90)

PASSWORD = "correct horse"
ALICE, BOB = "alice@example.com", "bob@example.com"
CHANNEL = "#msn-alice-bob"


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        server.add_account(ALICE, PASSWORD, nick="Alice")
        server.add_account(BOB, PASSWORD, nick="Bob")
        server.add_contact(ALICE, BOB, ("FL", "AL"))
        server.add_contact(BOB, ALICE, ("FL", "AL"))
        yield server


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as exits:
        yield exits


def overrides(synapse: SynapseServer, msn: MSNPTestServer, ircd: IRCd) -> dict[str, Any]:
    return {
        "bridge.permissions": {"*": "user", synapse.domain: "user"},
        "msn": {
            "dispatch_host": msn.host,
            "dispatch_port": msn.dispatch_port,
            "nexus_url": msn.nexus_url,
            "verify_tls": False,
        },
        "irc": {
            "enabled": True,
            "server": {"host": ircd.host, "port": ircd.port},
            "bot": {"nick": "PortalBot"},
            "reconnect": {"initial_backoff": 0.3, "max_backoff": 1.0},
            "limits": {"lines_per_second": 50, "burst": 50},
            "relay": {"merge_seconds": 0.3},
        },
    }


def is_cmd(cmd: str, *words: str) -> Callable[[str], bool]:
    return lambda line: command_of(line) == cmd and all(w in line for w in words)


async def irc_user(stack: contextlib.AsyncExitStack, ircd: IRCd, nick: str) -> RawClient:
    client = await RawClient.connect(ircd, nick)
    stack.push_async_callback(client.close)
    return client


async def test_matrix_owner_allows_an_irc_user_who_reaches_msn_and_matrix(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,
) -> None:
    config = bridge_config(**overrides(synapse, msn, ircd))
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    bob, bob_events = await online_client(msn, BOB, PASSWORD)
    stack.push_async_callback(bob.stop)

    async with running_bridge(config) as bridge:
        management = await create_dm(synapse, owner, bot)
        await wait_for_event(synapse, owner, management, is_membership(bot, "join"))
        await send_text(synapse, owner, management, f"login {ALICE} {PASSWORD}")
        await wait_for_event(synapse, owner, management, is_notice_from(bot, "Logged in to MSN"))

        # Bob writes first: the Matrix room appears, and so does the IRC channel, where
        # nobody may read yet (the message waits).
        assert (await bob.conversation([ALICE]).send_text("before irc", TextFormat())).ok
        room = await wait_invite(synapse, owner)
        await join(synapse, owner, room)
        await wait_for_event(
            synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "before irc")
        )
        portal = await bridge.router.portals.by_room(room)
        assert portal is not None and portal.irc_channel == CHANNEL

        # Not allowed: the channel is invite-only.
        guest = await irc_user(stack, ircd, "guest")
        intruder = await irc_user(stack, ircd, "intruder")
        guest.send(f"JOIN {CHANNEL}")
        await guest.expect(lambda line: command_of(line) == "473")

        # The Matrix owner allows guest from the portal room; the reply names the channel.
        await send_text(synapse, owner, room, "!msn irc allow guest")
        await wait_for_event(synapse, owner, room, is_notice_from(bot, f"guest may join {CHANNEL}"))
        await guest.expect(is_cmd("INVITE", CHANNEL), 10)
        await guest.join(CHANNEL)
        held = await guest.expect(is_cmd("PRIVMSG", CHANNEL, "before irc"), 10)
        assert held.startswith(":PortalBot!")  # the catch-up is said by the bot, in order

        # The owner's Matrix messages are shown on IRC as <Alice> text (and reach bob).
        await send_text(synapse, owner, room, "hello from matrix")
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "hello from matrix")
        shown = await guest.expect(is_cmd("PRIVMSG", CHANNEL, "hello from matrix"), 10)
        assert message_text(shown).startswith("<Al") and shown.startswith(":PortalBot!")

        # The guest's lines go to bob through alice's session (P4-Context) and to Matrix.
        guest.send(f"PRIVMSG {CHANNEL} :hello from irc")
        got = await bob_events.wait_for(
            MessageReceived, lambda e: "hello from irc" in e.message.text
        )
        assert got.message.text == "<guest> hello from irc" and got.message.context == "guest"
        assert got.sender == ALICE
        await wait_for_event(synapse, owner, room, is_message_from(bot, "<guest> hello from irc"))

        # Bob's answer reaches the guest live.
        await bob.conversation([ALICE]).send_text("hi guest", TextFormat())
        await guest.expect(is_cmd("PRIVMSG", CHANNEL, "hi guest"), 10)

        # The IRC-only commands are in `help` as seen from IRC.
        guest.send("PRIVMSG PortalBot :help")
        await guest.expect(is_cmd("NOTICE", "allow <nick>"), 10)
        await guest.close()

    # A restart keeps the allow list: the channel comes back +i, with guest allowed.
    async with running_bridge(config) as bridge:
        assert bridge.irc is not None
        channel = bridge.irc.channels[CHANNEL.lower()]
        assert channel.allowed == {"guest"}
        await until(lambda: CHANNEL.lower() in bridge.irc.bot.joined)  # type: ignore[union-attr]
        await send_text(synapse, owner, room, "!msn irc channel")
        await wait_for_event(synapse, owner, room, is_notice_from(bot, "Allowed IRC users: guest"))
        intruder.send(f"JOIN {CHANNEL}")
        await intruder.expect(lambda line: command_of(line) == "473")
        # guest comes back and joins without asking: an invite exception (+I) lets them in.
        back = await irc_user(stack, ircd, "guest")
        await back.join(CHANNEL)
        back.send("PRIVMSG PortalBot :channels")
        await back.expect(is_cmd("NOTICE", "Channels you are allowed in", CHANNEL), 10)
        await until(lambda: bridge.sessions.get(owner.user_id) is not None)  # type: ignore[union-attr]
        await send_text(synapse, owner, room, "after restart")
        await back.expect(is_cmd("PRIVMSG", CHANNEL, "after restart"), 20)

        # Disallowed: kicked out, and kept out.
        await send_text(synapse, owner, room, "!msn irc disallow guest")
        await back.expect(is_cmd("KICK", CHANNEL, "guest"), 10)
        back.send(f"JOIN {CHANNEL}")
        await back.expect(lambda line: command_of(line) == "473")
        assert bridge.irc.channels[CHANNEL.lower()].allowed == set()
