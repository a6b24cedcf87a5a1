"""Unit tests of the pure parts of portals: Matrix content → MSN text, presence mapping,
relay formatting, and the portal store's keys and live-conversation binding."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from mautrix.types import (
    EventID,
    Format,
    MediaMessageEventContent,
    MessageType,
    PresenceState,
    TextMessageEventContent,
)

from msnbridge.core.portal import PortalStore, portal_key
from msnbridge.core.router import Router, describe_result
from msnbridge.db import open_database
from msnbridge.formatting import MessageKind, RichText, Span, to_msn
from msnbridge.matrix.ghosts import matrix_presence
from msnbridge.matrix.inbound import media_url, render_content
from puppets.event.conversation import DeliveryResult, DeliveryStatus

BASE = "https://matrix.example.com"


def rendered_text(content: object, quoted: str | None = None) -> tuple[str, MessageKind]:
    result = render_content(content, BASE, quoted)
    assert result is not None
    rich, kind = result
    return to_msn(rich)[0], kind


def test_formatted_text_keeps_formatting() -> None:
    content = TextMessageEventContent(
        msgtype=MessageType.TEXT, body="hi bob", format=Format.HTML, formatted_body="<b>hi</b> bob"
    )
    rich, kind = render_content(content, BASE)  # type: ignore[misc]
    assert kind is MessageKind.TEXT
    assert rich.spans[0] == Span("hi", bold=True)


def test_emote_edit_and_reply() -> None:
    emote = TextMessageEventContent(msgtype=MessageType.EMOTE, body="waves")
    assert rendered_text(emote) == ("waves", MessageKind.EMOTE)
    edit = TextMessageEventContent(msgtype=MessageType.TEXT, body="fixed text")
    edit.set_edit(EventID("$original"))
    assert rendered_text(edit) == ("* fixed text", MessageKind.TEXT)
    reply = TextMessageEventContent(
        msgtype=MessageType.TEXT, body="> <@bob:example.com> are you coming?\n\nyes!"
    )
    reply.set_reply(EventID("$question"))
    text, _ = rendered_text(reply, quoted="are you coming?")
    assert text == "> are you coming?\nyes!"


def test_long_quotes_are_shortened() -> None:
    reply = TextMessageEventContent(msgtype=MessageType.TEXT, body="ok")
    text, _ = rendered_text(reply, quoted="word " * 40)
    first = text.split("\n")[0]
    assert first.endswith("…") and len(first) <= 82


def test_media_becomes_a_download_link() -> None:
    image = MediaMessageEventContent(
        msgtype=MessageType.IMAGE, body="cat.png", url="mxc://example.com/AbC123"
    )
    assert rendered_text(image) == (
        "[image] cat.png: https://matrix.example.com/_matrix/media/v3/download/example.com/AbC123",
        MessageKind.TEXT,
    )
    encrypted = MediaMessageEventContent(msgtype=MessageType.FILE, body="secret.pdf")
    assert rendered_text(encrypted)[0] == "[file] secret.pdf (encrypted or unavailable)"
    assert media_url(BASE, "https://not-mxc") is None
    assert media_url(BASE + "/", "mxc://s/id") == f"{BASE}/_matrix/media/v3/download/s/id"


def test_empty_content_is_reported_not_sent() -> None:
    assert render_content(SimpleNamespace(msgtype=MessageType.TEXT, body="  "), BASE) is None


def test_presence_mapping() -> None:
    assert matrix_presence("NLN") == (PresenceState.ONLINE, None)
    assert matrix_presence("NLN", "hello") == (PresenceState.ONLINE, "hello")
    for status in ("AWY", "BRB", "LUN", "IDL"):
        assert matrix_presence(status) == (PresenceState.UNAVAILABLE, None)
    assert matrix_presence("BSY") == (PresenceState.UNAVAILABLE, "Busy")
    assert matrix_presence("PHN", "call me") == (
        PresenceState.UNAVAILABLE,
        "On the phone — call me",
    )
    assert matrix_presence("FLN")[0] is PresenceState.OFFLINE
    assert matrix_presence("HDN")[0] is PresenceState.OFFLINE


def test_relay_format() -> None:
    router = Router.__new__(Router)
    router.relay_format = "<{displayname}> {message}"
    out = router.relayed(RichText([Span("hi", bold=True)]), "Gus")
    assert to_msn(out)[0] == "<Gus> hi" and to_msn(out)[1].bold
    router.relay_format = "{displayname} says"
    assert router.relayed(RichText.from_plain("x"), "Gus").plain() == "Gus says x"


def test_describe_result() -> None:
    result = DeliveryResult(DeliveryStatus.OFFLINE, "bob@example.com is offline")
    assert describe_result(result) == "offline: bob@example.com is offline"


async def test_portal_store_keys_and_persistence(tmp_path: Path) -> None:
    assert portal_key([" Bob@Example.com", "carol@example.com", "bob@example.com"]) == (
        "bob@example.com,carol@example.com"
    )
    db = await open_database(f"sqlite:{tmp_path / 'p.db'}")
    try:
        await db.execute("INSERT INTO users (id, side) VALUES ('@o:x', 'matrix')")
        store = PortalStore(db, relay_default=True)
        direct = await store.get_or_create("@o:x", ["BOB@example.com"])
        group = await store.get_or_create("@o:x", ["carol@example.com", "bob@example.com"])
        assert direct.is_direct and not group.is_direct and direct.relay_enabled
        direct.room_id = "!dm:x"
        await store.save(direct)
        fresh = PortalStore(db)
        found = await fresh.by_room("!dm:x")
        assert found is not None and found.key == "bob@example.com"
        assert (await fresh.count())["matrix"] == 1
    finally:
        await db.stop()


class _FakeIntent:
    def __init__(self, log: list[tuple[str, PresenceState, str | None]], mxid: str) -> None:
        self.log, self.mxid = log, mxid

    async def set_presence(
        self, state: PresenceState, status: str | None = None, ignore_cache: bool = False
    ) -> None:
        assert ignore_cache  # the cache would swallow the refresh
        self.log.append((self.mxid, state, status))


async def test_ghost_presence_is_refreshed_while_online() -> None:
    import asyncio

    from msnbridge.matrix.ghosts import Ghosts
    from msnbridge.matrix.ids import GhostIds

    calls: list[tuple[str, PresenceState, str | None]] = []
    az = SimpleNamespace(intent=None)
    ids = GhostIds("msn_{passport}", "example.com")
    ghosts = Ghosts(
        az,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        ids,
        "{nick} (MSN)",
        refresh_interval=0.05,
        make_intent=lambda mxid: _FakeIntent(calls, mxid),  # type: ignore[arg-type,return-value]
    )
    await ghosts.set_presence("bob@example.com", "BSY", "coding")
    await ghosts.set_presence("carol@example.com", "NLN")
    await ghosts.set_presence("carol@example.com", "FLN")  # went offline: no more refreshes
    ghosts.start()
    await asyncio.sleep(0.3)
    await ghosts.stop()
    bob = [c for c in calls if c[0] == ids.mxid("bob@example.com")]
    carol = [c for c in calls if c[0] == ids.mxid("carol@example.com")]
    assert len(bob) >= 3 and set(bob) == {
        (ids.mxid("bob@example.com"), PresenceState.UNAVAILABLE, "Busy — coding")
    }
    assert [c[1] for c in carol] == [PresenceState.ONLINE, PresenceState.OFFLINE]
    assert ghosts.displayname("bob@example.com", "Bob") == "Bob (MSN)"
    assert ghosts.displayname("bob@example.com", "") == "bob@example.com (MSN)"


async def test_a_portal_created_by_two_lanes_at_once_is_one_object(tmp_path: Path) -> None:
    """Conversation lanes of one owner run side by side (issue 14): two creating the same
    portal at the same time get one Portal, so its room is created once."""
    db = await open_database(f"sqlite:{tmp_path / 'p.db'}")
    try:
        await db.execute("INSERT INTO users (id, side) VALUES ('@o:x', 'matrix')")
        store = PortalStore(db)
        people = ["bob@example.com", "carol@example.com"]
        first, second = await asyncio.gather(
            store.get_or_create("@o:x", people), store.get_or_create("@o:x", people)
        )
        assert first is second
        assert await PortalStore(db).get("@o:x", people) is not None  # stored
    finally:
        await db.stop()
