"""Issue 11 item 11 on IRC (ngIRCd, the test server at MSNP18, the IRC side in-process):
what an IRC owner writes from their own Messenger (a second endpoint of the same MSN
account) shows in the conversation channel under the owner's IRC nick, marked as sent
from their other Messenger, once, and is not sent back to MSN."""

from __future__ import annotations

import contextlib
from pathlib import Path

from puppets.event.conversation import MessageReceived
from tests.ircd import (
    IRCd,
    ircd_fixture,  # noqa: F401 (the ircd fixture)
    message_text,
)
from tests.msn_fixtures import irc_msn18_fixture  # noqa: F401 (the msn fixture)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client
from tests.test_irc_bridge import (  # noqa: F401 - the stack fixture
    BOB,
    OWNER,
    friend,
    is_cmd,
    login,
    running_side,
    stack,
    write_config_18,
)
from tests.test_matrix_portals import until

MESSENGER_GUID = "{11111111-2222-3333-4444-777777777777}"


async def test_own_message_from_another_messenger_on_irc(
    tmp_path: Path,
    msn: MSNPTestServer,
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,  # noqa: F811
) -> None:
    path = write_config_18(tmp_path, msn, ircd)
    async with running_side(path) as h:
        owner, _contacts = await login(stack, h, ircd, nick="alicia")
        messenger, m_rec = await online_client(msn, OWNER, "pa", machine_guid=MESSENGER_GUID)
        stack.push_async_callback(messenger.stop)
        client = h.sessions.get("irc:nick:alicia")
        assert client is not None
        await until(lambda: MESSENGER_GUID.lower() in client.own_endpoints)
        bob, bob_rec = await friend(stack, msn, BOB, "pb")
        assert (await bob.conversation([OWNER]).send_text("are you there?")).ok
        await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 15)
        await owner.join("#msn-alice-bob")
        await owner.expect(lambda line: "are you there?" in line, 15)
        await m_rec.wait_for(MessageReceived, lambda e: e.message.text == "are you there?")
        assert (await messenger.conversation([BOB]).send_text("yes, typing here")).ok
        line = await owner.expect(lambda line: "yes, typing here" in line, 15)
        assert line.startswith(f":{h.bot_nick}!")
        # (The bot breaks relayed names with a zero-width space: no one is highlighted.)
        shown = message_text(line).replace("\u200b", "")
        assert shown == "<alicia (from another Messenger)> yes, typing here"
        # Not sent to MSN again: bob has it once, then the owner's next line from IRC.
        owner.send("PRIVMSG #msn-alice-bob :and from IRC")
        await bob_rec.wait_for(MessageReceived, lambda e: e.message.text == "and from IRC")
        got = [e.message.text for e in bob_rec.of(MessageReceived)]
        assert got.count("yes, typing here") == 1
        assert sum("yes, typing here" in seen for seen in owner.lines) == 1
        await owner.close()
