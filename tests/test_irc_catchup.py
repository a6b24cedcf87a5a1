"""The catch-up of a conversation channel (issue 10 item 20): what MSN said while the
owner was not in the channel is replayed when they join, in the order the bridge received
it across speakers (lines and nudges), and it is kept across a restart of the bridge.
Real ngIRCd, the MSNP test server, MSN friends as real clients, the IRC side in-process."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from puppets.event.conversation import MessageReceived
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
    CAROL,
    OWNER,
    Harness,
    friend,
    is_cmd,
    login,
    msn,  # noqa: F401  (fixture)
    raw,
    running_side,
    stack,  # noqa: F401  (fixture)
    write_config,
)

pytestmark = pytest.mark.timeout(90)

ZERO_WIDTH = "\u200b\u2060\u200c\u200d\ufeff"


def _plain(text: str) -> str:
    return "".join(c for c in text if c not in ZERO_WIDTH)


async def _held(h: Harness, channel: str, count: int) -> None:
    """Until the bridge holds ``count`` lines for the channel (or 2 s where the bridge
    keeps no catch-up it can tell about)."""
    catchup = getattr(h.side, "catchup", None)
    if catchup is None:
        await asyncio.sleep(2)
        return
    async with asyncio.timeout(15):
        while catchup.count(channel) < count:  # noqa: ASYNC110 - polled state
            await asyncio.sleep(0.05)


async def _catch_up(client: RawClient, channel: str, count: int) -> list[str]:
    """The next ``count`` lines said in ``channel`` (PRIVMSG and NOTICE) as "speaker:
    text" (by a puppet or by the bot for someone) or as the notice; the catch-up's own
    header and footer are left out."""
    said: list[str] = []
    while len(said) < count:
        line = await client.expect(
            lambda x: command_of(x) in ("PRIVMSG", "NOTICE") and f" {channel} :" in x, 15
        )
        text = _plain(message_text(line))
        if text.startswith(("Catch-up:", "End of the catch-up")):
            continue
        speaker = line.split("!", 1)[0].lstrip(":").removesuffix("[m]")
        if text.startswith("<") and "> " in text:  # said by the bot for someone
            speaker, text = text[1:].split("> ", 1)
        said.append(text if text.startswith("***") else f"{speaker}: {text}")
    return said


async def test_catch_up_is_in_order_across_speakers_and_survives_a_restart(
    tmp_path: Path,
    msn: MSNPTestServer,  # noqa: F811
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,  # noqa: F811
) -> None:
    bob, _ = await friend(stack, msn, BOB, "pb")
    carol, carol_events = await friend(stack, msn, CAROL, "pc")
    config = write_config(tmp_path, msn, ircd, **{"puppets.mode": "connections"})
    async with running_side(config) as h:
        owner, _ = await login(stack, h, ircd, "alicecu")
        # A group conversation the owner has not joined: everything in it is held.
        conv = bob.conversation([OWNER])
        assert (await conv.send_text("one to one first")).ok
        assert conv.switchboard is not None
        await conv.switchboard.invite(CAROL)
        async with asyncio.timeout(10):
            while not carol.conversations:  # noqa: ASYNC110 - she answers the invitation
                await asyncio.sleep(0.05)
        assert (await conv.send_text("b1")).ok
        invite = await owner.expect(is_cmd("INVITE", "#msn-alice-g"), 15)
        group = invite.split()[-1].lstrip(":")
        got = await carol_events.wait_for(MessageReceived, lambda e: e.message.text == "b1")
        assert got.conversation is not None
        carols = got.conversation
        assert (await carols.send_text("c1")).ok
        assert (await conv.send_text("b2")).ok
        assert (await conv.send_nudge()).ok
        assert (await carols.send_text("c2")).ok
        await _held(h, group, 5)

        owner.send(f"JOIN {group}")  # invited already (the group started)
        said = await _catch_up(owner, group, 5)
        assert said == ["Bob: b1", "Carol: c1", "Bob: b2", "*** Bob sent a nudge!", "Carol: c2"]

        # The owner leaves; two more lines wait, and the bridge restarts.
        owner.send(f"PART {group}")
        await owner.expect(is_cmd("PART", group), 5)
        assert (await conv.send_text("b3")).ok
        assert (await carols.send_text("c3")).ok
        await _held(h, group, 2)
        await owner.close()

    def is_invite(line: str) -> bool:
        return command_of(line) == "INVITE" and group in line

    async with running_side(config) as h:
        owner = await raw(stack, ircd, "alicecu")
        # A bare nick proves itself on its new connection, then asks for its channels.
        owner.send(f"PRIVMSG {h.bot_nick} :channels")
        asked = await owner.expect(lambda x: is_cmd("NOTICE", "password")(x) or is_invite(x), 10)
        if not is_invite(asked):
            owner.send(f"PRIVMSG {h.bot_nick} :pa")
            await owner.expect(is_invite, 10)
        owner.send(f"JOIN {group}")
        assert await _catch_up(owner, group, 2) == ["Bob: b3", "Carol: c3"]
        await owner.close()


async def test_a_one_to_one_message_stays_one_to_one_when_filed_after_a_third_joined(
    tmp_path: Path,
    msn: MSNPTestServer,  # noqa: F811
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,  # noqa: F811
) -> None:
    """Bob writes 1:1, then invites Carol; the bridge files the message only after it has
    read her JOI (its lane is held here, as a slow first delivery holds it). The message
    was said 1:1, so it belongs to the 1:1 channel, never to the group's catch-up."""
    bob, _ = await friend(stack, msn, BOB, "pb")
    carol, _ = await friend(stack, msn, CAROL, "pc")
    config = write_config(tmp_path, msn, ircd, **{"puppets.mode": "connections"})
    async with running_side(config) as h:
        owner, _ = await login(stack, h, ircd, "alicecu")
        (client,) = h.sessions.all().values()
        events = h.router.events
        handle, carol_seen = events.handle, asyncio.Event()

        async def held_until_carol_joined(who: str, event: object, started: float) -> None:
            if isinstance(event, MessageReceived):
                await carol_seen.wait()
            await handle(who, event, started)

        events.handle = held_until_carol_joined  # type: ignore[method-assign]
        conv = bob.conversation([OWNER])
        assert (await conv.send_text("one to one first")).ok
        assert conv.switchboard is not None
        await conv.switchboard.invite(CAROL)
        async with asyncio.timeout(10):
            while not any(CAROL in c.participants for c in client.conversations):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        carol_seen.set()
        async with asyncio.timeout(10):
            while not carol.conversations:  # noqa: ASYNC110 - she answered the invitation
                await asyncio.sleep(0.05)
        assert (await carol.conversations[0].send_text("c1")).ok
        invite = await owner.expect(is_cmd("INVITE", "#msn-alice-g"), 15)
        group = invite.split()[-1].lstrip(":")
        await _held(h, group, 1)
        await events.drain()
        owner.send(f"JOIN {group}")
        assert await _catch_up(owner, group, 1) == ["Carol: c1"]
        direct = next(line for line in owner.lines if is_cmd("INVITE", "#msn-alice-")(line))
        direct = direct.split()[-1].lstrip(":")
        assert direct != group
        owner.send(f"JOIN {direct}")
        assert await _catch_up(owner, direct, 1) == ["Bob: one to one first"]
        await owner.close()


async def test_the_catch_up_is_bounded_per_channel_and_reloaded_in_order(tmp_path: Path) -> None:
    """CatchUp against a real SQLite database: the oldest lines of a full channel are
    trimmed (and reported dropped), other channels are untouched, and what a new CatchUp
    loads is exactly what was kept, in order."""
    from msnbridge.db import open_database
    from msnbridge.irc.catchup import CatchUp

    url = f"sqlite:{tmp_path / 'bridge.db'}"
    db = await open_database(url)
    dropped: list[str] = []
    catchup = CatchUp(db, limit=5, on_dropped=lambda line: dropped.append(line.text))
    await catchup.load()
    for i in range(8):
        catchup.hold("#Full", "privmsg", "Bob" if i % 2 else "Carol", f"line {i}")
        if i == 3:
            catchup.hold("#other", "nudge", "Bob", "*** Bob sent a nudge!")
    assert dropped == ["line 0", "line 1", "line 2"]
    await catchup.close()
    await db.stop()

    db = await open_database(url)
    again = CatchUp(db, limit=5)
    await again.load()
    assert [line.text for line in again.take("#full")] == [f"line {i}" for i in range(3, 8)]
    assert [line.kind for line in again.take("#OTHER")] == ["nudge"]
    again.hold("#full", "privmsg", "Bob", "after the restart")  # numbering goes on
    await again.close()
    rows = await db.fetch("SELECT channel, seq, text FROM irc_backlog ORDER BY seq")
    assert [r["text"] for r in rows] == ["after the restart"]
    assert rows[0]["seq"] > 9
    await db.stop()
