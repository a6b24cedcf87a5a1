"""A session held in a pool, seen from the core: a real puppets.Client on the MSNP test
server ↔ SessionExecutor ↔ the in-memory link ↔ RemoteClient, and the core's own
Router and MsnEventRouter driving the RemoteClient as they drive a Client in-process.

The Redis link and RemoteSessions (tests/test_pools_*.py of the pool process) replace the
memory link and the small `PoolSessions` stand-in here; the core code paths are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from msnbridge.config import load_config
from msnbridge.core.contact_commands import describe_error
from msnbridge.core.router import Router
from msnbridge.core.sides import ContactChange
from msnbridge.db import open_database
from msnbridge.db import user as user_db
from msnbridge.db.user import User
from msnbridge.formatting import RichText
from msnbridge.pools.executor import SessionExecutor
from msnbridge.pools.link import CommandFailed, Envelope
from msnbridge.pools.memory_link import MemoryDoneStore, MemoryLink
from msnbridge.pools.remote_client import (
    RemoteClient,
    RemoteConversation,
    RemoteSwitchboard,
    stable_command_id,
)
from puppets import Client, Lists, PuppetError, SessionState
from puppets.event import contact as contact_ev
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
from tests.puppet_helpers import Recorder, make_config, online_client

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pool:
    """One pool holding ALICE's session for OWNER, and the core's end of it."""

    link: MemoryLink
    executor: SessionExecutor
    client: Client
    remote: RemoteClient
    done: MemoryDoneStore
    core_events: list[object] = field(default_factory=list)


async def start_pool(msn: MSNPTestServer, link: MemoryLink | None = None, **kw: Any) -> Pool:
    link = link or MemoryLink()
    done = MemoryDoneStore()
    executor = SessionExecutor(link.pool, done, pool="pool-a")
    client = Client(make_config(msn, ALICE, "pw", **kw))
    remote = RemoteClient(OWNER, ALICE, link.core, command_timeout=10)
    pool = Pool(link, executor, client, remote, done)
    remote.add_listener(pool.core_events.append)

    async def on_event(envelope: Envelope) -> None:
        assert envelope.owner == OWNER
        remote.apply(envelope)

    link.core.on_event(on_event)
    executor.attach(OWNER, client)  # before start: the login's own events travel too
    await client.start()
    await client.wait_online(timeout=15)
    await executor.flush(5)
    await link.drain()
    return pool


async def stop_pool(pool: Pool) -> None:
    await pool.client.stop()
    await pool.executor.close()
    await pool.link.close()
    await pool.remote.close()


@pytest.fixture
async def pool(msn: MSNPTestServer) -> AsyncIterator[Pool]:
    held = await start_pool(msn)
    try:
        yield held
    finally:
        await stop_pool(held)


def mirrored(pool: Pool) -> bool:
    return pool.remote.contacts.to_json() == pool.client.contacts.to_json()


async def settle(pool: Pool) -> None:
    await pool.executor.flush(5)
    await pool.link.drain()


# --- the mirror ---


async def test_contacts_groups_and_presence_are_mirrored(pool: Pool, msn: MSNPTestServer) -> None:
    remote, client = pool.remote, pool.client
    assert remote.state is SessionState.ONLINE and remote.protocol == client.protocol == 12
    assert remote.config.passport == ALICE and remote.contacts.own_nick == "Alice"
    assert remote.contacts.get(BOB) is not None and remote.contacts.get(BOB).on(Lists.FL)  # type: ignore[union-attr]
    assert mirrored(pool)
    # Presence and personal messages of a contact who comes online.
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        await bob.set_psm("at lunch")
        await until(lambda: (c := remote.contacts.get(BOB)) is not None and c.psm == "at lunch")
        contact = remote.contacts.get(BOB)
        assert contact is not None and contact.online and contact.nick == "Bob"
        kinds = {type(e) for e in pool.core_events}
        assert {contact_ev.PresenceChanged, contact_ev.PersonalMessageChanged} <= kinds
    finally:
        await bob.stop()
    await until(lambda: remote.contacts.get(BOB).status == "FLN")  # type: ignore[union-attr]
    # Commands: groups, contacts, nick, status, carried out by the pool's client.
    gid = await remote.add_group("Friends")
    await settle(pool)
    assert remote.contacts.group_by_name("Friends") is not None
    assert remote.contacts.groups[gid].name == "Friends"
    await remote.add_contact(CAROL, gid)
    await remote.rename_group(gid, "Family")
    await remote.block(BOB)
    await remote.set_nick("Alice ★")
    await remote.set_status("AWY")
    await settle(pool)
    assert remote.contacts.groups[gid].name == "Family"
    assert gid in remote.contacts.get(CAROL).groups  # type: ignore[union-attr]
    assert remote.contacts.get(BOB).on(Lists.BL)  # type: ignore[union-attr]
    assert remote.contacts.own_nick == "Alice ★"
    assert mirrored(pool)
    await remote.remove_group(gid)
    await settle(pool)
    assert gid not in remote.contacts.groups and mirrored(pool)
    assert msn.account(ALICE).status == "AWY"


async def test_a_failed_command_is_worded_as_in_process(pool: Pool) -> None:
    # The same failure in-process, worded by the core's own describe_error…
    with pytest.raises(PuppetError) as direct:
        await pool.client.remove_group("no-such-group")
    # …and through the pool: a CommandFailed that the core catches as a PuppetError.
    with pytest.raises(PuppetError) as remote:
        await pool.remote.remove_group("no-such-group")
    assert isinstance(remote.value, CommandFailed)
    assert describe_error(remote.value) == describe_error(direct.value)
    assert describe_error(remote.value).startswith("the MSN server answered error ")


async def test_a_snapshot_rebuilds_the_mirror(pool: Pool, msn: MSNPTestServer) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        await bob.conversation([ALICE]).send_text("keep this conversation")
        await until(lambda: any(isinstance(e, MessageReceived) for e in pool.core_events))
        (conv,) = pool.remote.conversations
        # A core restarted: a new RemoteClient knows nothing until it asks (resync).
        fresh = RemoteClient(OWNER, ALICE, pool.link.core, command_timeout=10)
        synced: list[object] = []
        fresh.add_listener(synced.append)
        assert fresh.contacts.get(BOB) is None and fresh.state is not SessionState.ONLINE
        await fresh.resync()
        assert fresh.state is SessionState.ONLINE and fresh.protocol == 12
        assert fresh.contacts.to_json() == pool.client.contacts.to_json()
        assert [c.id for c in fresh.conversations] == [conv.id]
        assert fresh.conversations[0].participants == {BOB}
        assert any(isinstance(e, contact_ev.ContactListSynced) for e in synced)
        # Its conversation is the pool's: a message through it reaches bob.
        bob_events = Recorder(bob)
        assert (await fresh.conversations[0].send_text("after the restart")).ok
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "after the restart")
        # The snapshot was published on the event stream as well: the old proxy applies it.
        await settle(pool)
        assert pool.remote.snapshots >= 2
    finally:
        await bob.stop()


async def test_a_redelivered_event_is_applied_once(pool: Pool, msn: MSNPTestServer) -> None:
    bob, _ = await online_client(msn, BOB, "pw")
    try:
        await bob.conversation([ALICE]).send_text("only once")
        await until(lambda: any(isinstance(e, MessageReceived) for e in pool.core_events))
        before = len(pool.core_events)
        pool.link.redeliver(list(pool.link.published))
        await pool.link.drain()
        assert len(pool.core_events) == before
    finally:
        await bob.stop()


async def test_a_repeated_command_id_is_carried_out_once(pool: Pool, msn: MSNPTestServer) -> None:
    bob, bob_events = await online_client(msn, BOB, "pw")
    try:
        conv = pool.remote.conversation([BOB])
        with stable_command_id("send:$event1"):
            first = await conv.send_text("exactly once")
        with stable_command_id("send:$event1"):  # the core replaying the same Matrix event
            again = await conv.send_text("exactly once")
        assert first.ok and again == first
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "exactly once")
        # Two parts of one event are two sends.
        with stable_command_id("send:$event2"):
            assert (await conv.send_text("part one")).ok
            assert (await conv.send_text("part two")).ok
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "part two")
        await asyncio.sleep(0.3)
        texts = [e.message.text for e in bob_events.of(MessageReceived)]
        assert texts.count("exactly once") == 1 and texts.count("part one") == 1
        sends = [c.id for c in pool.link.commands if c.kind == "send_text"]
        assert sends == ["send:$event1:1", "send:$event1:1", "send:$event2:1", "send:$event2:2"]
    finally:
        await bob.stop()


async def test_a_pool_without_the_session_fails_worded_and_may_be_retried(
    pool: Pool, msn: MSNPTestServer
) -> None:
    client = pool.executor.detach(OWNER)
    assert client is pool.client
    conv = pool.remote.conversation([BOB])
    with stable_command_id("send:$moving"):
        result = await conv.send_text("while moving")
    assert result.status is DeliveryStatus.FAILED
    assert "not on this connection pool" in result.reason
    # Not remembered as done: once the session is held again, the same id goes out.
    pool.executor.attach(OWNER, pool.client)
    bob, bob_events = await online_client(msn, BOB, "pw")
    try:
        with stable_command_id("send:$moving"):
            assert (await conv.send_text("while moving")).ok
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "while moving")
    finally:
        await bob.stop()


# --- the core's own code paths on a RemoteClient ---


class PoolSessions:
    """The part of Sessions that Router and MsnEventRouter use, over RemoteClients (the
    pool process's RemoteSessions has the same interface)."""

    def __init__(self, config: Any, clients: dict[str, RemoteClient]) -> None:
        self.config = config
        self.listeners: list[Any] = []
        self.logging_in: set[str] = set()
        self.offline_send_timeout = 5.0
        self._clients = clients
        for owner, client in clients.items():
            client.add_listener(lambda event, owner=owner: self._forward(owner, event))

    def _forward(self, owner: str, event: object) -> None:
        for listener in self.listeners:
            listener(owner, event)

    def get(self, owner: str) -> RemoteClient | None:
        return self._clients.get(owner)

    def why_no_session(self, owner: str) -> str:
        return "you are not logged in to MSN"

    async def wait_restored(self, owner: str, timeout: float) -> bool:
        return True

    def report_states(self) -> None:
        pass


@pytest.fixture
async def core(tmp_path: Path, pool: Pool) -> AsyncIterator[Router]:
    path = tmp_path / "bridge.yaml"
    write_offline_config(path)
    config = load_config(str(path))
    db = await open_database(config["database"])
    # The pool reads the login from here (the owner's row, as `login` stores it).
    await user_db.save(db, User(OWNER, "matrix", ALICE, state="logged_in"))
    router = Router(PoolSessions(config, {OWNER: pool.remote}), db)  # type: ignore[arg-type]
    try:
        yield router
    finally:
        await router.events.drain()
        await router.stop()
        await db.stop()


async def test_the_core_routes_a_pool_session_both_ways(
    core: Router, pool: Pool, msn: MSNPTestServer
) -> None:
    matrix = RecordingSide("matrix")
    core.add_side(matrix)
    bob, bob_events = await online_client(msn, BOB, "pw")
    try:
        # MSN → the core: a MessageReceived with a RemoteConversation reaches the sides.
        assert (await bob.conversation([ALICE]).send_text("hello from msn")).ok
        await until(lambda: matrix.of("message"))
        ((key, message),) = matrix.of("message")
        assert key == BOB and message.sender == BOB and message.rich.plain() == "hello from msn"
        received = [e for e in pool.core_events if isinstance(e, MessageReceived)]
        (event,) = received
        assert isinstance(event.conversation, RemoteConversation)
        assert isinstance(event.switchboard, RemoteSwitchboard)
        conv = event.conversation
        # The core → MSN: the portal's conversation is that same object.
        portal = await core.portals.get(OWNER, [BOB])
        assert portal is not None and core.conversation_for(portal) is conv
        result = await core.send(portal, "matrix", "$m1", None, RichText.from_plain("hi bob"))
        assert result.ok, result
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "hi bob")
        # Its command id is the Matrix event's, so a replay of that event is sent once.
        assert [c.id for c in pool.link.commands if c.kind == "send_text"] == ["send:$m1:1"]
        # More messages: still one conversation object, one portal.
        assert (await bob.conversation([ALICE]).send_text("again")).ok
        await until(lambda: len(matrix.of("message")) == 2)
        assert [e.conversation for e in pool.core_events if isinstance(e, MessageReceived)] == [
            conv,
            conv,
        ]
        assert pool.remote.conversation([BOB]) is conv
        # Typing from the core goes out on the open switchboard.
        await core.send_typing(portal)
        # A nudge from the core.
        assert (await core.send_nudge(portal, "matrix")).ok
        # bob leaves MSN: the next message fails and is reported to its side.
        await bob.stop()
        await until(lambda: msn.online_sessions(BOB) == 0)
        await until(lambda: pool.remote.contacts.get(BOB).status == "FLN")  # type: ignore[union-attr]
        await asyncio.sleep(0.3)
        failed = await core.send(portal, "matrix", "$lost", None, RichText.from_plain("gone?"))
        assert failed.status is DeliveryStatus.OFFLINE
        assert matrix.of("failed") == [("$lost", "gone?", DeliveryStatus.OFFLINE)]
    finally:
        await bob.stop()


async def test_the_core_sees_contacts_and_session_changes(
    core: Router, pool: Pool, msn: MSNPTestServer
) -> None:
    matrix = RecordingSide("matrix")
    core.add_side(matrix)
    carol, _ = await online_client(msn, CAROL, "pw")
    try:
        await until(lambda: (CAROL, ContactChange.PRESENCE) in matrix.of("contact"))
        await pool.remote.resync()  # a ContactListSynced: every contact is shown
        await until(lambda: (BOB, ContactChange.NICK) in matrix.of("contact"))
    finally:
        await carol.stop()
    # Signed in elsewhere (OUT OTH): the pool's session stops for good and the owner is
    # told in the core's usual words, which it picks by the error's type.
    elsewhere, _ = await online_client(msn, ALICE, "pw")
    try:
        await until(lambda: pool.remote.state is SessionState.STOPPED)
        assert type(pool.remote.error).__name__ == "SignedOutElsewhere"
        await core.events.drain()
        notices = [n for n in matrix.of("notice") if "signed in from another place" in n.text]
        assert len(notices) == 1, matrix.of("notice")
    finally:
        await elsewhere.stop()


async def test_a_one_to_one_chat_that_grows_keeps_its_portals_apart(
    core: Router, pool: Pool, msn: MSNPTestServer
) -> None:
    matrix = RecordingSide("matrix")
    core.add_side(matrix)
    bob, bob_events = await online_client(msn, BOB, "pw")
    carol, carol_events = await online_client(msn, CAROL, "pw")
    try:
        conv = bob.conversation([ALICE])
        assert (await conv.send_text("just us")).ok
        await until(lambda: any(k == BOB for k, _ in matrix.of("message")))
        assert conv.switchboard is not None
        await conv.switchboard.invite(CAROL)
        group_key = f"{BOB},{CAROL}"
        await until(lambda: (group_key, CAROL) in matrix.of("joined"))
        assert (await conv.send_text("all of us")).ok
        await until(lambda: (group_key, "all of us") in
                    [(k, m.rich.plain()) for k, m in matrix.of("message")])  # fmt: skip
        direct = await core.portals.get(OWNER, [BOB])
        group = await core.portals.get(OWNER, [BOB, CAROL])
        assert direct is not None and group is not None
        # The group portal talks to both; the 1:1 portal (detached, on the pool too) to bob.
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


async def test_a_conversation_detached_by_the_core_is_not_reused_whatever_the_order(
    pool: Pool, msn: MSNPTestServer
) -> None:
    # The core detached the pool's conversation with bob (a 1:1 that grew) and asks for
    # a new one; its `detach` command may come after the send (two pools' order is not
    # the stream's): the send names the detached id as excluded and gets a fresh one.
    bob, bob_events = await online_client(msn, BOB, "pw")
    try:
        old = pool.remote.conversation([BOB])
        assert (await old.send_text("first")).ok and old.id is not None
        data = {"conversation": None, "key": [BOB], "exclude": [old.id], "text": "second"}
        reply = await pool.executor.handle(Envelope("send:x:1", OWNER, "send_text", data))
        assert reply["conversation"] != old.id and reply["result"]["status"] == "acked"
        await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "second")
        without = {**data, "exclude": [], "text": "third"}
        reply = await pool.executor.handle(Envelope("send:x:2", OWNER, "send_text", without))
        assert reply["conversation"] != old.id  # the pool's current one is the new one now
    finally:
        await bob.stop()


async def test_a_file_offer_is_answered_by_the_core_as_in_process(
    core: Router, pool: Pool, msn: MSNPTestServer, tmp_path: Path
) -> None:
    # The offer travels to the core, whose MsnFileRouter answers it as in-process: no side
    # here carries files, so it is declined (the sender's Messenger hears it) and the
    # owner gets a notice; nothing is silently dropped (tests/test_pools_files.py: taken).
    matrix = RecordingSide("matrix")
    core.add_side(matrix)
    bob, _ = await online_client(msn, BOB, "pw")
    source = tmp_path / "holiday.jpg"
    source.write_bytes(b"x" * 1000)
    try:
        sending = bob.p2p.manager.send_file(ALICE, source)
        assert await sending.wait(timeout=30) == "declined"
        await settle(pool)
        await core.events.drain()
        (notice,) = [n for n in matrix.of("notice") if "holiday.jpg" in n.text]
        assert BOB in notice.text and "files are not bridged for this login" in notice.text
    finally:
        await bob.stop()
