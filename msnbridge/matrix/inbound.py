"""Matrix events in portal rooms → the core Router (messages, edits, replies, reactions,
media, typing, nudges, relaying, commands with the !msn prefix).

MSN has plain formatted text only, so everything is rendered as readable text: an edit as
"* new text", a reply as "> quoted" before the answer, a reaction as "reacted 👍 to: …",
media as a link to the homeserver's download URL. Nothing is dropped silently: what
cannot be sent is reported in the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mautrix.api import Method, Path
from mautrix.errors import MatrixError
from mautrix.types import (
    Event,
    EventID,
    EventType,
    Membership,
    MessageEvent,
    MessageType,
    ReactionEvent,
    RoomID,
    StateEvent,
    TextMessageEventContent,
    TypingEvent,
)

from ..db.portal import Portal
from ..formatting import MessageKind, RichText, Span, from_html, strip_reply_fallback
from ..permissions import PermissionLevel
from .bot import COMMAND_PREFIX
from .double_puppet import is_double_puppet_echo

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.inbound")

NUDGE_COMMANDS = frozenset({"/nudge", "!nudge"})
TYPING_REPEAT = 4.0  # seconds; MSN clients show typing for ~5 s after a notice
TYPING_MAX = 120.0  # never repeat longer than this without a fresh typing event
QUOTE_LIMIT = 80
ROOM_SETUP_WAIT = 30.0  # seconds an event of an unknown room waits for rooms being created
_MEDIA_WORDS = {
    MessageType.IMAGE: "image",
    MessageType.VIDEO: "video",
    MessageType.AUDIO: "audio",
    MessageType.FILE: "file",
    MessageType.STICKER: "sticker",
}


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def media_url(base: str, mxc: str) -> str | None:
    """mxc://server/id → <base>/_matrix/media/v3/download/server/id."""
    if not mxc.startswith("mxc://"):
        return None
    server, _, media_id = mxc.removeprefix("mxc://").partition("/")
    if not server or not media_id:
        return None
    return f"{base.rstrip('/')}/_matrix/media/v3/download/{quote(server)}/{quote(media_id)}"


def render_content(
    content: Any, media_base: str, quoted: str | None = None
) -> tuple[RichText, MessageKind] | None:
    """A Matrix message's content as MSN-ready rich text; None when there is nothing to say.

    ``quoted`` is the text of the event it replies to (shown as "> quoted" first).
    """
    msgtype = getattr(content, "msgtype", None)
    body: str = getattr(content, "body", "") or ""
    kind = MessageKind.EMOTE if msgtype == MessageType.EMOTE else MessageKind.TEXT
    if msgtype in _MEDIA_WORDS:
        url = media_url(media_base, str(getattr(content, "url", "") or ""))
        word = _MEDIA_WORDS[msgtype]
        name = body.strip() or word
        text = f"[{word}] {name}: {url}" if url else f"[{word}] {name} (encrypted or unavailable)"
        rich = RichText.from_plain(text)
    elif msgtype == MessageType.LOCATION:
        geo = getattr(content, "geo_uri", "") or ""
        rich = RichText.from_plain(f"[location] {body} {geo}".strip())
    else:
        if quoted is not None:
            body = strip_reply_fallback(body)
        html = (
            getattr(content, "formatted_body", None) if getattr(content, "format", None) else None
        )
        # A formatted_body that is not a string (a broken client) falls back to body.
        rich = from_html(html) if isinstance(html, str) and html else RichText()
        if not rich.plain().strip():
            rich = RichText.from_plain(body)
    if not rich.plain().strip():
        return None
    edit = getattr(content, "get_edit", lambda: None)()
    prefix = "* " if edit else ""  # the usual edit marker of text bridges
    if quoted is not None:
        prefix = f"> {shorten(quoted)}\n" + prefix
    if prefix:
        rich = RichText([Span(prefix), *rich.spans], rich.kind)
    return RichText(rich.spans, kind), kind


class MatrixInbound:
    def __init__(self, side: MatrixSide) -> None:
        self.side = side
        self._typing: dict[str, asyncio.Task[None]] = {}  # room → repeater
        self.ephemeral_seen = False
        # (room, sender) of people told their messages are not relayed: once each per run.
        self._told_not_relayed: set[tuple[str, str]] = set()

    @property
    def router(self):  # type: ignore[no-untyped-def]
        return self.side.router

    # --- entry points ---

    async def handle(self, event: Event, started: float) -> bool:
        """Handles an event of a portal room; False when the room is not a portal."""
        if event.type == EventType.TYPING:
            self.ephemeral_seen = True
            assert isinstance(event, TypingEvent)
            portal = await self.router.portals.by_room(event.room_id)
            if portal is not None:
                self._typing_changed(portal, event.content.user_ids)
            return portal is not None
        if event.type.is_ephemeral:
            self.ephemeral_seen = True
            return False
        if event.type == EventType.ROOM_MEMBER:
            assert isinstance(event, StateEvent)
            await self._membership(event)
            return False  # the bot handles invites to itself
        if event.type not in (EventType.ROOM_MESSAGE, EventType.REACTION, EventType.STICKER):
            return False
        room_id = getattr(event, "room_id", None)
        portal = await self.router.portals.by_room(room_id) if room_id else None
        if portal is None and room_id and (creating := self.side.portal_side.creating):
            # The owner can join a portal room and write while the bridge still sets it
            # up (power levels, the bot joining): wait for the rooms being created.
            await asyncio.wait(list(creating), timeout=ROOM_SETUP_WAIT)
            portal = await self.router.portals.by_room(room_id)
        if portal is None:
            return False
        if self.side.is_bridge_user(event.sender):
            return True  # our own echo
        if event.sender == portal.owner and is_double_puppet_echo(event.content):
            return True  # the owner's message from another Messenger, sent by us as them
        if event.type == EventType.REACTION:
            assert isinstance(event, ReactionEvent)
            await self._reaction(portal, event, started)
        else:
            await self._message(portal, event, started)  # type: ignore[arg-type]
        return True

    async def _membership(self, event: StateEvent) -> None:
        """The owner leaving a portal room is logged; the next message from MSN (or
        `chat`) invites them again (MatrixPortalSide.ensure_portal)."""
        membership = event.content.membership
        if membership not in (Membership.LEAVE, Membership.BAN):
            return
        portal = await self.router.portals.by_room(event.room_id)
        if portal is not None and event.state_key == portal.owner:
            log.info(
                "%s left their portal room %s (%s); they are invited again when it is next "
                "used", portal.owner, event.room_id, portal.key,
            )  # fmt: skip

    async def _message(self, portal: Portal, event: MessageEvent, started: float) -> None:
        content = event.content
        body = (getattr(content, "body", "") or "").strip()
        if body.lower() == COMMAND_PREFIX or body.lower().startswith(COMMAND_PREFIX + " "):
            await self._command(portal, event, body[len(COMMAND_PREFIX) :].strip())
            return
        if not await self._may_send(portal, event.sender):
            await self._tell_not_relayed(portal, event)
            return
        if body.lower() in NUDGE_COMMANDS and event.sender == portal.owner:
            self._stop_typing(portal)
            await self.router.send_nudge(portal, "matrix", str(event.event_id))
            return
        quoted = None
        reply_to = getattr(content, "get_reply_to", lambda: None)()
        if reply_to:
            quoted = await self._text_of(portal, reply_to) or "(an earlier message)"
        if event.type == EventType.STICKER:
            content.msgtype = MessageType.STICKER
        elif event.sender == portal.owner and self.side.outgoing_files.wants(portal, content):
            self._stop_typing(portal)
            self.side.outgoing_files.start(portal, str(event.event_id), content)
            return
        rendered = render_content(content, self.side.media_base, quoted)
        if rendered is None:
            await self.side.bot.send_notice(
                RoomID(portal.room_id or ""),
                "⚠ This kind of message cannot be sent to MSN; it was not delivered.",
            )
            return
        rich, kind = rendered
        self._stop_typing(portal)
        await self.router.send(
            portal,
            "matrix",
            str(event.event_id),
            await self._display(portal, event.sender),
            rich,
            kind,
            started=started,
        )

    async def _reaction(self, portal: Portal, event: ReactionEvent, started: float) -> None:
        if not await self._may_send(portal, event.sender):
            await self._tell_not_relayed(portal, event)
            return
        relates = event.content.relates_to
        target = await self._text_of(portal, str(relates.event_id)) if relates.event_id else None
        text = f"reacted {relates.key} to: “{shorten(target or 'a message')}”"
        display = await self._display(portal, event.sender)
        # An emote: "* Alice reacted 👍 to: …", with the owner's or the relayed name.
        rich = RichText.from_plain(text, MessageKind.EMOTE)
        await self.router.send(
            portal, "matrix", str(event.event_id), display, rich, MessageKind.EMOTE, started=started
        )

    async def _command(self, portal: Portal, event: MessageEvent, text: str) -> None:
        room = RoomID(portal.room_id or "")
        await self.side.bot_handler.run_command(event, room, text, {"portal": portal})

    # --- who may send, as whom ---

    async def _may_send(self, portal: Portal, sender: str) -> bool:
        if sender == portal.owner:
            return True
        level = self.side.level_for(sender)
        # Relayed: someone else in the owner's room, allowed by permissions, relay on.
        relays = self.router.portals.relays(portal)
        return level is not None and level >= PermissionLevel.RELAY and relays

    async def _tell_not_relayed(self, portal: Portal, event: Event) -> None:
        """Someone whose messages do not go to MSN hears why, once per room (per run)."""
        room, sender = portal.room_id or "", str(event.sender)
        if (room, sender) in self._told_not_relayed:
            return
        self._told_not_relayed.add((room, sender))
        level = self.side.level_for(sender)
        if level is None:
            why = "you have no rights on this bridge"
        elif level < PermissionLevel.RELAY:
            why = "your rights on this bridge do not include relaying"
        else:
            why = (
                "relaying is off in this room (its owner can turn it on with "
                f"'{COMMAND_PREFIX} relay on')"
            )
        notice = TextMessageEventContent(
            msgtype=MessageType.NOTICE,
            body=f"{sender}: your messages here are not sent to MSN: {why}. Only the owner's "
            "messages reach the MSN conversation. (Said once.)",
        )
        notice.set_reply(EventID(str(event.event_id)))
        log.info("Not relaying %s in %s: %s", sender, room, why)
        try:
            await self.side.bot.send_message(RoomID(room), notice)
        except MatrixError as e:
            log.warning("Could not tell %s that they are not relayed: %s", sender, e)

    async def _display(self, portal: Portal, sender: str) -> str | None:
        """None for the owner (they are the MSN session); a display name for the relayed."""
        if sender == portal.owner:
            return None
        name = None
        with contextlib.suppress(MatrixError, AttributeError):
            name = await self.side.bot.get_room_displayname(RoomID(portal.room_id or ""), sender)
        return name or sender.removeprefix("@").split(":", 1)[0]

    async def _text_of(self, portal: Portal, event_id: str) -> str | None:
        try:
            target = await self.side.bot.get_event(RoomID(portal.room_id or ""), EventID(event_id))
        except MatrixError as e:
            log.debug("Cannot read the event %s: %s", event_id, e)
            return None
        body = getattr(target.content, "body", None)
        if not isinstance(body, str):
            return None
        if getattr(target.content, "get_reply_to", lambda: None)():
            body = strip_reply_fallback(body)
        return await self._latest_edit(portal, event_id, str(target.sender)) or body

    async def _latest_edit(self, portal: Portal, event_id: str, sender: str) -> str | None:
        """The text of the newest edit (m.replace) of an event by its own sender, if any."""
        room = RoomID(portal.room_id or "")
        path = Path.v1.rooms[room].relations[EventID(event_id)]["m.replace"]
        try:
            reply = await self.side.bot.api.request(
                Method.GET, path, query_params={"dir": "b", "limit": "20"}
            )
        except MatrixError as e:
            log.debug("Cannot read the edits of %s: %s", event_id, e)
            return None
        for edit in reply.get("chunk", []):  # newest first
            new = edit.get("content", {}).get("m.new_content") or {}
            body = new.get("body") if isinstance(new, dict) else None
            if edit.get("sender") == sender and isinstance(body, str):
                return body
        return None

    # --- typing: Matrix → MSN, repeated while the owner types ---

    def _typing_changed(self, portal: Portal, user_ids: list[str]) -> None:
        room = portal.room_id or ""
        if portal.owner in user_ids:
            task = self._typing.get(room)
            if task is None or task.done():
                self._typing[room] = asyncio.get_running_loop().create_task(
                    self._repeat_typing(portal), name="matrix-typing"
                )
        else:
            self._stop_typing(portal)

    def _stop_typing(self, portal: Portal) -> None:
        task = self._typing.pop(portal.room_id or "", None)
        if task is not None:
            task.cancel()

    async def _repeat_typing(self, portal: Portal) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + TYPING_MAX
        while loop.time() < until:
            try:
                await self.router.send_typing(portal)
            except Exception as e:  # a typing notice is best effort
                log.debug("Typing notice failed: %s", e)
            await asyncio.sleep(TYPING_REPEAT)

    async def stop(self) -> None:
        for task in self._typing.values():
            task.cancel()
        self._typing.clear()
