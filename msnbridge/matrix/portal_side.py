"""The Matrix side of portals (core.sides.Side): rooms, ghosts speaking in them, notices.

A 1:1 portal is a DM room the contact's ghost creates (is_direct, the owner invited, the
bot joined for commands and notices); a group portal is a room the bot creates with every
participant's ghost. Rooms are created on first use and kept for ever (portals.room_id).

An owner who left a portal room is invited back into the same room (by the contact's
ghost in a DM, the bot in a group) before anything more is shown there: by the next
message from MSN, a nudge, or `chat`. Their membership is what the appservice's state
store learnt from the room's m.room.member events (the homeserver is asked when it knows
nothing). A room the owner cannot be brought back to raises, so the message counts as failed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from mautrix.errors import (
    IntentError,
    MatrixConnectionError,
    MatrixError,
    MatrixRequestError,
    MNotFound,
)
from mautrix.types import (
    EventID,
    EventType,
    Format,
    Membership,
    MessageType,
    RelatesTo,
    RelationType,
    RoomCreatePreset,
    RoomID,
    TextMessageEventContent,
    UserID,
)
from mautrix.types.event.beeper import (
    BeeperMessageStatusEventContent,
    MessageStatus,
    MessageStatusReason,
)

from puppets.contacts import Contact
from puppets.event.conversation import DeliveryResult

from ..core.msn_emoticons import emoticons_in_html
from ..core.router import describe_result
from ..core.sides import ContactChange, NoticeKind, OwnerNotice, PortalMessage
from ..db import user as user_db
from ..db.portal import Portal
from ..formatting import MessageKind, rich_to_html
from ..metrics import homeserver_error_kind
from . import bridge_info
from .files import send_file, upload_file

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.portals")

TYPING_MS = 6000  # MSN repeats typing every ~4 s and never says "stopped"
# A message from MSN waits this long for an unreachable homeserver (a restart) before it is
# given up (and logged); the owner's later messages wait behind it, so the order holds.
HOMESERVER_RETRY_FOR = 300.0
HOMESERVER_RETRY_MAX_DELAY = 5.0
_MSGTYPES = {
    MessageKind.TEXT: MessageType.TEXT,
    MessageKind.EMOTE: MessageType.EMOTE,
    MessageKind.NOTICE: MessageType.NOTICE,
}


class MatrixPortalSide:
    name = "matrix"

    def __init__(self, side: MatrixSide) -> None:
        self.side = side
        self._typing: dict[tuple[str, str], float] = {}  # (room, passport) → typing until
        # Rooms being created, done when their portal knows its room ID: the owner may
        # accept the invite and write before that (inbound waits for these).
        self.creating: set[asyncio.Future[None]] = set()

    # --- which portals ---

    def serves(self, portal: Portal) -> bool:
        return portal.owner.startswith("@")  # the owner is a Matrix user

    async def ensure_portal(self, portal: Portal) -> None:
        if portal.room_id:
            await self._bring_owner_back(portal)
            return
        created = asyncio.get_running_loop().create_future()
        self.creating.add(created)
        try:
            portal.room_id = await self._create_room(portal)
        except MatrixError as e:
            self._hs_error(e)
            raise
        finally:
            self.creating.discard(created)
            created.set_result(None)
        log.info("Created %s room %s", "a DM" if portal.is_direct else "a group", portal.room_id)
        await bridge_info.mark_sent(self.side.db, portal.room_id)

    async def owner_membership(self, portal: Portal) -> Membership:
        room, owner = RoomID(portal.room_id or ""), UserID(portal.owner)
        member = await self.side.state_store.get_member(room, owner)
        if member is not None:
            return member.membership
        # The store never saw the owner's membership: ask the homeserver, as someone
        # surely in the room (the contact's ghost created a DM, the bot a group).
        asker = self._room_keeper(portal)
        try:
            state = await asker.get_state_event(room, EventType.ROOM_MEMBER, owner)
        except MNotFound:
            return Membership.LEAVE
        except MatrixError as e:
            log.debug("Cannot read %s's membership in %s: %s", owner, room, e)
            status = e.http_status if isinstance(e, MatrixRequestError) else None
            if isinstance(e, MatrixConnectionError) or status in (502, 503, 504):
                return Membership.JOIN  # the homeserver is away: deliver as before (it waits)
            return Membership.LEAVE  # inviting is harmless (mautrix takes "already in")
        return getattr(state, "membership", None) or Membership.LEAVE  # (stored by mautrix)

    def _room_keeper(self, portal: Portal):  # type: ignore[no-untyped-def]
        """Who made the portal room and stays in it: the contact's ghost in a DM, else the bot."""
        if portal.is_direct:
            return self.side.ghost_users.intent(portal.participants[0])
        return self.side.bot

    async def _bring_owner_back(self, portal: Portal) -> None:
        """Invite the owner again when they left (or rejected) the portal room."""
        membership = await self.owner_membership(portal)
        if membership in (Membership.JOIN, Membership.INVITE):
            return
        room, owner = RoomID(portal.room_id or ""), UserID(portal.owner)
        # In a DM the contact invites, so clients show it as their DM again.
        inviter = self._room_keeper(portal)
        extra = {"is_direct": True} if portal.is_direct else None
        log.info("%s is not in their portal room %s (%s); inviting them again", owner, room,
                 membership.value)  # fmt: skip
        try:
            await inviter.invite_user(room, owner, extra_content=extra)
        except MatrixError as e:
            self._hs_error(e)
            log.warning("Could not invite %s back into their portal room %s: %s", owner, room, e)
            who = ", ".join(portal.participants)
            text = (
                f"Your conversation with {who} continues in {room}, but the bridge could not "
                f"invite you back into it ({e}); what they write there does not reach you."
            )
            try:
                await self.owner_notice(portal.owner, OwnerNotice(NoticeKind.INFO, text))
            except MatrixError as notice_error:
                log.warning("Could not tell %s either: %s", owner, notice_error)
            raise

    async def _create_room(self, portal: Portal) -> RoomID:
        side = self.side
        bot = side.bot
        owner = UserID(portal.owner)
        client = side.router.sessions.get(portal.owner)
        nicks = {}
        for passport in portal.participants:
            contact = client.contacts.get(passport) if client is not None else None
            nicks[passport] = contact.nick if contact is not None else ""
            await side.ghost_users.ensure(passport, nicks[passport])
        if portal.is_direct:
            (passport,) = portal.participants
            creator = side.ghost_users.intent(passport)
            invitees = [owner, UserID(side.bot_mxid)]
            name = None
        else:
            creator = bot
            invitees = [owner] + [UserID(side.ghosts.mxid(p)) for p in portal.participants]
            people = ", ".join(nicks[p] or p for p in sorted(portal.participants))
            name = f"MSN group chat: {people}"[:200]
        channel = name or nicks[portal.participants[0]] or None
        room_id = await creator.create_room(
            preset=RoomCreatePreset.PRIVATE,
            name=name,
            is_direct=portal.is_direct,
            invitees=invitees,
            initial_state=bridge_info.initial_state(side, portal, channel),
        )
        # Raised afterwards, not by power_level_content_override: room v12 refuses the
        # creator in "users", older versions lose the creator's 100 if "users" is replaced.
        levels = await creator.get_power_levels(room_id)
        for user, level in ((side.bot_mxid, 100), (owner, 50)):
            if user != creator.mxid:
                levels.users[UserID(user)] = level
        levels.invite = 50
        await creator.set_power_levels(room_id, levels)
        if portal.is_direct:
            await bot.join_room_by_id(room_id)
        else:
            for passport in portal.participants:
                await side.ghost_users.intent(passport).join_room_by_id(room_id)
        for passport in portal.participants:
            await side.ghost_users.in_room(passport)
        return room_id

    # --- MSN → Matrix ---

    async def deliver_message(self, portal: Portal, message: PortalMessage) -> str | None:
        if not portal.room_id:
            return None
        body, html = rich_to_html(message.rich)
        if message.own_other_endpoint:
            as_owner = await self._deliver_as_owner(portal, message, body, html)
            if as_owner is not None:
                return as_owner
        if message.sender is not None:
            intent = await self._ghost_in(portal, message.sender, message.nick)
            msgtype = _MSGTYPES[message.kind]
        else:
            # Written on another side (IRC) through the owner's session, or by the owner
            # on another Messenger without double puppeting: the bot shows it.
            intent = self.side.bot
            who = message.display or message.nick
            prefix = f"* {who} " if message.kind is MessageKind.EMOTE else f"<{who}> "
            body = prefix + body
            html = f"{_escape(prefix)}{html}" if html else None
            msgtype = MessageType.NOTICE if message.own_other_endpoint else MessageType.TEXT
        if message.emoticons:
            html = emoticons_in_html(html or _escape(body).replace("\n", "<br>"), message.emoticons)
        # A plain dict: what mautrix would serialise the event content object into.
        content: dict[str, str] = {"msgtype": msgtype.value, "body": body}
        if html:
            content["format"], content["formatted_body"] = Format.HTML.value, html
        # One transaction id for every attempt: a retry after a lost answer is not a
        # second message.
        txn_id = _txn_id(message.txn_id) if message.txn_id else intent.api.get_txn_id()
        # An offline message keeps its original time (appservice timestamp massaging).
        extra = {"timestamp": int(message.sent_at * 1000)} if message.sent_at else {}
        try:
            event_id = await self._retrying(
                lambda: intent.send_message_event(
                    RoomID(portal.room_id or ""),
                    EventType.ROOM_MESSAGE,
                    content,
                    txn_id=txn_id,
                    **extra,
                )
            )
            if message.sender is not None:
                await self._stop_typing(portal, message.sender)
        except MatrixError as e:
            self._hs_error(e)
            raise
        return str(event_id)

    async def _deliver_as_owner(
        self, portal: Portal, message: PortalMessage, body: str, html: str | None
    ) -> str | None:
        """The owner's message from another Messenger, sent as the owner (double
        puppeting); None when that is not configured or the homeserver refuses it."""
        puppets = self.side.double_puppets
        intent = await puppets.intent(portal.owner)
        if intent is None:
            return None
        room = RoomID(portal.room_id or "")
        content = TextMessageEventContent(msgtype=_MSGTYPES[message.kind], body=body)
        if html:
            content.format, content.formatted_body = Format.HTML, html
        txn_id = intent.api.get_txn_id()
        # A real user: never "registered" through the appservice API.
        await self.side.state_store.registered(UserID(portal.owner))
        try:
            await intent.ensure_joined(room, bot=self.side.bot)
            event_id = await self._retrying(
                lambda: intent.send_message_event(
                    room, EventType.ROOM_MESSAGE, content, txn_id=txn_id
                )
            )
        except (IntentError, MatrixRequestError) as e:
            cause = e.__cause__ if isinstance(e, IntentError) else e
            if isinstance(cause, MatrixRequestError) and cause.http_status in (401, 403):
                puppets.refused(portal.owner, cause)
            else:
                log.warning("Could not send %s's own message as them: %s", portal.owner, e)
            return None
        return str(event_id)

    async def _retrying(self, call: Callable[[], Awaitable[EventID]]) -> EventID:
        """``call()``, again while the homeserver is unreachable, for HOMESERVER_RETRY_FOR."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HOMESERVER_RETRY_FOR
        delay = 0.5
        while True:
            try:
                return await call()
            except (MatrixConnectionError, MatrixRequestError) as e:
                status = e.http_status if isinstance(e, MatrixRequestError) else None
                if status not in (None, 502, 503, 504) or loop.time() + delay > deadline:
                    raise
                self._hs_error(e)
                log.warning("The homeserver is unreachable (%s); retrying in %.1f s", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, HOMESERVER_RETRY_MAX_DELAY)

    async def _ghost_in(self, portal: Portal, passport: str, nick: str = ""):  # type: ignore[no-untyped-def]
        intent = await self.side.ghost_users.ensure(passport, nick)
        await intent.ensure_joined(RoomID(portal.room_id or ""), bot=self.side.bot)
        await self.side.ghost_users.in_room(passport)
        return intent

    async def deliver_typing(self, portal: Portal, passport: str) -> None:
        if not portal.room_id:
            return
        intent = await self._ghost_in(portal, passport)
        self._typing[(portal.room_id, passport)] = time.monotonic() + TYPING_MS / 1000
        await intent.set_typing(RoomID(portal.room_id), timeout=TYPING_MS)

    async def _stop_typing(self, portal: Portal, passport: str) -> None:
        until = self._typing.pop((portal.room_id or "", passport), None)
        if until is not None and until > time.monotonic():
            intent = self.side.ghost_users.intent(passport)
            await intent.set_typing(RoomID(portal.room_id or ""), timeout=0)

    async def deliver_nudge(self, portal: Portal, passport: str, nick: str) -> None:
        if not portal.room_id:
            return
        room = RoomID(portal.room_id)
        if passport:
            intent = await self._ghost_in(portal, passport, "")
            await intent.send_emote(room, "sent a nudge")
        else:
            await self.side.bot.send_notice(room, f"{nick} sent a nudge")

    async def participant_joined(self, portal: Portal, passport: str, nick: str) -> None:
        if portal.room_id:
            await self._ghost_in(portal, passport, nick)

    async def participant_left(self, portal: Portal, passport: str) -> None:
        if portal.room_id:
            intent = self.side.ghost_users.intent(passport)
            try:
                await intent.leave_room(RoomID(portal.room_id), reason="left the MSN conversation")
            except MatrixError as e:
                log.debug("A ghost could not leave %s: %s", portal.room_id, e)

    async def conversation_grew(self, direct: Portal, group: Portal) -> None:
        """A 1:1 conversation became a group chat in a new room: say so in the 1:1 room,
        with a link to the group's."""
        if not direct.room_id or not group.room_id:
            return
        client = self.side.router.sessions.get(direct.owner)
        names = []
        for passport in group.participants:
            contact = client.contacts.get(passport) if client is not None else None
            names.append(contact.nick if contact is not None and contact.nick else passport)
        link = f"https://matrix.to/#/{quote(group.room_id)}?via={quote(self.side.domain)}"
        people = ", ".join(names)
        notice = TextMessageEventContent(
            msgtype=MessageType.NOTICE,
            body=f"This conversation continues as a group chat with {people}: {link}",
            format=Format.HTML,
            formatted_body=f"This conversation continues as a group chat with "
            f'{_escape(people)}: <a href="{_escape(link)}">{_escape(group.room_id)}</a>',
        )
        room = RoomID(direct.room_id)
        await self.side.bot.ensure_joined(room)
        await self.side.bot.send_message(room, notice)

    # --- failures and notices ---

    async def delivery_failed(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        if not portal.room_id:
            return
        room = RoomID(portal.room_id)
        bot = self.side.bot
        shown = text if len(text) <= 80 else text[:77] + "…"
        notice = TextMessageEventContent(
            msgtype=MessageType.NOTICE,
            body=f"⚠ Not delivered to MSN ({describe_result(result)}): “{shown}”",
        )
        if origin_id:
            notice.set_reply(EventID(origin_id))
        await bot.ensure_joined(room)
        await bot.send_message(room, notice)
        if origin_id and self.side.config["bridge.message_status_events"]:
            # What mautrix bridges send (MSC-less, Beeper's com.beeper.message_send_status).
            status = BeeperMessageStatusEventContent(
                relates_to=RelatesTo(rel_type=RelationType.REFERENCE, event_id=EventID(origin_id)),
                network="msn",
                status=MessageStatus.FAIL,
                reason=MessageStatusReason.NETWORK_ERROR,
                error=result.status.value,
                message=describe_result(result),
            )
            try:
                await bot.send_message_event(room, EventType.BEEPER_MESSAGE_STATUS, status)
            except MatrixError as e:
                log.debug("Could not send a message status event: %s", e)

    async def delivery_note(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        if not portal.room_id:
            return
        room = RoomID(portal.room_id)
        shown = text if len(text) <= 80 else text[:77] + "…"
        notice = TextMessageEventContent(
            msgtype=MessageType.NOTICE,
            body=f"✉ Sent as an offline message ({result.reason}): “{shown}”",
        )
        if origin_id:
            notice.set_reply(EventID(origin_id))
        await self.side.bot.ensure_joined(room)
        await self.side.bot.send_message(room, notice)

    async def owner_notice(self, owner: str, notice: OwnerNotice) -> None:
        if not owner.startswith("@"):
            return
        stored = await user_db.get(self.side.db, owner)
        room = stored.management_room if stored is not None else None
        # A first login stores its room once it is done; MSN speaks during it already.
        room = room or self.side.router.sessions.login_rooms.get(owner)
        if not room:
            log.info("No management room to tell %s: %s", owner, notice.text)
            return
        await self.side.bot.send_notice(RoomID(room), notice.text)

    async def deliver_file(
        self, portal: Portal, passport: str, nick: str, path: Path, name: str, size: int
    ) -> str | None:
        """A file received from an MSN contact, posted by their ghost as Matrix media."""
        if not portal.room_id:
            return None
        intent = await self._ghost_in(portal, passport, nick)
        try:
            return str(await send_file(intent, RoomID(portal.room_id), path, name, size))
        except MatrixError as e:
            self._hs_error(e)
            raise

    async def upload_file(self, path: Path, name: str, size: int) -> str:
        """A file for users of another side (IRC): uploaded by the bot; its mxc URI."""
        try:
            return await upload_file(self.side.az.intent, path, name, size)
        except MatrixError as e:
            self._hs_error(e)
            raise

    async def emoticon_url(self, sha1d: str, data: bytes, shortcut: str) -> str:
        """The mxc of a custom emoticon's image (uploaded once per SHA1D)."""
        return str(await self.side.media.mxc_for(sha1d, data, f"{shortcut}.png"))

    async def contact_picture(self, owner: str, passport: str, sha1d: str, data: bytes) -> None:
        """A contact's display picture (checked against its SHA1D) becomes their ghost's
        avatar; uploaded once per SHA1D whoever's contact it is."""
        if not owner.startswith("@"):
            return
        try:
            mxc = await self.side.media.mxc_for(sha1d, data, f"{passport}.png")
            await self.side.ghost_users.set_avatar(passport, mxc)
        except MatrixError as e:
            self._hs_error(e)
            raise

    async def contact_changed(self, owner: str, contact: Contact, change: ContactChange) -> None:
        if not owner.startswith("@") or change is ContactChange.REMOVED:
            return
        try:
            await self.side.ghost_users.update(contact)
        except MatrixError as e:
            self._hs_error(e)
            raise

    def _hs_error(self, error: MatrixError) -> None:
        metrics = self.side.metrics
        if metrics is not None:
            status = error.http_status if isinstance(error, MatrixRequestError) else None
            metrics.homeserver_error(homeserver_error_kind(status))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_NOT_PATH_SAFE = re.compile(r"[^\w.-]")  # \w: what str.isalnum() accepts, and "_"


def _txn_id(stable: str) -> str:
    """A transaction id from a message's stable id (path-safe characters only)."""
    return "msnbridge-" + _NOT_PATH_SAFE.sub("-", stable)
