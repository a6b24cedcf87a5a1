"""Commands about conversations: chat, invite, relay; and the admin's `sessions`.

A side that runs a command inside a portal room/channel puts the Portal into
``ctx.extra["portal"]``; `invite` and `relay` act on that portal.
"""

from __future__ import annotations

from puppets import PuppetError

from ..db.portal import Portal
from ..permissions import PermissionLevel
from .commands import CommandContext, CommandProcessor
from .contact_commands import describe_error
from .router import NotConnected, Router
from .wording import plural


def _portal(ctx: CommandContext) -> Portal | None:
    portal = ctx.extra.get("portal")
    return portal if isinstance(portal, Portal) else None


def register_portal_commands(processor: CommandProcessor, router: Router) -> None:
    @processor.command("chat", help="Open a conversation with a contact", usage="<passport>")
    async def chat(ctx: CommandContext) -> None:
        if not ctx.args or "@" not in ctx.args[0]:
            await ctx.reply("Usage: chat <passport>")
            return
        passport = ctx.args[0].lower()
        try:
            client = router.client(ctx.sender_id)
        except NotConnected as e:
            await ctx.reply(f"Could not open a chat: {e}.")
            return
        if passport == client.config.passport.lower():
            await ctx.reply("That is your own passport.")
            return
        portal = await router.open_portal(ctx.sender_id, [passport])
        where = [w for w in (portal.room_id, portal.irc_channel) if w]
        await ctx.reply(
            f"Your conversation with {passport} is open"
            + (f" ({', '.join(where)})." if where else ".")
        )

    @processor.command("invite", help="Invite a contact into this conversation (in a portal)",
                       usage="<passport>")  # fmt: skip
    async def invite(ctx: CommandContext) -> None:
        portal = _portal(ctx)
        if portal is None:
            await ctx.reply("Send 'invite <passport>' inside the conversation's room.")
            return
        if portal.owner != ctx.sender_id:
            await ctx.reply("Only the owner of this conversation can invite people into it.")
            return
        if not ctx.args or "@" not in ctx.args[0]:
            await ctx.reply("Usage: invite <passport>")
            return
        try:
            await ctx.reply(await router.invite(portal, ctx.args[0]) + ".")
        except (NotConnected, PuppetError, OSError, TimeoutError) as e:
            await ctx.reply(f"Could not invite {ctx.args[0]}: {describe_error(e)}.")

    @processor.command("relay", help="Relay other people in this room through your session",
                       usage="on|off", level=PermissionLevel.USER)  # fmt: skip
    async def relay(ctx: CommandContext) -> None:
        portal = _portal(ctx)
        if portal is None:
            await ctx.reply("Send 'relay on' or 'relay off' inside a conversation's room.")
            return
        if portal.owner != ctx.sender_id and not ctx.is_admin:
            await ctx.reply("Only the owner of this conversation can change relaying.")
            return
        word = ctx.args[0].lower() if ctx.args else ""
        if not router.portals.relay_allowed:
            await ctx.reply(
                "Relaying is turned off on this bridge (bridge.relay.enabled is false in its "
                "configuration): only your own messages go to MSN. Ask the bridge's operator "
                "to turn it on."
            )
            return
        if word not in ("on", "off"):
            state = "on" if portal.relay_enabled else "off"
            await ctx.reply(f"Relaying is {state} here. Usage: relay on|off")
            return
        portal.relay_enabled = word == "on"
        await router.portals.save(portal)
        if portal.relay_enabled:
            await ctx.reply(
                "Relaying is on: messages of other people here go to MSN through your session, "
                "prefixed with their name."
            )
        else:
            await ctx.reply("Relaying is off: only your own messages go to MSN.")

    @processor.command("sessions", help="Every user's MSN session and its state",
                       level=PermissionLevel.ADMIN)  # fmt: skip
    async def sessions(ctx: CommandContext) -> None:
        everyone = router.sessions.all()
        if not everyone:
            await ctx.reply("No MSN sessions.")
            return
        lines = [f"{plural(len(everyone), 'MSN session')}:"]
        for owner, client in sorted(everyone.items()):
            state = client.state.value
            detail = f" ({client.stop_reason})" if state == "stopped" and client.stop_reason else ""
            proto = f" MSNP{client.protocol}" if client.protocol else ""
            lines.append(f"  {owner}: {client.config.passport} {state}{detail}{proto}")
        await ctx.reply("\n".join(lines))
