"""The core Router with recording sides (no Matrix, no IRC) and real MSN parties on the
MSNP test server: fan-out between sides, failures back to the origin, retry dedupe, and a
1:1 chat that becomes a group chat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msnbridge.config import load_config
from msnbridge.core.router import DUPLICATE, Router
from msnbridge.core.sessions import Sessions
from msnbridge.db import open_database
from msnbridge.formatting import MessageKind, RichText, Span
from puppets.event.conversation import DeliveryStatus, MessageReceived
from tests.core_fixtures import (
    ALICE,
    BOB,
    CAROL,
    OWNER,
    RecordingSide,
    three_friends_fixture,  # noqa: F401 (the msn fixture)
    until,
    write_offline_config,
)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def core(tmp_path: Path, msn: MSNPTestServer) -> AsyncIterator[Router]:
    path = tmp_path / "bridge.yaml"
    write_offline_config(path, msn)
    config = load_config(str(path))
    db = await open_database(config["database"])
    sessions = Sessions(config, db, _secrets(config), login_timeout=15)
    router = Router(sessions, db, relay_format="[{displayname}] {message}")
    try:
        await sessions.login(OWNER, "matrix", ALICE, "pw")
        yield router
    finally:
        await router.stop()
        await sessions.stop()
        await db.stop()


def _secrets(config):  # type: ignore[no-untyped-def]
    from msnbridge.secrets import SecretBox

    return SecretBox(config["bridge.secret_key"])


async def test_fan_out_failure_report_and_retry_dedupe(core: Router, msn: MSNPTestServer) -> None:
    matrix, irc = RecordingSide("matrix"), RecordingSide("irc")
    core.add_side(matrix)
    core.add_side(irc)
    bob, bob_events = await online_client(msn, BOB, "pw")
    try:
        portal = await core.open_portal(OWNER, [BOB])
        assert portal.room_id is not None and matrix.of("ensure") == [BOB]
        # From IRC, relayed for someone without a login: MSN gets the relay format, the
        # Matrix side gets the message with the name; the IRC side does not get it back.
        result = await core.send(portal, "irc", "line-1", "gus", RichText([Span("hi", bold=True)]))
        assert result.ok
        got = await bob_events.wait_for(MessageReceived)
        assert got.message.text == "[gus] hi"
        ((key, shown),) = matrix.of("message")  # type: ignore[misc]
        assert key == BOB and shown.display == "gus" and shown.sender is None
        assert shown.rich.plain() == "hi" and shown.origin_side == "irc"
        assert irc.of("message") == []
        # From Matrix: an event id sent twice (a retried transaction) goes out once.
        first = await core.send(portal, "matrix", "$abc", None, RichText.from_plain("once"))
        again = await core.send(portal, "matrix", "$abc", None, RichText.from_plain("once"))
        assert first.ok and again.reason == DUPLICATE
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "once")
        await asyncio.sleep(0.3)
        assert [e.message.text for e in bob_events.of(MessageReceived)].count("once") == 1
        # An emote becomes "* name text".
        await core.send(portal, "matrix", "$emote", None, RichText.from_plain("waves"),
                        MessageKind.EMOTE)  # fmt: skip
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "* Alice waves")
        # bob signs out: the next message fails and only its origin side hears of it.
        await bob.stop()
        await until(lambda: msn.online_sessions(BOB) == 0)
        await asyncio.sleep(0.3)
        failed = await core.send(portal, "matrix", "$lost", None, RichText.from_plain("gone?"))
        assert failed.status is DeliveryStatus.OFFLINE
        assert matrix.of("failed") == [("$lost", "gone?", DeliveryStatus.OFFLINE)]
        assert irc.of("failed") == []
    finally:
        await bob.stop()


async def test_one_to_one_chat_becomes_a_group_portal(core: Router, msn: MSNPTestServer) -> None:
    matrix = RecordingSide("matrix")
    core.add_side(matrix)
    bob, bob_events = await online_client(msn, BOB, "pw")
    carol, carol_events = await online_client(msn, CAROL, "pw")
    try:
        conv = bob.conversation([ALICE])
        assert (await conv.send_text("just us")).ok
        await until(lambda: any(k == BOB for k, _ in matrix.of("message")))  # type: ignore[misc]
        assert conv.switchboard is not None
        await conv.switchboard.invite(CAROL)
        group_key = f"{BOB},{CAROL}"
        await until(lambda: group_key in matrix.of("ensure"))
        await until(lambda: (group_key, CAROL) in matrix.of("joined"))
        assert (await conv.send_text("all of us")).ok
        await until(lambda: (group_key, "all of us") in
                    [(k, m.rich.plain()) for k, m in matrix.of("message")])  # type: ignore[misc]  # fmt: skip
        direct = await core.portals.get(OWNER, [BOB])
        group = await core.portals.get(OWNER, [BOB, CAROL])
        assert direct is not None and direct.is_direct
        assert group is not None and not group.is_direct and group.room_id != direct.room_id
        # The group portal talks to both; the 1:1 portal still only to bob.
        assert (await core.send(group, "matrix", None, None, RichText.from_plain("to both"))).ok
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "to both")
        await carol_events.wait_for(MessageReceived, lambda e: e.message.text == "to both")
        assert (await core.send(direct, "matrix", None, None, RichText.from_plain("bob only"))).ok
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "bob only")
        await asyncio.sleep(0.5)
        assert not any(e.message.text == "bob only" for e in carol_events.of(MessageReceived))
    finally:
        await bob.stop()
        await carol.stop()
