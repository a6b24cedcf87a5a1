"""The IRC side on MSNP18: offline messages waiting at login show in the conversation
channel with the time they were written, and a message to an offline contact goes as an
offline message with its own notice (ngIRCd, the test server, the IRC side in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from msnbridge.irc.proof import NickProofs
from puppets.event.offline import OfflineMessageReceived
from tests.ircd import (
    IRCd,
    ircd_fixture,  # noqa: F401 (the ircd fixture)
    message_text,
)
from tests.msn_fixtures import irc_msn18_fixture  # noqa: F401 (the msn fixture)
from tests.msnp_server import MSNPTestServer
from tests.test_irc_bridge import (  # noqa: F401 - the stack fixture
    BOB,
    OWNER,
    friend,
    is_cmd,
    login,
    running_side,
    seen_or_expect,
    stack,
    write_config_18,
)


async def test_offline_messages_on_irc(
    tmp_path: Path,
    msn: MSNPTestServer,
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,  # noqa: F811
) -> None:
    written = time.time() - 3 * 3600
    msn.add_oim(OWNER, BOB, "left while you were out", written, nick="Bob")
    async with running_side(write_config_18(tmp_path, msn, ircd)) as h:
        owner, _contacts = await login(stack, h, ircd)
        # The offline message may come (and invite) while login() still reads its answer.
        invite = await seen_or_expect(owner, is_cmd("INVITE", "#msn-alice-bob"), 20)
        assert invite
        await owner.join("#msn-alice-bob")
        (line,) = await owner.privmsgs(1)
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(written))
        text = f"[{stamp} UTC] left while you were out"
        # From Bob's puppet, or (held until the owner joined) replayed by the bot as <Bob>.
        said = message_text(line).replace("\u200b", "")
        assert (line.startswith(":Bob[m]!") and said == text) or said == f"<Bob> {text}", line
        assert not msn.oims(OWNER)
        # Bob is offline (never signed in): a message to him is stored for him.
        owner.send("PRIVMSG #msn-alice-bob :see you tomorrow")
        notice = await owner.expect(is_cmd("NOTICE", "Sent as an offline message"), 40)
        assert "see you tomorrow" in notice
        assert [o.text for o in msn.oims(BOB)] == ["see you tomorrow"]
        # Bob signs in later and gets it.
        _bob, bob_events = await friend(stack, msn, BOB, "pb")
        got = await bob_events.wait_for(OfflineMessageReceived)
        assert (got.sender, got.text) == (OWNER, "see you tomorrow")
        await owner.close()


async def test_an_offline_message_before_the_login_is_proven_still_invites_the_owner(
    tmp_path: Path,
    msn: MSNPTestServer,
    ircd: IRCd,
    stack: contextlib.AsyncExitStack,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bot marks the nick as the login's owner after the login command (a WHOIS). An
    # offline message waiting at login can reach the IRC side first: its channel's INVITE
    # was withheld (the nick not proven yet) and, as seen on a loaded CI machine, never
    # sent. A slow WHOIS makes that order certain here.
    real_mark = NickProofs.mark

    async def slow_mark(self: NickProofs, identity: object) -> bool:
        await asyncio.sleep(2)
        return await real_mark(self, identity)  # type: ignore[arg-type]

    monkeypatch.setattr(NickProofs, "mark", slow_mark)
    msn.add_oim(OWNER, BOB, "waiting at login", time.time() - 60, nick="Bob")
    async with running_side(write_config_18(tmp_path, msn, ircd)) as h:
        owner, _contacts = await login(stack, h, ircd)
        invite = await seen_or_expect(owner, is_cmd("INVITE", "#msn-alice-bob"), 20)
        assert invite
        await owner.join("#msn-alice-bob")
        (line,) = await owner.privmsgs(1)
        assert "waiting at login" in message_text(line)
        await owner.close()
