"""Bot commands, written once and reached from the Matrix bot and the IRC bot.

A side builds a CommandContext for each incoming command (who sent it, their permission level,
how to reply) and calls `CommandProcessor.handle(ctx, text)`. Commands are registered with
their help text and the level they need; `help` lists what the sender may use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..permissions import PermissionLevel

log = logging.getLogger("msnbridge.commands")

REFUSAL = (
    "You are not allowed to use this bridge. Ask its operator to add you (or your server) "
    "under bridge.permissions in the bridge configuration."
)

Reply = Callable[[str], Awaitable[None]]


@dataclass
class CommandContext:
    sender_id: str  # Matrix user ID, or the IRC side's identity
    is_admin: bool
    reply: Reply
    # What the sender may do; None means the bridge refuses them entirely.
    level: PermissionLevel | None = PermissionLevel.USER
    side: str = "matrix"  # "matrix" or "irc"
    room_id: str | None = None  # where the command came from (Matrix room, IRC target)
    extra: dict[str, Any] = field(default_factory=dict)  # side-specific handles
    # Set by CommandProcessor.handle:
    command: str = ""
    args: list[str] = field(default_factory=list)  # words after the command name
    raw_args: str = ""  # the text after the command name, spacing kept (passwords)
    processor: CommandProcessor | None = None

    def __post_init__(self) -> None:
        if self.is_admin:
            self.level = PermissionLevel.ADMIN


Handler = Callable[[CommandContext], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    help: str  # one line
    usage: str = ""  # the arguments, e.g. "<passport> [password]"
    level: PermissionLevel = PermissionLevel.USER
    aliases: tuple[str, ...] = ()
    sensitive: bool = False  # the arguments carry a secret: sides remove the message
    # The owner of a stored MSN login may use it whatever their rights now (logout and
    # status: a user whose rights were lowered can still sign out and wipe the password).
    for_login_owners: bool = False


AnswerHandler = Callable[[CommandContext, str], Awaitable[None]]
LoginOwnerCheck = Callable[[str], Awaitable[bool]]
PROMPT_TIMEOUT = 300.0  # seconds a question ("your password?") stays open


@dataclass
class _Prompt:
    handler: AnswerHandler
    secret: bool
    expires: float


class CommandProcessor:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._names: dict[str, Command] = {}  # names and aliases
        # Questions waiting for the sender's next message in the same room.
        self._prompts: dict[tuple[str, str | None], _Prompt] = {}
        # Whether a sender owns a stored MSN login (set by register_account_commands).
        self.login_owner: LoginOwnerCheck | None = None
        self.register(
            Command("help", _help, "List the commands you can use", level=PermissionLevel.RELAY)
        )

    def register(self, command: Command) -> None:
        for name in (command.name, *command.aliases):
            if name in self._names:
                raise ValueError(f"command name {name!r} is already registered")
        self._commands[command.name] = command
        for name in (command.name, *command.aliases):
            self._names[name] = command

    def command(
        self,
        name: str,
        *,
        help: str,
        usage: str = "",
        level: PermissionLevel = PermissionLevel.USER,
        aliases: tuple[str, ...] = (),
        sensitive: bool = False,
        for_login_owners: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator form of register()."""

        def decorate(handler: Handler) -> Handler:
            self.register(
                Command(name, handler, help, usage, level, aliases, sensitive, for_login_owners)
            )
            return handler

        return decorate

    def get(self, name: str) -> Command | None:
        return self._names.get(name.lower())

    def available_to(self, level: PermissionLevel | None) -> list[Command]:
        if level is None:
            return []
        return sorted(
            (c for c in self._commands.values() if c.level <= level), key=lambda c: c.name
        )

    def ask(self, ctx: CommandContext, handler: AnswerHandler, *, secret: bool = False) -> None:
        """Take the sender's next message in this room as the answer to a question (e.g.
        the password after ``login <passport>``); ``cancel`` drops the question."""
        self._prompts[(ctx.sender_id, ctx.room_id)] = _Prompt(
            handler, secret, time.monotonic() + PROMPT_TIMEOUT
        )

    def _prompt(self, sender_id: str, room_id: str | None) -> _Prompt | None:
        prompt = self._prompts.get((sender_id, room_id))
        if prompt is not None and prompt.expires < time.monotonic():
            del self._prompts[(sender_id, room_id)]
            return None
        return prompt

    def awaiting_secret(self, sender_id: str, room_id: str | None) -> bool:
        """Whether the sender's next message here answers a question about a secret: the
        side must remove it (Matrix redacts it) before anything else."""
        prompt = self._prompt(sender_id, room_id)
        return prompt is not None and prompt.secret

    def drop_prompt(self, sender_id: str, room_id: str | None) -> None:
        """Forget a question waiting for the sender's answer in this room."""
        self._prompts.pop((sender_id, room_id), None)

    async def handle(self, ctx: CommandContext, text: str) -> None:
        """Runs one command line; every outcome (including failures) is answered."""
        ctx.processor = self
        owner_exempt = await self._owner_exempt(ctx, text)
        if ctx.level is None and not owner_exempt:
            await ctx.reply(REFUSAL)
            return
        prompt = self._prompt(ctx.sender_id, ctx.room_id)
        if prompt is not None:
            del self._prompts[(ctx.sender_id, ctx.room_id)]
            if text.strip().lower() == "cancel":
                await ctx.reply("Cancelled.")
                return
            try:
                await prompt.handler(ctx, text.strip())
            except Exception:
                log.exception("Answer from %s failed", ctx.sender_id)
                await ctx.reply("That failed with an internal error (it was logged).")
            return
        name, _, rest = text.strip().partition(" ")
        if not name:
            return
        ctx.command, ctx.raw_args, ctx.args = name.lower(), rest.strip(), rest.split()
        command = self.get(name)
        if command is None:
            await ctx.reply(f"Unknown command '{name}'. Send 'help' for the list of commands.")
            return
        if (ctx.level is None or ctx.level < command.level) and not owner_exempt:
            assert ctx.level is not None
            await ctx.reply(
                f"'{command.name}' needs {command.level.name.lower()} rights on this bridge; "
                f"you have {ctx.level.name.lower()} rights."
            )
            return
        try:
            await command.handler(ctx)
        except Exception:
            log.exception("Command %r from %s failed", command.name, ctx.sender_id)
            await ctx.reply(f"'{command.name}' failed with an internal error (it was logged).")

    async def _owner_exempt(self, ctx: CommandContext, text: str) -> bool:
        """Whether this line is a login owner's command they may use whatever their rights."""
        if self._prompt(ctx.sender_id, ctx.room_id) is not None:
            return False
        command = self.get(text.strip().partition(" ")[0])
        if command is None or not command.for_login_owners or self.login_owner is None:
            return False
        return await self.login_owner(ctx.sender_id)


async def _help(ctx: CommandContext) -> None:
    """The commands the sender's level allows; admin commands apart, under their own
    heading, and only for admins."""
    assert ctx.processor is not None
    available = ctx.processor.available_to(ctx.level)
    lines = ["Commands:"]
    admin = [c for c in available if c.level >= PermissionLevel.ADMIN]
    for command in (c for c in available if c.level < PermissionLevel.ADMIN):
        lines.append(_help_line(command))
    if admin:
        lines.append("Admin commands:")
        lines += [_help_line(command) for command in admin]
    await ctx.reply("\n".join(lines))


def _help_line(command: Command) -> str:
    usage = f" {command.usage}" if command.usage else ""
    return f"  {command.name}{usage} — {command.help}"
