"""The bridge bot on Matrix: joins the DMs it is invited to and answers commands there."""

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
    RoomID,
    StateEvent,
)

from ..core.commands import REFUSAL, CommandContext
from ..permissions import PermissionLevel

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.bot")

COMMAND_PREFIX = "!msn"  # needed in rooms other than a DM with the bot
WELCOME = "Hello. I bridge MSN Messenger. Send 'help' for the list of commands."


class MatrixBot:
    def __init__(self, side: MatrixSide) -> None:
        self.side = side

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
        command = self.side.commands.get(text.split(maxsplit=1)[0]) if text else None
        answers_secret = self.side.commands.awaiting_secret(event.sender, room_id)
        if answers_secret or (command is not None and command.sensitive):
            await self._remove_secret(room_id, event)
        await self.side.commands.handle(ctx, text)

    async def _remove_secret(self, room_id: RoomID, event: MessageEvent) -> None:
        try:
            await self.side.bot.redact(room_id, event.event_id, reason="it contained a password")
        except MatrixError as e:
            log.info("Could not redact a message holding a password in %s: %s", room_id, e)
            await self.side.bot.send_notice(
                room_id, "I could not remove your message; please delete it: it holds a password."
            )

    async def _is_dm_with_bot(self, room_id: RoomID) -> bool:
        members = await self.side.bot.get_joined_members(room_id)
        return len(members) == 2 and self.side.bot_mxid in members
