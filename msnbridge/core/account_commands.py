"""Commands about the user's own MSN login: login, logout, status."""

from __future__ import annotations

import time

from puppets import Client, SessionState

from .commands import CommandContext, CommandProcessor
from .outage import clock_time
from .sessions import LoginFailed, Sessions
from .wording import plural


def describe_status(sessions: Sessions, owner: str, client: Client) -> str:
    """The login, its state, the negotiated MSNP version; when reconnecting, since when
    and the next try."""
    state = client.state
    text = f"Logged in as {client.config.passport}: {state.value}"
    if state is SessionState.STOPPED and client.stop_reason:
        text += f" ({client.stop_reason})"
    if state is SessionState.ONLINE and client.protocol:
        text += f", MSNP{client.protocol}"
    text += "."
    since = sessions.outages.down_since(owner)
    if since is not None and state is not SessionState.ONLINE:
        text += f" Down since {clock_time(since)}"
        reason = client.last_error
        text += f" ({reason})." if reason else "."
        retry_at = sessions.outages.retry_at(owner)
        if retry_at is not None:
            wait = max(0, round(retry_at - time.time()))
            text += f" Next try at {clock_time(retry_at)} (in {plural(wait, 'second')})."
        elif state is SessionState.CONNECTING:
            text += " Trying to reconnect now."
    others = getattr(client, "own_endpoints", None) or {}
    if others:  # MSNP16+: the owner's other places (their own Messenger…)
        names = ", ".join(sorted(name or guid for guid, name in others.items()))
        text += f" Also signed in at: {names}."
    return text


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
        await ctx.reply(describe_status(sessions, ctx.sender_id, client))
