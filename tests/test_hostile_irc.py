"""Hostile values from MSN reaching IRC (a real ngIRCd, the MSNP test server, the IRC side
in-process as in tests/test_irc_bridge.py): CR/LF, NUL and control characters in messages
and nicks never become IRC commands of their own, and the bridge keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from puppets.event.conversation import MessageReceived
from tests import test_irc_bridge
from tests.ircd import IRCd, command_of, ircd_fixture, message_text
from tests.msnp_server import MSNPTestServer
from tests.test_irc_bridge import (
    BOB,
    OWNER,
    friend,
    is_cmd,
    login,
    raw,
    running_side,
    write_config,
)

# The IRC bridge tests' fixtures: the MSNP test server, ngIRCd (module-wide), cleanup.
msn = test_irc_bridge.msn
ircd = ircd_fixture
stack = test_irc_bridge.stack


def msg(body: bytes) -> bytes:
    return b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + body


async def test_msn_control_characters_never_become_irc_commands(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, bob_events = await friend(stack, msn, BOB, "pb")
    victim = await raw(stack, ircd, "victim")
    await victim.join("#victim")
    async with running_side(write_config(tmp_path, msn, ircd)) as h:
        owner, _ = await login(stack, h, ircd, "alice9")
        msn.set_nick(BOB, "Bob\r\nJOIN #victim\r\nQUIT :evil\x00")
        assert (await bob.conversation([OWNER]).send_text("hello")).ok
        await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 10)
        await owner.join("#msn-alice-bob")
        await owner.expect(is_cmd("PRIVMSG", "hello"), 10)
        sb = bob.conversation([OWNER]).switchboard
        assert sb is not None
        hostile = b"one\r\nPRIVMSG #victim :injected\rQUIT :hostile-quit\x00two\x07\x1b[31m end"
        assert (await sb.post([msg(hostile)], "A").result()).ok
        assert (await bob.conversation([OWNER]).send_text("after")).ok
        await owner.expect(is_cmd("PRIVMSG", "after"), 10)
        shown = [
            message_text(line)
            for line in owner.lines
            if command_of(line) == "PRIVMSG" and "#msn-alice-bob" in line
        ]
        joined = "\n".join(shown)
        assert "one" in joined and "injected" in joined and "end" in joined
        for text in shown:
            assert not any(ord(c) < 0x20 and c != "\x02" for c in text), repr(text)
        # Nothing reached the victim's channel, and nobody quit with the hostile text.
        await asyncio.sleep(0.5)
        with contextlib.suppress(TimeoutError):
            while True:
                await victim.readline(0.2)
        intruding = [
            x
            for x in victim.lines
            if command_of(x) in ("PRIVMSG", "JOIN") and not x.startswith(":victim!")
        ]
        assert intruding == []
        quits = [x for x in owner.lines if command_of(x) == "QUIT"]
        assert not any("evil" in x or "hostile-quit" in x for x in quits), quits
        # The bridge still serves: IRC → MSN works.
        owner.send("PRIVMSG #msn-alice-bob :still here")
        got = await bob_events.wait_for(MessageReceived, lambda e: "still here" in e.message.text)
        assert got.message.text == "still here"
        await owner.close()
