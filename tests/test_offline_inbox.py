"""Offline messages (MSNP13+) in the core: taken into msn_inbox with their offline_seen mark
(the puppet's acknowledgement waits for that), delivered in order at their original time
to the 1:1 portal, removed once delivered, replayed after a kill, and never shown twice
when fetched again. A real SQLite database; the side records what reaches it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msnbridge.config import load_config
from msnbridge.core.router import Router
from msnbridge.db import msn_inbox, open_database
from msnbridge.db import offline as offline_db
from msnbridge.db import user as user_db
from msnbridge.db.msn_inbox import InboxEntry
from msnbridge.db.user import User
from puppets.event.offline import OfflineMessageReceived
from tests.core_fixtures import ALICE, BOB, OWNER, RecordingSide, write_offline_config
from tests.test_pools_proxy import PoolSessions

pytestmark = pytest.mark.timeout(60)
WRITTEN = round(time.time()) - 3600  # MSN gives whole seconds


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[tuple[Router, RecordingSide]]:
    path = tmp_path / "bridge.yaml"
    write_offline_config(path)
    config = load_config(str(path))
    db = await open_database(config["database"])
    await user_db.save(db, User(OWNER, "matrix", ALICE, state="logged_in"))
    router = Router(PoolSessions(config, {}), db)  # type: ignore[arg-type]
    side = RecordingSide("matrix")
    router.add_side(side)
    try:
        yield router, side
    finally:
        await router.events.drain()
        await router.stop()
        await db.stop()


def oims(*texts: str) -> list[OfflineMessageReceived]:
    return [
        OfflineMessageReceived(f"ID-{text}", BOB, "Bob", text, WRITTEN + 60 * n)
        for n, text in enumerate(texts)
    ]


def delivered(side: RecordingSide) -> list[tuple[str, str, float | None]]:
    return [(key, m.rich.plain(), m.sent_at) for key, m in side.of("message")]


async def inbox(router: Router) -> list[str]:
    return [e.text for e in await msn_inbox.get_all(router.db)]


async def test_taken_into_the_inbox_delivered_in_order_and_once(
    core: tuple[Router, RecordingSide],
) -> None:
    router, side = core
    events = oims("one", "two\r\nlines")
    for event in events:
        router.events.on_puppet_event(OWNER, event)
    await router.events.offline_taken(OWNER, events)  # returns: both are stored
    assert await offline_db.seen(router.db, OWNER) == {"ID-one", "ID-two\r\nlines"}
    await router.events.drain()
    assert delivered(side) == [(BOB, "one", WRITTEN), (BOB, "two\nlines", WRITTEN + 60)]
    txn_ids = [m.txn_id for _, m in side.of("message")]
    assert all(t and t.startswith("oim:") for t in txn_ids) and len(set(txn_ids)) == 2
    assert await inbox(router) == []  # removed once delivered
    # Fetched again (the server's delete was lost, or a pool restarted): taken, not shown.
    for event in events:
        router.events.on_puppet_event(OWNER, event)
    await router.events.offline_taken(OWNER, events)
    await router.events.drain()
    assert len(side.of("message")) == 2
    assert await inbox(router) == []


async def test_replayed_at_start_in_order_at_their_time(
    core: tuple[Router, RecordingSide],
) -> None:
    """What a killed bridge had taken (in the inbox, marked seen) is delivered at start."""
    router, side = core
    entries = [
        InboxEntry(f"oim:{n}", OWNER, BOB, BOB, "Bob", text, "", oim_id=f"ID-{text}",
                   sent_at=round((WRITTEN + 60 * n) * 1000))
        for n, text in enumerate(["first", "second", "third"])
    ]  # fmt: skip
    for entry in reversed(entries):  # the receipt order (seq) counts, not the rows' order
        assert await msn_inbox.add_offline(router.db, entry)
    assert await router.events.replay_inbox() == 3
    await router.events.drain()
    assert delivered(side) == [
        (BOB, "first", WRITTEN), (BOB, "second", WRITTEN + 60), (BOB, "third", WRITTEN + 120)
    ]  # fmt: skip
    assert [m.txn_id for _, m in side.of("message")] == ["oim:0", "oim:1", "oim:2"]
    assert await inbox(router) == []
    # A fetch after the restart (the server kept them) shows none of them again.
    again = oims("first", "second", "third")
    for event in again:
        router.events.on_puppet_event(OWNER, event)
    await router.events.offline_taken(OWNER, again)
    await router.events.drain()
    assert len(side.of("message")) == 3


async def test_not_taken_while_stopping(core: tuple[Router, RecordingSide]) -> None:
    router, _side = core
    await router.events.stop()
    events = oims("too late")
    for event in events:
        router.events.on_puppet_event(OWNER, event)
    with pytest.raises(RuntimeError, match="not taken"):
        await router.events.offline_taken(OWNER, events)  # left on the MSN server
    assert await offline_db.seen(router.db, OWNER) == set()


async def test_a_failed_write_is_not_acknowledged_but_shown_once(
    core: tuple[Router, RecordingSide],
) -> None:
    """The inbox cannot be written: the puppet is told (the message stays on the MSN
    server), the message is shown anyway and marked seen, so the next fetch, which
    brings it again, is acknowledged without showing it twice."""
    router, side = core
    await router.db.execute("DROP TABLE msn_inbox")
    events = oims("no inbox")
    for event in events:
        router.events.on_puppet_event(OWNER, event)
    with pytest.raises(Exception, match="msn_inbox"):
        await router.events.offline_taken(OWNER, events)
    await router.events.drain()
    assert delivered(side) == [(BOB, "no inbox", WRITTEN)]
    assert await offline_db.seen(router.db, OWNER) == {"ID-no inbox"}
    for event in events:
        router.events.on_puppet_event(OWNER, event)
    await router.events.offline_taken(OWNER, events)
    await router.events.drain()
    assert len(side.of("message")) == 1
