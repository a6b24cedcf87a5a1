"""Commands that only make sense with the IRC side: the IRC-only ones (answered by
:mod:`.incoming_irc`, listed in ``help`` as seen from IRC) and ``irc``, a shared command
for the owner of a portal on another side (a Matrix room) to manage who may join its IRC
channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.commands import CommandContext, CommandProcessor
from ..db.portal import Portal

if TYPE_CHECKING:
    from .side import IRCSide

# name, usage, help: answered by .incoming_irc in private messages (and as !name in a channel).
IRC_ONLY_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("allow", "<nick> [#channel]", "Let an IRC user into one of your conversation channels"),
    ("disallow", "<nick> [#channel]", "Take that back (they are kicked out)"),
    ("channels", "", "Invite you again to your channels and those you are allowed in"),
    ("nudge", "", "In a conversation channel, !nudge nudges your MSN contacts"),
)
LOCAL_COMMANDS = ("allow", "disallow", "channels")  # answered by .incoming_irc, not the processor

IRC_USAGE = "irc allow <nick> | irc disallow <nick> | irc channel"


def irc_help() -> str:
    lines = ["IRC commands (here; in a conversation channel as !command):"]
    for name, usage, text in IRC_ONLY_COMMANDS:
        lines.append(f"  {name}{' ' + usage if usage else ''} — {text}")
    return "\n".join(lines)


def register_irc_command(processor: CommandProcessor, side: IRCSide) -> None:
    """``irc allow|disallow <nick>`` / ``irc channel`` inside a portal room (the side puts
    the portal into ``ctx.extra["portal"]``); the reply names the IRC channel."""
    if processor.get("irc") is not None:
        return  # a side started again on the same processor

    async def irc(ctx: CommandContext) -> None:
        portal = ctx.extra.get("portal")
        if not isinstance(portal, Portal):
            await ctx.reply(f"Send '{IRC_USAGE}' inside a conversation's room.")
            return
        if portal.owner != ctx.sender_id and not ctx.is_admin:
            await ctx.reply("Only the owner of this conversation decides who may join on IRC.")
            return
        if not side.serves(portal):
            await ctx.reply("Conversations of Matrix users have no IRC channel on this bridge.")
            return
        await side.router.ensure_on(side, portal)
        channel = side.channel_for(portal)
        if channel is None:
            await ctx.reply("This conversation has no IRC channel yet; try again shortly.")
            return
        sub = ctx.args[0].lower() if ctx.args else "channel"
        where = f"{channel.name} on {side.options.host}"
        if sub == "channel":
            allowed = ", ".join(sorted(channel.allowed)) or "nobody yet"
            await ctx.reply(f"This conversation is {where}. Allowed IRC users: {allowed}.")
        elif sub in ("allow", "disallow") and len(ctx.args) == 2:
            act = side.allow if sub == "allow" else side.disallow
            await ctx.reply(f"{await act(channel, ctx.args[1])} ({where})")
        else:
            await ctx.reply(f"Usage: {IRC_USAGE}")

    processor.command(
        "irc", help="Who may join this conversation's IRC channel", usage="allow|disallow <nick>"
    )(irc)
