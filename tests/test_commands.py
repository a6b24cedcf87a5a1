"""The command dispatcher shared by the Matrix and IRC bots (unit tests, no servers)."""

from __future__ import annotations

import pytest

from msnbridge.core.commands import REFUSAL, Command, CommandContext, CommandProcessor
from msnbridge.permissions import PermissionLevel


def make_ctx(level: PermissionLevel | None, replies: list[str]) -> CommandContext:
    async def reply(text: str) -> None:
        replies.append(text)

    return CommandContext("@u:example.com", is_admin=False, reply=reply, level=level)


async def test_help_lists_only_what_the_sender_may_use() -> None:
    processor = CommandProcessor()

    @processor.command("login", help="Log in to MSN", usage="<passport>")
    async def login(ctx: CommandContext) -> None: ...

    @processor.command("reload", help="Reload", level=PermissionLevel.ADMIN)
    async def reload(ctx: CommandContext) -> None: ...

    replies: list[str] = []
    await processor.handle(make_ctx(PermissionLevel.USER, replies), "HELP")
    assert "login <passport> — Log in to MSN" in replies[0]
    assert "help" in replies[0] and "reload" not in replies[0]
    replies.clear()
    await processor.handle(make_ctx(PermissionLevel.RELAY, replies), "help")
    assert "login" not in replies[0]


async def test_arguments_reach_the_handler() -> None:
    processor = CommandProcessor()
    seen: list[tuple[str, list[str], str]] = []

    @processor.command("login", help="Log in", aliases=("signin",))
    async def login(ctx: CommandContext) -> None:
        seen.append((ctx.command, ctx.args, ctx.raw_args))

    await processor.handle(make_ctx(PermissionLevel.USER, []), "  signin a@b.c  pa ss  ")
    assert seen == [("signin", ["a@b.c", "pa", "ss"], "a@b.c  pa ss")]


async def test_refusals_and_failures_are_answered() -> None:
    processor = CommandProcessor()

    @processor.command("boom", help="Fails")
    async def boom(ctx: CommandContext) -> None:
        raise RuntimeError("bug")

    @processor.command("reload", help="Reload", level=PermissionLevel.ADMIN)
    async def reload(ctx: CommandContext) -> None: ...

    replies: list[str] = []
    await processor.handle(make_ctx(None, replies), "help")
    await processor.handle(make_ctx(PermissionLevel.USER, replies), "reload")
    await processor.handle(make_ctx(PermissionLevel.USER, replies), "nope")
    await processor.handle(make_ctx(PermissionLevel.USER, replies), "boom")
    assert replies[0] == REFUSAL
    assert replies[1] == "'reload' needs admin rights on this bridge; you have user rights."
    assert replies[2].startswith("Unknown command 'nope'")
    assert replies[3] == "'boom' failed with an internal error (it was logged)."


def test_admin_flag_implies_admin_level() -> None:
    async def reply(text: str) -> None: ...

    assert CommandContext("x", is_admin=True, reply=reply).level is PermissionLevel.ADMIN


def test_names_are_unique() -> None:
    processor = CommandProcessor()

    async def handler(ctx: CommandContext) -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        processor.register(Command("help", handler, "again"))


async def test_a_question_takes_the_next_message_and_can_be_cancelled() -> None:
    processor = CommandProcessor()
    answers: list[str] = []
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    async def answer(ctx: CommandContext, text: str) -> None:
        answers.append(text)

    def ctx(sender: str = "@a:x", room: str = "!r:x") -> CommandContext:
        return CommandContext(sender_id=sender, is_admin=False, reply=reply, room_id=room)

    first = ctx()
    processor.ask(first, answer, secret=True)
    assert processor.awaiting_secret("@a:x", "!r:x")
    assert not processor.awaiting_secret("@b:x", "!r:x")  # only the one asked
    assert not processor.awaiting_secret("@a:x", "!other:x")  # only in that room
    await processor.handle(ctx(sender="@b:x"), "help")  # someone else: a normal command
    assert answers == [] and any("help" in r for r in replies)
    await processor.handle(ctx(), "  hunter2 with spaces ")
    assert answers == ["hunter2 with spaces"]
    assert not processor.awaiting_secret("@a:x", "!r:x")
    await processor.handle(ctx(), "help")  # the question is gone: a command again
    assert answers == ["hunter2 with spaces"]
    processor.ask(first, answer, secret=True)
    await processor.handle(ctx(), "cancel")
    assert answers == ["hunter2 with spaces"] and replies[-1] == "Cancelled."
