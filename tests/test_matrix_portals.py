"""Portals end to end: a real Synapse, the MSNP test server, the bridge in-process, and the
MSN friends as real puppet Clients. One owner (a Matrix user logged in as alice) talks to
bob and carol on MSN."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from puppets import Client
from puppets.event.contact import PresenceChanged
from puppets.event.conversation import (
    MessageReceived,
    NudgeReceived,
    TypingReceived,
)
from puppets.message import TextFormat
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder, online_client
from tests.synapse_server import (
    MatrixUser,
    SynapseServer,
    bot_id,
    free_port,
    is_membership,
    is_notice_from,
    matrix_login,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.synapse_server import msn_settings as settings  # the name other modules import

PASSWORD = "correct horse"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        server.add_account(ALICE, PASSWORD, nick="Alice")
        server.add_account(BOB, PASSWORD, nick="Bob ✨ the builder")
        server.add_account(CAROL, PASSWORD, nick="Carol")
        for a, b in ((ALICE, BOB), (ALICE, CAROL), (BOB, CAROL)):
            server.add_contact(a, b, ("FL", "AL"))
            server.add_contact(b, a, ("FL", "AL"))
        yield server


def ghost_id(synapse: SynapseServer, passport: str) -> str:
    escaped = passport.replace("@", "=40")
    return f"@{synapse.appservice.user_prefix}{escaped}:{synapse.domain}"


async def log_in(synapse: SynapseServer, owner: MatrixUser) -> str:
    """The owner's management room with the bot, after `login` as alice succeeded there."""
    return await matrix_login(synapse, owner, ALICE, PASSWORD)


async def sync(
    synapse: SynapseServer, user: MatrixUser, room: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A fresh /sync snapshot. Synapse caches identical sync requests for minutes, so each
    one carries a filter no other request had."""
    room = {"timeline": {"limit": 1}, **(room or {})}
    flt = {"room": room, "presence": {"not_types": [f"nonce.{secrets.token_hex(6)}"]}}
    path = f"/_matrix/client/v3/sync?timeout=0&filter={quote(json.dumps(flt))}"
    return await synapse.request("GET", path, token=user.access_token)


async def wait_invite(synapse: SynapseServer, user: MatrixUser, timeout: float = 15) -> str:
    """The room of the next invite the user gets (via /sync)."""
    for _ in range(int(timeout / 0.2)):
        reply = await sync(synapse, user)
        invites = reply.get("rooms", {}).get("invite", {})
        if invites:
            return next(iter(invites))
        await asyncio.sleep(0.2)
    raise AssertionError("no invite arrived")


async def join(synapse: SynapseServer, user: MatrixUser, room: str) -> None:
    await synapse.request(
        "POST", f"/_matrix/client/v3/join/{quote(room)}", {}, token=user.access_token
    )


async def send_html(
    synapse: SynapseServer, user: MatrixUser, room: str, body: str, html: str
) -> str:
    content = {"msgtype": "m.text", "body": body, "format": "org.matrix.custom.html",
               "formatted_body": html}  # fmt: skip
    reply = await synapse.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(6)}",
        content,
        token=user.access_token,
    )
    return reply["event_id"]


async def put_event(
    synapse: SynapseServer, user: MatrixUser, room: str, kind: str, content: dict[str, Any]
) -> str:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/send/{kind}/{secrets.token_hex(6)}"
    return (await synapse.request("PUT", path, content, token=user.access_token))["event_id"]


def is_message_from(
    sender: str, contains: str, msgtype: str | None = None
) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["type"] == "m.room.message"
        and e["sender"] == sender
        and contains in e["content"].get("body", "")
        and (msgtype is None or e["content"].get("msgtype") == msgtype)
    )


async def ghost_typing(synapse: SynapseServer, user: MatrixUser, room: str) -> list[str]:
    reply = await sync(synapse, user, {"rooms": [room]})
    joined = reply.get("rooms", {}).get("join", {}).get(room, {})
    for event in joined.get("ephemeral", {}).get("events", []):
        if event["type"] == "m.typing":
            return list(event["content"]["user_ids"])
    return []


async def scrape(port: int) -> dict[tuple[str, str], float]:
    """msnbridge_messages_total by (direction, result)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    pattern = r'^msnbridge_messages_total\{direction="([a-z_]+)",result="([a-z_]+)"\} ([0-9.e+]+)$'
    return {(d, r): float(v) for d, r, v in re.findall(pattern, text, re.MULTILINE)}


async def until(condition: Callable[[], Any], timeout: float = 15) -> None:
    """Wait until ``condition()`` (a value or an awaitable, e.g. from a lambda) is true."""
    for _ in range(int(timeout / 0.05)):
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def friend(msn: MSNPTestServer, passport: str) -> tuple[Client, Recorder]:
    return await online_client(msn, passport, PASSWORD)


async def alice_seen_online(events: Recorder) -> None:
    """Until a friend's client sees ALICE (the owner's bridged session) online."""
    await events.wait_for(PresenceChanged, lambda e: e.passport == ALICE and e.status == "NLN")


async def test_dm_both_ways_with_ghosts_typing_nudges_failures_and_metrics(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    started = time.monotonic()
    port = free_port()
    config = bridge_config(
        **settings(msn, metrics={"enabled": True, "listen_address": "127.0.0.1", "port": port})
    )
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(config) as bridge:
            before = await scrape(port)
            management = await log_in(synapse, owner)
            # Ghosts: named after the MSN nicks, presence mirrored (carol is offline).
            bob_ghost, carol_ghost = ghost_id(synapse, BOB), ghost_id(synapse, CAROL)

            async def named() -> bool:
                try:
                    p = await synapse.request(
                        "GET",
                        f"/_matrix/client/v3/profile/{quote(carol_ghost)}",
                        token=owner.access_token,
                    )
                except Exception:
                    return False
                return p.get("displayname") == "Carol (MSN)"

            await until(named)
            profile = await synapse.request(
                "GET", f"/_matrix/client/v3/profile/{quote(bob_ghost)}", token=owner.access_token
            )
            assert profile["displayname"] == "Bob ✨ the builder (MSN)"

            # MSN → Matrix: a new DM room, created by bob's ghost, the owner invited (is_direct).
            result = await bob.conversation([ALICE]).send_text("hello there", TextFormat(bold=True))
            assert result.ok
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            event = await wait_for_event(
                synapse, owner, room, is_message_from(bob_ghost, "hello there")
            )
            assert "<strong>hello there</strong>" in event["content"]["formatted_body"]
            # Presence is shown once the ghost is in a room with the owner (before, nobody
            # could see it); carol shares no room and is offline.
            as_token = synapse.appservice.as_token

            async def presence_of(ghost: str) -> dict[str, Any]:
                return await synapse.request(
                    "GET",
                    f"/_matrix/client/v3/presence/{quote(ghost)}/status?user_id={quote(ghost)}",
                    token=as_token,
                )

            for _ in range(100):
                if (await presence_of(bob_ghost))["presence"] == "online":
                    break
                await asyncio.sleep(0.1)
            assert (await presence_of(bob_ghost))["presence"] == "online"
            await bob.set_status("BSY")
            await bob.set_psm("building")
            for _ in range(100):
                state = await presence_of(bob_ghost)
                if (
                    state["presence"] == "unavailable"
                    and state.get("status_msg") == "Busy — building"
                ):
                    break
                await asyncio.sleep(0.1)
            assert state["presence"] == "unavailable" and state["status_msg"] == "Busy — building"
            # Carol is offline and shares no room with anyone: the bridge shows her nothing
            # (an earlier test's bridge may have left her online; that lapses on its own).
            carol = await presence_of(carol_ghost)
            shown_since = (time.monotonic() - started) * 1000
            assert carol["presence"] == "offline" or carol["last_active_ago"] > shown_since
            member = next(
                e
                for e in await room_events(synapse, owner, room)
                if e["type"] == "m.room.member"
                and e["state_key"] == owner.user_id
                and e["content"]["membership"] == "invite"
            )
            assert member["content"].get("is_direct") is True and member["sender"] == bob_ghost

            # Matrix → MSN, formatting kept.
            await send_html(synapse, owner, room, "hi bob", "<b>hi bob</b>")
            got = await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "hi bob")
            assert got.message.format.bold and got.sender == ALICE

            # Typing both ways.
            await bob.conversation([ALICE]).send_typing()
            for _ in range(50):
                if bob_ghost in await ghost_typing(synapse, owner, room):
                    break
                await asyncio.sleep(0.1)
            assert bob_ghost in await ghost_typing(synapse, owner, room)
            typing_before = len(bob_events.of(TypingReceived))
            await synapse.request(
                "PUT", f"/_matrix/client/v3/rooms/{quote(room)}/typing/{quote(owner.user_id)}",
                {"typing": True, "timeout": 10000}, token=owner.access_token,
            )  # fmt: skip
            await bob_events.until(lambda: len(bob_events.of(TypingReceived)) > typing_before)

            # Nudges both ways.
            assert (await bob.conversation([ALICE]).send_nudge()).ok
            await wait_for_event(
                synapse, owner, room, is_message_from(bob_ghost, "sent a nudge", "m.emote")
            )
            await send_text(synapse, owner, room, "/nudge")
            await bob_events.wait_for(NudgeReceived)

            # Mail and someone adding the owner go to the management room.
            msn.send_new_mail(ALICE, "Dave", "dave@example.com", "lunch?")
            await wait_for_event(
                synapse, owner, management, is_notice_from(bot_id(synapse), "New email from Dave")
            )
            dave = "dave@example.com"
            msn.add_account(dave, PASSWORD, nick="Dave")
            dave_client, _ = await friend(msn, dave)
            try:
                await dave_client.add_contact(ALICE)
                await wait_for_event(
                    synapse, owner, management, is_notice_from(bot_id(synapse), f"accept {dave}")
                )
            finally:
                await dave_client.stop()

            # A refused message: bob goes offline; the notice names the message and why.
            await bob.stop()
            await until(lambda: msn.online_sessions(BOB) == 0)
            await asyncio.sleep(0.3)
            failed_id = await send_text(synapse, owner, room, "are you there?")
            notice = await wait_for_event(
                synapse,
                owner,
                room,
                is_notice_from(bot_id(synapse), "Not delivered to MSN"),
                timeout=30,
            )
            assert (
                "are you there?" in notice["content"]["body"]
                and "offline" in notice["content"]["body"]
            )
            assert notice["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == failed_id
            # Sent after the notice: wait for it rather than race it.
            status = await wait_for_event(
                synapse, owner, room, lambda e: e["type"] == "com.beeper.message_send_status"
            )
            assert status["content"]["status"] == "FAIL_PERMANENT"

            after = await scrape(port)
            moved = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            # bob → Matrix: 1 message; owner → MSN: "hi bob" delivered, "are you there?" offline.
            assert moved[("msn_to_matrix", "delivered")] == 1
            assert moved[("matrix_to_msn", "delivered")] == 1
            assert moved[("matrix_to_msn", "offline")] == 1
            assert bridge.router is not None
            # Once handled, no room keeps a lock (it used to keep one per room ever seen).
            assert bridge.matrix is not None and len(bridge.matrix._room_locks) == 0
    finally:
        await bob.stop()


async def test_group_chat_becomes_a_group_room(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    carol, carol_events = await friend(msn, CAROL)
    try:
        async with running_bridge(bridge_config(**settings(msn))):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            conv = bob.conversation([CAROL, ALICE])
            assert (await conv.send_text("hi both")).ok
            await until(lambda: len(conv.participants) == 2 and conv.switchboard is not None
                        and len(conv.switchboard.participants) == 2)  # fmt: skip
            await carol_events.wait_for(MessageReceived, lambda e: e.message.text == "hi both")
            assert (await conv.send_text("all here")).ok
            room = None
            for _ in range(75):
                reply = await sync(synapse, owner)
                for room_id, data in reply.get("rooms", {}).get("invite", {}).items():
                    members = {
                        e["state_key"]
                        for e in data["invite_state"]["events"]
                        if e["type"] == "m.room.member"
                    }
                    names = [
                        e for e in data["invite_state"]["events"] if e["type"] == "m.room.name"
                    ]
                    if names:
                        room = room_id
                        assert owner.user_id in members
                if room:
                    break
                await asyncio.sleep(0.2)
            assert room is not None, "no group room invite"
            await join(synapse, owner, room)
            await wait_for_event(
                synapse, owner, room, is_membership(ghost_id(synapse, CAROL), "join")
            )
            await wait_for_event(
                synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "all here")
            )
            await send_text(synapse, owner, room, "hello group")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "hello group")
            await carol_events.wait_for(MessageReceived, lambda e: e.message.text == "hello group")
    finally:
        await bob.stop()
        await carol.stop()


async def _dm_room(synapse: SynapseServer, owner: MatrixUser, bob: Client, text: str) -> str:
    assert (await bob.conversation([ALICE]).send_text(text)).ok
    room = await wait_invite(synapse, owner)
    await join(synapse, owner, room)
    await wait_for_event(synapse, owner, room, is_message_from(ghost_id(synapse, BOB), text))
    return room


async def test_relay_of_a_matrix_user_without_login_and_transaction_retries(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    owner, guest = await synapse.register_user(), await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn, **{"bridge.relay.enabled": True}))):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hey")
            invite = {"user_id": guest.user_id}
            path = f"/_matrix/client/v3/rooms/{quote(room)}/invite"
            await synapse.request("POST", path, invite, token=owner.access_token)
            await join(synapse, guest, room)
            path = f"/_matrix/client/v3/profile/{quote(guest.user_id)}/displayname"
            await synapse.request("PUT", path, {"displayname": "Gus"}, token=guest.access_token)
            await send_text(synapse, guest, room, "not relayed yet")  # relay is off by default
            await send_text(synapse, owner, room, "!msn relay on")
            await wait_for_event(
                synapse, owner, room, is_notice_from(bot_id(synapse), "Relaying is on")
            )
            await send_text(synapse, guest, room, "hello from matrix")
            got = await bob_events.wait_for(
                MessageReceived, lambda e: "hello from matrix" in e.message.text
            )
            assert got.message.text == "<Gus> hello from matrix"
            texts = [e.message.text for e in bob_events.of(MessageReceived)]
            assert not any("not relayed yet" in t for t in texts)

            # A command carrying a password, typed in a portal room, is redacted there too
            # and never reaches MSN.
            secret_event = await send_text(synapse, owner, room, f"!msn login {ALICE} {PASSWORD}")
            for _ in range(100):
                events = {e["event_id"]: e for e in await room_events(synapse, owner, room)}
                if events.get(secret_event, {}).get("content") == {}:
                    break
                await asyncio.sleep(0.1)
            assert events[secret_event]["content"] == {}
            texts = [e.message.text for e in bob_events.of(MessageReceived)]
            assert not any(PASSWORD in t for t in texts)

            # The homeserver retrying a transaction (and a new transaction repeating the
            # event) must not send the message twice.
            event = {
                "type": "m.room.message", "room_id": room, "sender": owner.user_id,
                "event_id": f"$retry{os.getpid()}{secrets.token_hex(4)}", "origin_server_ts": 0,
                "content": {"msgtype": "m.text", "body": "only once"},
            }  # fmt: skip
            headers = {"Authorization": f"Bearer {synapse.appservice.hs_token}"}
            base = f"{synapse.appservice.url}/_matrix/app/v1/transactions/"
            async with aiohttp.ClientSession() as session:
                nonce = secrets.token_hex(4)
                for txn in (f"retry-{nonce}", f"retry-{nonce}", f"other-{nonce}"):
                    url = base + txn
                    async with session.put(url, json={"events": [event]}, headers=headers) as resp:
                        assert resp.status == 200
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "only once")
            await send_text(synapse, owner, room, "after")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "after")

            # A reaction and an image reach MSN as readable text.
            hey = await wait_for_event(
                synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "hey")
            )
            reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": hey["event_id"],
                                         "key": "👍"}}  # fmt: skip
            await put_event(synapse, owner, room, "m.reaction", reaction)
            await bob_events.wait_for(
                MessageReceived, lambda e: e.message.text == "* Alice reacted 👍 to: “hey”"
            )
            # A sticker stays a link; an image in a 1:1 chat is offered as a file
            # (test_matrix_media.py), and one whose media is gone is reported.
            sticker = {"body": "cat.png", "url": "mxc://localhost/AbCdEf", "info": {}}
            await put_event(synapse, owner, room, "m.sticker", sticker)
            got = await bob_events.wait_for(MessageReceived, lambda e: "cat.png" in e.message.text)
            url = f"{synapse.url}/_matrix/media/v3/download/localhost/AbCdEf"
            assert got.message.text == f"[sticker] cat.png: {url}"
            image = {"msgtype": "m.image", "body": "gone.png", "url": "mxc://localhost/AbCdEf"}
            await put_event(synapse, owner, room, "m.room.message", image)
            await wait_for_event(
                synapse, owner, room, is_notice_from(bot_id(synapse), "the file was not sent")
            )
            assert [e.message.text for e in bob_events.of(MessageReceived)].count("only once") == 1
    finally:
        await bob.stop()


async def _restart_reuses_rooms(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,
    database: str | None,
) -> None:
    owner = await synapse.register_user()
    overrides = settings(msn)
    if database is not None:
        overrides["database"] = database
    config = bridge_config(**overrides)
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "before restart")
        await until(lambda: msn.online_sessions(ALICE) == 0)
        await bob.conversation([ALICE]).close()

        def online_count() -> int:
            return sum(
                1
                for e in bob_events.of(PresenceChanged)
                if e.passport == ALICE and e.status == "NLN"
            )

        seen_online = online_count()
        async with running_bridge(config) as bridge:
            await until(lambda: msn.online_sessions(ALICE) == 1)
            assert bridge.sessions is not None and bridge.sessions.get(owner.user_id) is not None
            await bridge.sessions.get(owner.user_id).wait_online(15)  # type: ignore[union-attr]
            # bob sees alice come back online (a fresh NLN, not the one from before).
            await bob_events.until(lambda: online_count() > seen_online)
            assert (await bob.conversation([ALICE]).send_text("after restart")).ok
            await wait_for_event(
                synapse, owner, room, is_message_from(ghost_id(synapse, BOB), "after restart")
            )
            await send_text(synapse, owner, room, "still here")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "still here")
    finally:
        await bob.stop()


async def test_restart_reuses_rooms_sqlite(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    await _restart_reuses_rooms(synapse, bridge_config, msn, None)


async def test_restart_reuses_rooms_postgres(
    synapse: SynapseServer, bridge_config: Callable[..., Path], msn: MSNPTestServer
) -> None:
    import asyncpg

    name = f"msnbridge_test_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unreachable (user postgres, trust auth): {e}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await _restart_reuses_rooms(
            synapse, bridge_config, msn, f"postgres://postgres@127.0.0.1:5432/{name}"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
