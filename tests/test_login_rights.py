"""Who may see and keep an MSN login: a login is not restored for someone who lost their
`user` rights (they are told once, and `logout`/`status` stay theirs), and a stranger
cannot learn that a passport is bridged by trying it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from msnbridge.core.commands import CommandContext
from msnbridge.core.sessions import Sessions
from msnbridge.permissions import PermissionLevel
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    room_events,
    running_bridge,
    wait_for_event,
)
from tests.test_bot_commands import Bot, bot, max_version  # noqa: F401 (fixtures, on the msn below)
from tests.test_matrix_portals import ALICE, CAROL, PASSWORD, bot_id, log_in, msn, settings  # noqa: F401

WRONG = "Login failed: wrong passport or password."


async def say(bot: Bot, text: str, sender: str, level: str | None) -> str:  # noqa: F811
    replies: list[str] = []

    async def reply(message: str) -> None:
        replies.append(message)

    rights = PermissionLevel[level.upper()] if level is not None else None
    ctx = CommandContext(sender, False, reply, rights, room_id="!mgmt:example.com")
    await bot.processor.handle(ctx, text)
    return "\n".join(replies)


async def test_a_bridged_passport_answers_like_a_wrong_password(bot: Bot) -> None:  # noqa: F811
    assert "Logged in to MSN as alice@example.com" in await bot.say(f"login {ALICE} {PASSWORD}")
    # Another user trying alice's passport learns nothing without her password …
    stranger = "@mallory:example.com"
    assert WRONG in await bot.say(f"login {ALICE} guess", sender=stranger)
    # … and the answer is the one a wrong password for an unbridged passport gets.
    assert WRONG in await bot.say(f"login {CAROL} guess", sender="@eve:example.com")
    # With the right password, saying that it is taken is no leak.
    taken = await bot.say(f"login {ALICE} {PASSWORD}", sender=stranger)
    assert "bridged for someone else" in taken


async def test_a_bridged_passport_is_refused_no_faster_than_msn_refuses(bot: Bot) -> None:  # noqa: F811
    """The speed of the answer must not tell a stranger more than its words: MSN's own
    refusal of a wrong password takes round trips, a local one used to take a database
    lookup."""
    assert "Logged in" in await bot.say(f"login {ALICE} {PASSWORD}")
    sessions: Sessions = bot.router.sessions
    for attempt in range(3):  # refusals by MSN itself, which the bridge observes
        started = time.monotonic()
        assert WRONG in await bot.say(f"login {CAROL} guess{attempt}", sender="@eve:example.com")
        msn_took = time.monotonic() - started
    typical = sessions.refusals.typical()
    assert 0 < typical <= msn_took * 3
    started = time.monotonic()
    assert WRONG in await bot.say(f"login {ALICE} guess", sender="@mallory:example.com")
    local_took = time.monotonic() - started
    # At least 0.9x the median of MSN's refusals (the jitter's floor): not a lookup's speed.
    assert local_took >= 0.9 * typical, (local_took, typical)


async def test_logout_and_status_stay_with_the_login_owner_whatever_their_rights(
    bot: Bot,  # noqa: F811
) -> None:
    assert "Logged in" in await bot.say(f"login {ALICE} {PASSWORD}")
    owner = "@owner:example.com"
    for level in ("relay", None):
        reply = await say(bot, "status", owner, level)
        assert f"Logged in as {ALICE}" in reply, (level, reply)
    # Someone without a login still needs the rights.
    assert "needs user rights" in await say(bot, "status", "@r:example.com", "relay")
    assert "not allowed" in await say(bot, "logout", "@r:example.com", None)
    assert "contacts' needs user rights" in await say(bot, "contacts", owner, "relay")
    assert "password is forgotten" in await say(bot, "logout", owner, None)
    sessions: Sessions = bot.router.sessions
    assert sessions.get(owner) is None and await sessions.stored_login(owner) is None


async def test_a_login_whose_owner_lost_user_rights_is_not_restored(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    msn_server = msn
    owner = await synapse.register_user()
    key = secrets.token_urlsafe(32)
    base = {**settings(msn_server), "bridge.secret_key": key}
    async with running_bridge(bridge_config(**base)):
        management = await log_in(synapse, owner)
    assert msn_server.online_sessions(ALICE) == 0
    # The operator lowers the owner to relay rights and restarts.
    lowered = {**base, "bridge.permissions": {synapse.domain: "user", owner.user_id: "relay"}}
    told = is_notice_from(bot_id(synapse), "was not restored")
    for _ in range(2):
        async with running_bridge(bridge_config(**lowered)) as bridge:
            await wait_for_event(synapse, owner, management, told)
            sessions = bridge.sessions
            assert sessions is not None and sessions.get(owner.user_id) is None
            # Signed out for good: nothing stored is left to restore or to wipe.
            assert await sessions.stored_login(owner.user_id) is None
        assert msn_server.online_sessions(ALICE) == 0
    # Told once: the second start had nothing left to restore or to tell.
    notices = [e for e in await room_events(synapse, owner, management) if told(e)]
    assert len(notices) == 1, notices
    assert "password is forgotten" in notices[0]["content"]["body"]
