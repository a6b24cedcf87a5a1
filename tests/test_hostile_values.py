"""Hostile values end to end (real Synapse, MSNP test server, bridge in-process): nicks and
messages with CR/LF, NUL and control characters, invalid UTF-8, lying payload lengths,
100 KB lines, unknown commands and content types from MSN; script/HTML, huge bodies and
invalid formatted_body from Matrix. Each is rendered safely or refused clearly, and a
second bridged user's conversation keeps working afterwards."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from puppets import Client, SessionState
from puppets.event.conversation import MessageReceived
from puppets.event.session import SessionStateChanged
from tests import test_matrix_portals
from tests.msnp_server import MSNPTestServer
from tests.msnp_server.framing import payload_line
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
    is_notice_from,
    matrix_login,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_faults_msn import fast_friend, texts
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    CAROL,
    PASSWORD,
    alice_seen_online,
    bot_id,
    ghost_id,
    is_message_from,
    join,
    put_event,
    settings,
    sync,
    until,
)

msn = test_matrix_portals.msn  # the MSNP test server fixture: alice, bob, carol

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls but \t and \n, and DEL


async def login_as(synapse: SynapseServer, user: MatrixUser, passport: str) -> str:
    return await matrix_login(synapse, user, passport, PASSWORD)


async def invited_room(synapse: SynapseServer, user: MatrixUser, timeout: float = 15) -> str:
    for _ in range(int(timeout / 0.2)):
        invites = (await sync(synapse, user)).get("rooms", {}).get("invite", {})
        if invites:
            room = next(iter(invites))
            await join(synapse, user, room)
            return room
        await asyncio.sleep(0.2)
    raise AssertionError("no invite arrived")


def msg(content_type: str, body: bytes) -> bytes:
    return f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode() + body


async def raw_from_bob(bob: Client, payload: bytes) -> None:
    """A payload written as is on bob's switchboard with alice (no encoding checks)."""
    sb = bob.conversation([ALICE]).switchboard
    assert sb is not None
    assert (await sb.post([payload], "A").result()).ok


def messages_from(events: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "m.room.message" and e["sender"] == sender]


async def test_hostile_values_from_msn_are_rendered_safely(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner, other = await synapse.register_user(), await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))) as bridge:
            await login_as(synapse, owner, ALICE)
            await login_as(synapse, other, CAROL)
            await alice_seen_online(bob_events)
            assert bridge.sessions is not None
            alice = bridge.sessions.get(owner.user_id)
            assert alice is not None
            reconnects: list[object] = []
            alice.add_listener(
                lambda e: (
                    isinstance(e, SessionStateChanged)
                    and e.state is SessionState.BACKING_OFF
                    and reconnects.append(e)
                )
            )

            # A nick with CR/LF, NUL and escape codes: the ghost's name has none of them.
            msn.set_nick(BOB, "Bob\r\nEvil\x00Nick\x07\x1b[31m")
            ghost = ghost_id(synapse, BOB)
            assert (await bob.conversation([ALICE]).send_text("hello")).ok
            room = await invited_room(synapse, owner)
            await wait_for_event(synapse, owner, room, is_message_from(ghost, "hello"))

            async def displayname() -> str:
                path = f"/_matrix/client/v3/profile/{quote(ghost)}/displayname"
                reply = await synapse.request("GET", path, token=owner.access_token)
                return str(reply.get("displayname", ""))

            async def renamed() -> bool:
                return "Evil" in await displayname()

            await until(renamed)
            name = await displayname()
            assert not CONTROL.search(name) and "Bob" in name and "Nick" in name, repr(name)

            # Messages: invalid UTF-8, NUL, escapes, CR/LF, markup, unknown content type.
            await raw_from_bob(
                bob,
                msg(
                    "text/plain; charset=UTF-8",
                    b"bad \xff\xfe utf8 \x00nul \x1b[31mesc \x07bell\r\nsecond line",
                ),
            )
            await raw_from_bob(bob, msg("application/x-evil-unknown", b"\x00\x01 whatever"))
            await raw_from_bob(
                bob,
                msg("text/plain; charset=UTF-8", b"<script>alert(1)</script><img src=x onerror=y>"),
            )
            await raw_from_bob(bob, msg("text/plain; charset=x-no-such-charset", b"odd charset"))
            await wait_for_event(synapse, owner, room, is_message_from(ghost, "odd charset"))
            shown = messages_from(await room_events(synapse, owner, room), ghost)
            bodies = [e["content"]["body"] for e in shown]
            assert bodies[0] == "hello"
            bad = bodies[1]
            assert "bad" in bad and "utf8" in bad and "bell" in bad and "\ufffd" in bad, repr(bad)
            assert bad.endswith("\nsecond line") and not CONTROL.search(bad), repr(bad)
            # The unknown content type is not shown as a message.
            assert not any("whatever" in b for b in bodies)
            script = shown[2]["content"]
            assert script["body"] == "<script>alert(1)</script><img src=x onerror=y>"
            html = script.get("formatted_body")
            if html is not None:  # markup from MSN is text, never HTML
                assert "<script" not in html and "<img" not in html, html
                assert "&lt;script&gt;" in html
            for event in shown:
                assert not CONTROL.search(event["content"].get("formatted_body", ""))

            # Raw lines on alice's connections: unknown commands and content types are
            # skipped; a lying payload length or a 100 KB line drops only that link.
            await msn.inject(ALICE, b"ZZZ 0 what is this\r\n")
            await msn.inject(
                ALICE, payload_line("MSG", "Hotmail", "Hotmail", payload=msg("x/unknown", b"?"))
            )
            await asyncio.sleep(0.3)
            assert alice.state is SessionState.ONLINE and reconnects == []
            sbs = msn.hub.switchboards
            assert sbs is not None
            alice_sb = next(
                c.members[ALICE] for c in sbs.conversations.values() if ALICE in c.members
            )
            alice_sb.push(b"MSG bob@example.com Bob 999999\r\nnot that long")
            await until(lambda: alice_sb.closed)
            await send_text(synapse, owner, room, "after the lying length")
            await bob_events.until(lambda: "after the lying length" in texts(bob_events), 15)
            await msn.inject(ALICE, b"X" * 100_000 + b"\r\n")
            await until(lambda: len(reconnects) == 1)
            await alice.wait_online(timeout=15)
            await send_text(synapse, owner, room, "after the long line")
            await bob_events.until(lambda: "after the long line" in texts(bob_events), 15)

            # The other bridged user was never disturbed.
            carol = bridge.sessions.get(other.user_id)
            assert carol is not None and carol.state is SessionState.ONLINE
            assert (await bob.conversation([CAROL]).send_text("hi carol")).ok
            carol_room = await invited_room(synapse, other)
            await wait_for_event(synapse, other, carol_room, is_message_from(ghost, "hi carol"))
            await send_text(synapse, other, carol_room, "carol answers")
            await bob_events.until(lambda: "carol answers" in texts(bob_events), 15)
    finally:
        await bob.stop()


async def send_content(
    synapse: SynapseServer, user: MatrixUser, room: str, content: dict[str, Any]
) -> str:
    return await put_event(synapse, user, room, "m.room.message", content)


async def test_hostile_values_from_matrix_reach_msn_safely(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner, other = await synapse.register_user(), await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))) as bridge:
            await login_as(synapse, owner, ALICE)
            await login_as(synapse, other, CAROL)
            await alice_seen_online(bob_events)
            assert (await bob.conversation([ALICE]).send_text("hi")).ok
            room = await invited_room(synapse, owner)
            await wait_for_event(
                synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "hi")
            )

            def received(n: int) -> Callable[[], bool]:
                return lambda: len(bob_events.of(MessageReceived)) >= n

            # Plain text is plain on MSN: markup arrives literally, as the user typed it.
            await send_text(synapse, owner, room, "<script>alert(1)</script>")
            await bob_events.until(received(1))
            # HTML: the visible text only, no tag, attribute or script reaches MSN.
            html = '<img src=x onerror="alert(1)">hi <script>alert(2)</script><b>bold</b>'
            await send_content(synapse, owner, room, {
                "msgtype": "m.text", "body": "hi bold", "format": "org.matrix.custom.html",
                "formatted_body": html,
            })  # fmt: skip
            await bob_events.until(received(2))
            # Invalid formatted_body: not a string, and unbalanced markup.
            await send_content(synapse, owner, room, {
                "msgtype": "m.text", "body": "plain fallback", "format": "org.matrix.custom.html",
                "formatted_body": 12345,
            })  # fmt: skip
            await send_content(synapse, owner, room, {
                "msgtype": "m.text", "body": "unbalanced", "format": "org.matrix.custom.html",
                "formatted_body": "<b><i>unbalanced <",
            })  # fmt: skip
            # Control characters in a Matrix body.
            await send_text(synapse, owner, room, "ctl \x00\x07\x1b[31m end\r\nnext")
            try:
                await bob_events.until(received(5), 20)
            except TimeoutError:
                raise AssertionError(texts(bob_events)) from None
            got = texts(bob_events)
            assert got[0] == "<script>alert(1)</script>"
            assert "onerror" not in got[1] and "alert" not in got[1] and "<" not in got[1]
            assert "hi" in got[1] and "bold" in got[1]
            assert got[2] == "plain fallback"
            assert "unbalanced" in got[3] and "<b>" not in got[3]
            assert got[4].startswith("ctl") and got[4].endswith("next")
            assert not CONTROL.search(got[4]), repr(got[4])

            # A huge body (Synapse refuses events over 64 KB, so 60 KB): delivered whole,
            # split into MSN-sized parts in order; a failure would be a notice, never a
            # silent cut.
            huge = " ".join(f"w{i:05d}" for i in range(60_000 // 7))
            huge_id = await send_text(synapse, owner, room, huge)

            def arrived() -> str:
                return "".join(texts(bob_events)[5:])

            async def settled() -> bool:
                if arrived() == huge:
                    return True
                events = await room_events(synapse, owner, room)
                return any(
                    is_notice_from(bot_id(synapse), "Not delivered")(e)
                    and e["content"]
                    .get("m.relates_to", {})
                    .get("m.in_reply_to", {})
                    .get("event_id")
                    == huge_id
                    for e in events
                )

            await until(settled, timeout=30)
            assert arrived() == huge  # split on MSN's 1664-byte limit, nothing lost

            # Both users are still served.
            await send_text(synapse, owner, room, "still fine")
            await bob_events.until(lambda: "still fine" in texts(bob_events), 15)
            assert (await bob.conversation([CAROL]).send_text("hi carol")).ok
            carol_room = await invited_room(synapse, other)
            await send_text(synapse, other, carol_room, "carol too")
            await bob_events.until(lambda: "carol too" in texts(bob_events), 15)
            assert bridge.sessions is not None
    finally:
        await bob.stop()
