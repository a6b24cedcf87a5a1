"""The bridge bot on Matrix: joins the DMs it is invited to and answers commands there.

A password is only asked for or accepted in a room where the bot can remove (redact) the
message holding it. In a DM where it cannot (``createRoom`` with ``preset: private_chat``
or ``public_chat`` gives the invited bot power level 0), it makes a room of its own (the
bot as creator, power level 100), invites the user there and says so, as mautrix
bridges do; a password sent where it cannot be removed is not used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mautrix.errors import MatrixError
from mautrix.types import (
    Event,
    EventType,
    Membership,
    MessageEvent,
    MessageType,
    RoomCreatePreset,
    RoomID,
    StateEvent,
    UserID,
)

from ..core.commands import REFUSAL, CommandContext
from ..permissions import PermissionLevel

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.bot")

COMMAND_PREFIX = "!msn"  # needed in rooms other than a DM with the bot
WELCOME = "Hello. I bridge MSN Messenger. Send 'help' for the list of commands."
SAFE_ROOM_NAME = "MSN bridge"
NO_REDACT = (
    "I cannot remove messages in this room (my power level is too low), so never send "
    "your MSN password here."
)


class _Secret:
    """What a command line does with a secret."""

    NONE, ASKS, HOLDS = 0, 1, 2


class MatrixBot:
    def __init__(self, side: MatrixSide) -> None:
        self.side = side
        # Rooms the bot made for users whose DM it cannot redact in (user → room).
        self._safe_rooms: dict[str, RoomID] = {}

    async def handle_event(self, event: Event) -> None:
        if event.type == EventType.ROOM_MEMBER:
            assert isinstance(event, StateEvent)
            if (
                event.state_key == self.side.bot_mxid
                and event.content.membership == Membership.INVITE
                and not self.side.is_bridge_user(event.sender)  # a ghost making a portal
            ):
                await self._on_invite(event.room_id, event.sender)
        elif event.type == EventType.ROOM_MESSAGE:
            assert isinstance(event, MessageEvent)
            if not self.side.is_bridge_user(event.sender):
                await self._on_message(event)

    async def _on_invite(self, room_id: RoomID, inviter: str) -> None:
        bot = self.side.bot
        level = self.side.level_for(inviter)
        await bot.join_room_by_id(room_id)
        if level is None:
            # Join only to say why; a rejected invite shows the user nothing useful.
            log.info("Refusing %s, who is not in bridge.permissions", inviter)
            await bot.send_notice(room_id, REFUSAL)
            await bot.leave_room(room_id, reason="not allowed to use this bridge")
            return
        log.info("Joined %s, invited by %s", room_id, inviter)
        await bot.send_notice(room_id, WELCOME)
        if not await self.can_redact(room_id):
            await self._send_elsewhere(inviter, room_id, NO_REDACT)

    async def _on_message(self, event: MessageEvent) -> None:
        content = event.content
        if content.msgtype != MessageType.TEXT or not content.body:
            return
        text = content.body.strip()
        if text.lower() == COMMAND_PREFIX or text.lower().startswith(COMMAND_PREFIX + " "):
            text = text[len(COMMAND_PREFIX) :].strip()
        elif not await self._is_dm_with_bot(event.room_id):
            return
        try:
            await self.side.bot.mark_read(event.room_id, event.event_id)
        except MatrixError as e:
            log.debug("Could not send a read receipt: %s", e)
        await self.run_command(event, event.room_id, text)

    async def run_command(
        self,
        event: MessageEvent,
        room_id: RoomID,
        text: str,
        extra: dict[str, object] | None = None,
    ) -> None:
        """Run a bot command from any room (the bot's DM, or ``!msn …`` in a portal room):
        the sender's level from the permissions, replies as notices in that room, and a
        message carrying a secret (``login … <password>``) redacted first."""
        level = self.side.level_for(event.sender)

        async def reply(message: str) -> None:
            await self.side.bot.send_notice(room_id, message)

        ctx = CommandContext(
            sender_id=event.sender,
            is_admin=level == PermissionLevel.ADMIN,
            reply=reply,
            level=level,
            side="matrix",
            room_id=room_id,
            extra={"event_id": event.event_id, **(extra or {})},
        )
        secret = self._secret_in(event.sender, room_id, text)
        if secret != _Secret.NONE and (level is None or level < PermissionLevel.USER):
            # Not theirs to log in with: no room is made for them; a password is still
            # removed where the bot can, and the processor answers why not.
            if secret == _Secret.HOLDS and await self.can_redact(room_id):
                await self._remove_secret(room_id, event)
            await self.side.commands.handle(ctx, text)
            return
        if secret != _Secret.NONE and not await self.can_redact(room_id):
            self.side.commands.drop_prompt(event.sender, room_id)
            if secret == _Secret.HOLDS:
                log.info("Not using a password sent in %s, where it cannot be removed", room_id)
                why = (
                    "I cannot remove messages in this room, so I did not use that password. "
                    "Delete your message yourself: it holds your password."
                )
            else:
                why = NO_REDACT
            await self._send_elsewhere(event.sender, room_id, why)
            return
        if secret == _Secret.HOLDS and not await self._remove_secret(room_id, event):
            self.side.commands.drop_prompt(event.sender, room_id)
            return
        await self.side.commands.handle(ctx, text)

    def _secret_in(self, sender: str, room_id: RoomID, text: str) -> int:
        """Whether the line holds a secret (an answer to a password question, or a
        sensitive command with its secret argument) or asks for one (``login <passport>``)."""
        if self.side.commands.awaiting_secret(sender, room_id):
            return _Secret.HOLDS
        words = text.split(maxsplit=2)
        command = self.side.commands.get(words[0]) if words else None
        if command is None or not command.sensitive:
            return _Secret.NONE
        return _Secret.HOLDS if len(words) > 2 else _Secret.ASKS

    async def can_redact(self, room_id: RoomID) -> bool:
        """Whether the bot may remove other people's messages in the room."""
        me = UserID(self.side.bot_mxid)
        try:
            state = await self.side.bot.get_state(room_id)
        except MatrixError as e:
            log.info("Cannot read the state of %s: %s", room_id, e)
            return False
        create = next((e for e in state if e.type == EventType.ROOM_CREATE), None)
        if create is not None and _creators_rule(create) and me in _creators(create):
            return True  # room version 12: creators have unlimited power
        levels = next((e for e in state if e.type == EventType.ROOM_POWER_LEVELS), None)
        if levels is None:  # no power levels: only the creator has power
            return create is not None and me in _creators(create)
        pl = levels.content
        mine = pl.get_user_level(me)
        return mine >= pl.redact and mine >= pl.get_event_level(EventType.ROOM_REDACTION)

    async def _send_elsewhere(self, user: str, room_id: RoomID, why: str) -> None:
        """Tell the user in ``room_id`` why not here, and invite them to a room of the bot's
        own where a password can be removed (made once per user)."""
        try:
            safe = await self._safe_room(user)
        except MatrixError as e:
            log.warning("Could not make a management room for %s: %s", user, e)
            await self.side.bot.send_notice(
                room_id, f"{why} I could not make a room where I can; try again later."
            )
            return
        await self.side.bot.send_notice(
            room_id,
            f"{why} I invited you to a room of mine where I can remove it "
            f"({safe}, \"{SAFE_ROOM_NAME}\"): send 'login' there.",
        )

    async def _safe_room(self, user: str) -> RoomID:
        room = self._safe_rooms.get(user)
        bot = self.side.bot
        if room is not None:
            members = await bot.get_joined_members(room)
            if user in members or await self._invited(room, user):
                return room
        room = await bot.create_room(
            preset=RoomCreatePreset.PRIVATE,
            name=SAFE_ROOM_NAME,
            topic="Your MSN bridge management room: messages with a password are removed.",
            is_direct=True,
            invitees=[UserID(user)],
        )  # the creator: power level 100 (unlimited from room version 12)
        log.info("Made the management room %s for %s", room, user)
        self._safe_rooms[user] = room
        return room

    async def _invited(self, room: RoomID, user: str) -> bool:
        try:
            member = await self.side.bot.get_state_event(room, EventType.ROOM_MEMBER, user)
        except MatrixError:
            return False
        return getattr(member, "membership", None) == Membership.INVITE

    async def _remove_secret(self, room_id: RoomID, event: MessageEvent) -> bool:
        try:
            await self.side.bot.redact(room_id, event.event_id, reason="it contained a password")
        except MatrixError as e:
            log.info("Could not redact a message holding a password in %s: %s", room_id, e)
            await self.side.bot.send_notice(
                room_id,
                "I could not remove your message, so I did not use it; please delete it: it "
                "holds a password.",
            )
            return False
        return True

    async def _is_dm_with_bot(self, room_id: RoomID) -> bool:
        members = await self.side.bot.get_joined_members(room_id)
        return len(members) == 2 and self.side.bot_mxid in members


def _creators(create: StateEvent) -> set[str]:
    """The room's creators: the create event's sender (``creator`` before room version 11)
    and, from version 12, ``additional_creators``."""
    content = create.content
    extra = content.get("additional_creators") if hasattr(content, "get") else None
    found = {str(create.sender), str(getattr(content, "creator", None) or create.sender)}
    return found | {str(u) for u in extra or []}


def _creators_rule(create: StateEvent) -> bool:
    """Whether creators outrank every power level (room version 12 and later)."""
    version = str(getattr(create.content, "room_version", None) or "1")
    return "hydra" in version or (version.isdigit() and int(version) >= 12)
