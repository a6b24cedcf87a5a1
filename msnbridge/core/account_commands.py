"""Commands about the user's own MSN login: login, logout, status."""

from __future__ import annotations

from .commands import CommandContext, CommandProcessor
from .sessions import LoginFailed, Sessions


def register_account_commands(processor: CommandProcessor, sessions: Sessions) -> None:
    processor.login_owner = sessions.owns_login

    @processor.command(
        "login",
        help="Log in to MSN Messenger (the password inline or in your next message, which "
        "is removed at once)",
        usage="<passport> [password]",
        sensitive=True,
    )
    async def login(ctx: CommandContext) -> None:
        if not ctx.args:
            await ctx.reply("Usage: login <passport> [password]")
            return
        passport = ctx.args[0]
        password = ctx.raw_args[len(passport) :].strip()  # may contain spaces
        if password:
            await _log_in(ctx, passport, password)
            return

        async def answer(ctx: CommandContext, password: str) -> None:
            await _log_in(ctx, passport, password)

        assert ctx.processor is not None
        ctx.processor.ask(ctx, answer, secret=True)
        await ctx.reply(
            f"Send the password for {passport} in your next message here; it is removed "
            "at once. ('cancel' to stop.)"
        )

    async def _log_in(ctx: CommandContext, passport: str, password: str) -> None:
        if not password:
            await ctx.reply("Login cancelled: the password was empty.")
            return
        await ctx.reply(f"Logging in to MSN as {passport}…")
        side = "irc" if ctx.side == "irc" else "matrix"
        try:
            client = await sessions.login(ctx.sender_id, side, passport, password, ctx.room_id)
        except LoginFailed as e:
            await ctx.reply(f"Login failed: {e}.")
            return
        await ctx.reply(f"Logged in to MSN as {client.config.passport} (MSNP{client.protocol}).")

    @processor.command(
        "logout",
        help="Sign out of MSN and forget your password",
        for_login_owners=True,
    )
    async def logout(ctx: CommandContext) -> None:
        if await sessions.logout(ctx.sender_id):
            await ctx.reply("Logged out of MSN. Your password is forgotten.")
        else:
            await ctx.reply("You are not logged in.")

    @processor.command(
        "status",
        help="Show your MSN login and its connection state",
        for_login_owners=True,
    )
    async def status(ctx: CommandContext) -> None:
        client = sessions.get(ctx.sender_id)
        if client is None:
            stored = await sessions.stored_login(ctx.sender_id)
            if stored is not None:
                await ctx.reply(
                    f"Your login as {stored.passport} is stored but not connected "
                    f"({stored.state}). Send 'logout' to forget it."
                )
                return
            await ctx.reply("You are not logged in. Send 'login <passport> <password>'.")
            return
        state = client.state.value
        detail = f" ({client.stop_reason})" if client.stop_reason and state == "stopped" else ""
        await ctx.reply(f"Logged in as {client.config.passport}: {state}{detail}.")
