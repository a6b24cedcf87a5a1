"""Conversations between real puppet clients through the test server's switchboards:
both directions, multi-party, ACK/NAK/217, typing, nudges, long multi-byte text."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from puppets.conversation import WITHDRAWN
from puppets.event.conversation import (
    DeliveryStatus,
    MessageReceived,
    NudgeReceived,
    ParticipantJoined,
    TypingReceived,
)
from puppets.message import MAX_PAYLOAD, TextFormat
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    msnp12_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

_ids = itertools.count()


def _people(server: MSNPTestServer, *names: str) -> list[str]:
    n = next(_ids)
    passports = [f"{name}{n}@example.com" for name in names]
    for p, name in zip(passports, names, strict=True):
        server.add_account(p, "pw", nick=name.title())
    for p in passports:
        for q in passports:
            if p != q:
                server.add_contact(p, q, lists=("FL", "AL"))
    return passports


@pytest.mark.parametrize("version", [2, 8, 12])
async def test_conversation_both_ways(server, version):
    a, b = _people(server, "alice", "bob")
    alice, alice_ev = await online_client(server, a, "pw", max_version=version)
    bob, bob_ev = await online_client(server, b, "pw", max_version=version)
    try:
        fmt = TextFormat(font="Comic Sans MS", bold=True, color=0xFF0000)
        result = await alice.conversation([b]).send_text("hello bob\nsecond line", fmt)
        assert result.status is DeliveryStatus.ACKED, result
        got = await bob_ev.wait_for(MessageReceived)
        assert got.sender == a and got.nick == "Alice"
        assert got.message.text == "hello bob\nsecond line"
        assert got.message.format.bold and got.message.format.color == 0xFF0000
        assert got.message.format.font == "Comic Sans MS"
        # Bob answers in the conversation he was invited to (the answered switchboard).
        reply = await bob.conversation([a]).send_text("hi alice ñ")
        assert reply.ok
        back = await alice_ev.wait_for(MessageReceived)
        assert back.sender == b and back.message.text == "hi alice ñ"
    finally:
        await alice.stop()
        await bob.stop()


async def test_offline_contact_is_reported(server):
    a, b = _people(server, "alice", "bob")
    alice, _ = await online_client(server, a, "pw")
    try:
        result = await alice.conversation([b]).send_text("are you there?")
        assert result.status is DeliveryStatus.OFFLINE
        assert not result.ok and result.reason
    finally:
        await alice.stop()


async def test_nak_when_the_other_side_left(server):
    a, b = _people(server, "alice", "bob")
    alice, _ = await online_client(server, a, "pw")
    bob, bob_ev = await online_client(server, b, "pw")
    try:
        conv = alice.conversation([b])
        assert (await conv.send_text("first")).ok
        await bob_ev.wait_for(MessageReceived)
        sb = conv.switchboard
        assert sb is not None
        # Bob goes away; the server has nobody to deliver to on that switchboard.
        await bob.stop()
        await asyncio.sleep(0.3)
        result = await sb.send_text("into the void")
        assert result.status in (DeliveryStatus.NAKED, DeliveryStatus.FAILED)
    finally:
        await alice.stop()
        await bob.stop()


async def test_multi_party(server):
    a, b, c = _people(server, "alice", "bob", "carol")
    alice, _ = await online_client(server, a, "pw")
    bob, bob_ev = await online_client(server, b, "pw")
    carol, carol_ev = await online_client(server, c, "pw")
    try:
        result = await alice.conversation([b, c]).send_text("hello both")
        assert result.ok
        for ev in (bob_ev, carol_ev):
            msg = await ev.wait_for(MessageReceived)
            assert msg.message.text == "hello both"
        # Bob's conversation sees carol too, and his answer reaches both others.
        joined = bob_ev.of(ParticipantJoined)
        conv = next(e.conversation for e in bob_ev.of(MessageReceived))
        assert {a, c} <= conv.participants or {p.passport for p in joined} >= {c}
        assert (await conv.send_text("hi all")).ok
        got = await carol_ev.wait_for(MessageReceived, lambda e: e.sender == b)
        assert got.message.text == "hi all"
    finally:
        for cl in (alice, bob, carol):
            await cl.stop()


async def test_typing_and_nudge(server):
    a, b = _people(server, "alice", "bob")
    alice, _ = await online_client(server, a, "pw")
    bob, bob_ev = await online_client(server, b, "pw")
    try:
        conv = alice.conversation([b])
        await conv.send_typing()  # must not open a switchboard on its own
        assert conv.switchboard is None
        assert (await conv.send_text("x")).ok
        await conv.send_typing()
        typing = await bob_ev.wait_for(TypingReceived)
        assert typing.sender == a
        nudge = await conv.send_nudge()
        assert nudge.ok
        assert (await bob_ev.wait_for(NudgeReceived)).sender == a
    finally:
        await alice.stop()
        await bob.stop()


async def test_long_multibyte_message_is_split_and_arrives_whole(server):
    a, b = _people(server, "alice", "bob")
    alice, _ = await online_client(server, a, "pw")
    bob, bob_ev = await online_client(server, b, "pw")
    text = ("ñandú 😀 € " * 400) + "end"
    try:
        result = await alice.conversation([b]).send_text(text)
        assert result.ok, result
        await bob_ev.until(
            lambda: "".join(e.message.text for e in bob_ev.of(MessageReceived)) == text
        )
        received = bob_ev.of(MessageReceived)
        assert len(received) >= len(text.encode()) // MAX_PAYLOAD
    finally:
        await alice.stop()
        await bob.stop()


async def test_switchboard_dropped_mid_conversation_reopens(server):
    a, b = _people(server, "alice", "bob")
    alice, _ = await online_client(server, a, "pw")
    bob, bob_ev = await online_client(server, b, "pw")
    try:
        conv = alice.conversation([b])
        assert (await conv.send_text("one")).ok
        sb = conv.switchboard
        await sb.leave()
        assert (await conv.send_text("two")).ok
        assert conv.switchboard is not sb
        await bob_ev.until(
            lambda: [e.message.text for e in bob_ev.of(MessageReceived)] == ["one", "two"]
        )
    finally:
        await alice.stop()
        await bob.stop()


async def test_before_write_runs_once_just_before_writing_and_can_withdraw(server):
    """The hook runs once the switchboard is there and nothing of the message went out;
    False withdraws the message, and the ones behind it keep their order."""
    a, b = _people(server, "alice", "bob")
    alice, _ = await online_client(server, a, "pw")
    bob, bob_ev = await online_client(server, b, "pw")
    try:
        conv = alice.conversation([b])
        seen: list[tuple[bool, int]] = []

        async def hook() -> bool:
            seen.append((conv.switchboard is not None, len(bob_ev.of(MessageReceived))))
            await asyncio.sleep(0.05)  # a slow hook (a database write): nothing overtakes
            return True

        async def withdraw() -> bool:
            return False

        sent = [
            asyncio.create_task(conv.send_text("first", before_write=hook)),
            asyncio.create_task(conv.send_text("never", before_write=withdraw)),
            asyncio.create_task(conv.send_text("third")),
        ]
        first, withdrawn, third = await asyncio.gather(*sent)
        assert first.status is DeliveryStatus.ACKED and third.ok
        assert seen == [(True, 0)]
        assert withdrawn.status is DeliveryStatus.FAILED and withdrawn.reason == WITHDRAWN
        await bob_ev.until(lambda: len(bob_ev.of(MessageReceived)) == 2)
        await asyncio.sleep(0.2)
        assert [e.message.text for e in bob_ev.of(MessageReceived)] == ["first", "third"]
    finally:
        await alice.stop()
        await bob.stop()


async def test_before_write_is_not_run_for_a_message_never_written(server):
    a, b = _people(server, "alice", "bob")  # bob never signs in
    alice, _ = await online_client(server, a, "pw")
    calls: list[int] = []

    async def hook() -> bool:
        calls.append(1)
        return True

    try:
        result = await alice.conversation([b]).send_text("are you there?", before_write=hook)
        assert result.status is DeliveryStatus.OFFLINE
        assert calls == []
    finally:
        await alice.stop()
