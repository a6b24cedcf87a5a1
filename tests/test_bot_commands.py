"""The core bot commands (contacts, lists, groups, profile, chat, sessions) against the MSNP
test server, through the real Sessions and Router; no side is needed to answer commands."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from msnbridge.config import load_config
from msnbridge.core.account_commands import register_account_commands
from msnbridge.core.commands import CommandContext, CommandProcessor
from msnbridge.core.contact_commands import register_contact_commands
from msnbridge.core.portal_commands import register_portal_commands
from msnbridge.core.router import Router
from msnbridge.core.sessions import Sessions
from msnbridge.db import open_database
from msnbridge.permissions import PermissionLevel
from msnbridge.secrets import SecretBox
from puppets import Lists
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

pytestmark = pytest.mark.timeout(60)
OWNER = "@owner:example.com"
ALICE, BOB, DAVE = "alice@example.com", "bob@example.com", "dave@example.com"


@dataclass
class Bot:
    processor: CommandProcessor
    router: Router
    replies: list[str] = field(default_factory=list)

    async def say(self, text: str, *, admin: bool = False, sender: str = OWNER) -> str:
        async def reply(message: str) -> None:
            self.replies.append(message)

        level = PermissionLevel.ADMIN if admin else PermissionLevel.USER
        ctx = CommandContext(sender, admin, reply, level, room_id="!mgmt:example.com")
        before = len(self.replies)
        await self.processor.handle(ctx, text)
        return "\n".join(self.replies[before:])


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        server.add_account(ALICE, "pw", nick="Alice")
        server.add_account(BOB, "pw", nick="Bob")
        server.add_account(DAVE, "pw", nick="Dave")
        server.add_contact(ALICE, BOB, ("FL", "AL"), groups=("Friends",))
        server.add_contact(BOB, ALICE, ("FL", "AL"))
        yield server


@pytest.fixture
def max_version() -> int:
    """The highest MSNP version the bridge offers (a test parametrizes it to override)."""
    return 12


@pytest.fixture
async def bot(tmp_path: Path, msn: MSNPTestServer, max_version: int) -> AsyncIterator[Bot]:
    config_path = tmp_path / "bridge.yaml"
    config_path.write_text(
        json.dumps(
            {
                "homeserver": {"address": "http://127.0.0.1:9", "domain": "example.com"},
                "appservice": {"as_token": "x", "hs_token": "y"},
                "bridge": {"permissions": {"*": "user"}, "secret_key": secrets.token_urlsafe(32)},
                "database": f"sqlite:{tmp_path / 'bridge.db'}",
                "msn": {
                    "dispatch_host": msn.host,
                    "dispatch_port": msn.dispatch_port,
                    "nexus_url": msn.nexus_url,
                    "verify_tls": False,
                    "max_version": max_version,
                },
                "logging": {"version": 1},
            }
        )
    )
    config = load_config(str(config_path))
    db = await open_database(config["database"])
    sessions = Sessions(config, db, SecretBox(config["bridge.secret_key"]), login_timeout=15)
    router = Router(sessions, db)
    processor = CommandProcessor()
    register_account_commands(processor, sessions)
    register_contact_commands(processor, router)
    register_portal_commands(processor, router)
    try:
        yield Bot(processor, router)
    finally:
        await router.stop()
        await sessions.stop()
        await db.stop()


async def until(condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_commands_need_a_login(bot: Bot) -> None:
    assert "not logged in" in await bot.say("contacts")
    assert "not logged in" in await bot.say("chat bob@example.com")
    assert await bot.say("presence sleepy") == (
        "Usage: presence <online|away|busy|brb|phone|lunch|idle|hidden>"
    )


async def test_contact_list_profile_and_groups(bot: Bot, msn: MSNPTestServer) -> None:
    assert "Logged in to MSN as alice@example.com" in await bot.say(f"login {ALICE} pw")
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        client = bot.router.sessions.get(OWNER)
        assert client is not None
        await until(
            lambda: client.contacts.get(BOB) is not None and client.contacts.get(BOB).online
        )
        listing = await bot.say("contacts")
        assert "Contacts (1 of 1 online):" in listing
        assert "bob@example.com (Bob): online in Friends" in listing

        assert "Added dave@example.com" in await bot.say("add dave@example.com Friends")
        assert DAVE in msn.account(ALICE).lists["FL"]
        assert "Blocked dave@example.com" in await bot.say("block dave@example.com")
        assert DAVE in msn.account(ALICE).lists["BL"]
        assert "Unblocked" in await bot.say("unblock dave@example.com")
        assert DAVE not in msn.account(ALICE).lists["BL"]
        assert "Removed" in await bot.say("remove dave@example.com")
        assert DAVE not in msn.account(ALICE).lists["FL"]
        # The MSNP error is explained, not just numbered.
        answer = await bot.say("add nobody@nowhere.invalid")
        assert "error 205" in answer and "Could not add nobody@nowhere.invalid" in answer

        assert "Created group 'Work'" in await bot.say("group create Work")
        listing = await bot.say("groups")
        assert "Work (0 contacts)" in listing and "Friends (1 contact)" in listing
        assert "Renamed group 'Work' to 'Office'" in await bot.say("group rename Work to Office")
        assert "Deleted group 'Office'" in await bot.say("group delete Office")
        assert "There is no group 'Nope'" in await bot.say("group delete Nope")

        assert "nickname is now 'Alice W.'" in await bot.say("nick Alice W.")
        await until(lambda: msn.account(ALICE).nick == "Alice W.")
        assert "status is now busy" in await bot.say("presence busy")
        await until(lambda: msn.account(ALICE).status == "BSY")
        assert "Personal message set" in await bot.say("psm at work")
        await until(lambda: b"at work" in msn.account(ALICE).psm)

        assert "Your conversation with bob@example.com is open." in await bot.say(
            "chat bob@example.com"
        )
        portal = await bot.router.portals.get(OWNER, [BOB])
        assert portal is not None and portal.is_direct
        assert "needs admin rights" in await bot.say("sessions")
        listing = await bot.say("sessions", admin=True)
        assert f"{OWNER}: {ALICE} online MSNP" in listing
        assert listing.startswith("1 MSN session:"), listing
    finally:
        await bob.stop()


async def test_accept_someone_who_added_you(bot: Bot, msn: MSNPTestServer) -> None:
    await bot.say(f"login {ALICE} pw")
    dave, _ = await online_client(msn, DAVE, "pw")
    try:
        await dave.add_contact(ALICE)
        client = bot.router.sessions.get(OWNER)
        assert client is not None
        await until(
            lambda: client.contacts.get(DAVE) is not None and client.contacts.get(DAVE).on(Lists.RL)
        )
        assert "Waiting for your answer: dave@example.com" in await bot.say("contacts")
        assert "Accepted dave@example.com" in await bot.say("accept dave@example.com")
        assert DAVE in msn.account(ALICE).lists["FL"] and DAVE in msn.account(ALICE).lists["AL"]
    finally:
        await dave.stop()


@pytest.mark.parametrize("max_version", [9, 12])
async def test_removing_someone_not_on_the_list_says_so(bot: Bot, max_version: int) -> None:
    """MSNP9 asks the server (REM answers 216); MSNP12 knows no GUID for them (216 too)."""
    await bot.say(f"login {ALICE} pw")
    answer = await bot.say("remove bob@nosuch.example")
    assert answer == (
        "Could not remove bob@nosuch.example: the MSN server answered error 216: "
        "user not on the list."
    ), answer


async def test_status_names_the_negotiated_msnp_version(bot: Bot) -> None:
    await bot.say(f"login {ALICE} pw")
    assert await bot.say("status") == f"Logged in as {ALICE}: online, MSNP12."


@pytest.mark.parametrize("max_version", [9, 12])
async def test_remove_from_a_group_says_it_only_left_the_group(
    bot: Bot, msn: MSNPTestServer, max_version: int
) -> None:
    await bot.say(f"login {ALICE} pw")
    assert "Created group 'Office'" in await bot.say("group create Office")
    assert await bot.say(f"add {BOB} Office") == f"Put {BOB} into the group 'Office'."
    assert await bot.say(f"remove {BOB} Office") == (
        f"Took {BOB} out of the group 'Office'; they stay in your contacts."
    )
    assert BOB in msn.account(ALICE).lists["FL"]
    assert "in Friends" in await bot.say("contacts")
    assert await bot.say(f"remove {BOB}") == f"Removed {BOB} from your contacts."
    assert BOB not in msn.account(ALICE).lists["FL"]
    assert await bot.say(f"add {DAVE} Office") == (
        f"Added {DAVE} to your contacts, in the group 'Office'."
    )


async def test_help_shows_admin_commands_only_to_admins(bot: Bot) -> None:
    user_help = await bot.say("help")
    assert "sessions" not in user_help and "status" in user_help
    admin_help = await bot.say("help", admin=True)
    assert "Admin commands:\n  sessions" in admin_help, admin_help


async def test_a_failed_login_is_logged_without_the_password(
    bot: Bot, msn: MSNPTestServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    log_file = tmp_path / "bridge.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger("msnbridge").addHandler(handler)
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng pässword&%"
    try:
        assert "Login failed: wrong passport or password" in await bot.say(f"login {ALICE} {wrong}")
    finally:
        logging.getLogger("msnbridge").removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert f"{OWNER} could not log in to MSN as {ALICE}: wrong passport or password" in text
    everything = text + "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in (wrong, quote(wrong), quote(wrong, safe="")):
        assert secret not in everything


@pytest.mark.parametrize("max_version", [9, 12])
async def test_a_removed_and_added_again_contact_keeps_their_nickname(
    bot: Bot, msn: MSNPTestServer, max_version: int
) -> None:
    """bob is offline: no NLN brings his nick after the ADD/ADC, so what the bridge sends
    (and the server keeps for the next login) is all there is."""
    await bot.say(f"login {ALICE} pw")
    assert f"{BOB} (Bob): offline" in await bot.say("contacts")
    assert await bot.say(f"remove {BOB}") == f"Removed {BOB} from your contacts."
    assert await bot.say(f"add {BOB}") == f"Added {BOB} to your contacts."
    assert f"{BOB} (Bob): offline" in await bot.say("contacts")
    assert msn.account(ALICE).contacts[BOB].nick == "Bob"
    # The next login lists him with his nickname too.
    await bot.say("logout")
    await bot.say(f"login {ALICE} pw")
    assert f"{BOB} (Bob): offline" in await bot.say("contacts")
