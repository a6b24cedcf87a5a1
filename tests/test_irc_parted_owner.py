"""An IRC owner who parted a conversation channel is not left at a dead end (issue 10
item 1, IRC part): the next message from MSN, or ``chat <passport>``, invites them again,
and a message nobody can read yet is not counted delivered until it is shown. Real
ngIRCd, the MSNP test server, Bob as a real MSN client, the IRC side in-process."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from msnbridge.metrics import Metrics
from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    ircd_fixture,  # noqa: F401 (the ircd fixture)
    message_text,
)
from tests.msnp_server import MSNPTestServer
from tests.test_irc_bridge import (
    BOB,
    OWNER,
    friend,
    is_cmd,
    login,
    msn,  # noqa: F401  (fixture)
    running_side,
    stack,  # noqa: F401  (fixture)
    write_config,
)

pytestmark = pytest.mark.timeout(90)

CHANNEL = "#msn-alice-bob"


def delivered(metrics: Metrics) -> float:
    labels = {"direction": "msn_to_irc", "result": "delivered"}
    return metrics.registry.get_sample_value("msnbridge_messages_total", labels) or 0.0


async def said(client: RawClient, text: str) -> str:
    line = await client.expect(lambda x: command_of(x) == "PRIVMSG" and text in x, 15)
    return message_text(line)


async def part(client: RawClient) -> None:
    client.send(f"PART {CHANNEL}")
    await client.expect(is_cmd("PART", CHANNEL), 5)


async def test_a_parted_owner_is_invited_again_and_nothing_unread_counts_delivered(
    tmp_path: Path,
    msn: MSNPTestServer,  # noqa: F811
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,  # noqa: F811
) -> None:
    bob, _ = await friend(stack, msn, BOB, "pb")
    async with running_side(write_config(tmp_path, msn, ircd)) as h:
        metrics = h.router.metrics = Metrics(process=False)
        owner, _ = await login(stack, h, ircd, "alicep")
        conv = bob.conversation([OWNER])

        assert (await conv.send_text("first")).ok
        await owner.expect(is_cmd("INVITE", CHANNEL), 10)
        assert delivered(metrics) == 0  # nobody has read it yet
        await owner.join(CHANNEL)
        await said(owner, "first")
        assert delivered(metrics) == 1

        # The owner leaves; Bob writes at once: the owner is invited again.
        await part(owner)
        assert (await conv.send_text("after part")).ok
        await owner.expect(is_cmd("INVITE", CHANNEL), 10)
        assert delivered(metrics) == 1
        await owner.join(CHANNEL)
        assert "after part" in await said(owner, "after part")
        assert delivered(metrics) == 2

        # Left again: asking for the conversation invites too.
        await part(owner)
        owner.send(f"PRIVMSG {h.bot_nick} :chat {BOB}")
        await owner.expect(is_cmd("INVITE", CHANNEL), 10)
        await owner.join(CHANNEL)
        assert (await conv.send_text("live")).ok
        assert "live" in await said(owner, "live")
        assert delivered(metrics) == 3
        await owner.close()
