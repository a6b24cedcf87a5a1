"""Commands about the contact list and the user's own profile: contacts, add, remove, block,
unblock, accept, reject, groups, group, nick, presence, psm."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from puppets import Client, Lists, MSNPError, PuppetError

from ..pools.link import CommandFailed
from .commands import CommandContext, CommandProcessor
from .router import NotConnected, Router
from .text_safety import one_line
from .wording import plural

PRESENCE_CODES = {
    "online": "NLN",
    "away": "AWY",
    "busy": "BSY",
    "brb": "BRB",
    "phone": "PHN",
    "lunch": "LUN",
    "idle": "IDL",
    "hidden": "HDN",
}
STATUS_WORDS = {code: word for word, code in PRESENCE_CODES.items()} | {"FLN": "offline"}


def describe_error(error: BaseException) -> str:
    """An MSN failure in words, with the MSNP error explained."""
    if isinstance(error, CommandFailed):
        return str(error)  # a connection pool worded it (as below, where it happened)
    if isinstance(error, MSNPError):
        return f"the MSN server answered error {error.code}: {error.meaning}"
    if isinstance(error, NotConnected):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def with_client(ctx: CommandContext, router: Router, action: str,
                      call: Callable[[Client], Awaitable[str | None]]) -> None:  # fmt: skip
    """Runs ``call`` on the sender's session and answers with its text or the failure."""
    try:
        client = router.client(ctx.sender_id)
        answer = await call(client)
    except (NotConnected, PuppetError, OSError, TimeoutError) as e:
        await ctx.reply(f"Could not {action}: {describe_error(e)}.")
        return
    if answer:
        await ctx.reply(answer)


def _group_id(client: Client, name_or_id: str) -> str | None:
    if name_or_id in client.contacts.groups:
        return name_or_id
    group = client.contacts.group_by_name(name_or_id)
    return group.id if group is not None else None


def _contact_line(client: Client, passport: str) -> str:
    c = client.contacts.get(passport)
    assert c is not None
    status = STATUS_WORDS.get(c.status, c.status)
    names = [client.contacts.groups[g].name for g in c.groups if g in client.contacts.groups]
    flags = [n for n, lst in (("blocked", Lists.BL), ("pending", Lists.PL)) if c.on(lst)]
    name = one_line(c.nick or "")
    nick = f" ({name})" if name and name != c.passport else ""
    psm = f" — “{c.psm}”" if c.psm else ""
    extra = f" [{', '.join(flags)}]" if flags else ""
    where = f" in {', '.join(names)}" if names else ""
    return f"  {c.passport}{nick}: {status}{where}{extra}{psm}"


def register_contact_commands(processor: CommandProcessor, router: Router) -> None:
    def passport_arg(ctx: CommandContext) -> str | None:
        return ctx.args[0].lower() if ctx.args and "@" in ctx.args[0] else None

    @processor.command("contacts", help="List your MSN contacts with presence and groups")
    async def contacts(ctx: CommandContext) -> None:
        async def run(client: Client) -> str:
            friends = sorted(c.passport for c in client.contacts.on_list(Lists.FL))
            if not friends:
                return "Your contact list is empty. Add someone with 'add <passport>'."
            online = sum(1 for p in friends if client.contacts.get(p).online)  # type: ignore[union-attr]
            lines = [f"Contacts ({online} of {len(friends)} online):"]
            lines += [_contact_line(client, p) for p in friends]
            pending = [c.passport for c in client.contacts.on_list(Lists.RL)
                       if not c.on(Lists.AL | Lists.BL)]  # fmt: skip
            if pending:
                lines.append(f"Waiting for your answer: {', '.join(sorted(pending))}")
            return "\n".join(lines)

        await with_client(ctx, router, "list your contacts", run)

    def list_command(name: str, help: str, done: str, usage: str = "<passport>") -> None:
        @processor.command(name, help=help, usage=usage)
        async def handler(ctx: CommandContext) -> None:
            passport = passport_arg(ctx)
            if passport is None:
                await ctx.reply(f"Usage: {name} {usage}")
                return
            group_name = " ".join(ctx.args[1:]) or None

            async def run(client: Client) -> str:
                group = None
                if group_name is not None:
                    group = _group_id(client, group_name)
                    if group is None:
                        return f"There is no group '{group_name}'. Send 'groups' to list them."
                method = getattr(client, _METHODS[name])
                if name not in ("add", "remove"):
                    await method(passport)
                    return done.format(passport=passport)
                contact = client.contacts.get(passport)
                was_friend = contact is not None and contact.on(Lists.FL)
                await method(passport, group)
                shown = (
                    client.contacts.groups[group].name
                    if group in client.contacts.groups
                    else group_name
                )
                return _list_change_done(name, passport, shown, was_friend)

            await with_client(ctx, router, f"{name} {passport}", run)

    list_command("add", "Add a contact (optionally into a group)",
                 "Added {passport} to your contacts.", "<passport> [group]")  # fmt: skip
    list_command("remove", "Remove a contact (or only from a group)",
                 "Removed {passport}.", "<passport> [group]")  # fmt: skip
    list_command("block", "Block a contact", "Blocked {passport}.")
    list_command("unblock", "Unblock a contact", "Unblocked {passport}.")
    list_command("accept", "Allow someone who added you, and add them back",
                 "Accepted {passport}.")  # fmt: skip
    list_command("reject", "Block someone who added you", "Rejected (blocked) {passport}.")

    @processor.command("groups", help="List your contact groups")
    async def groups(ctx: CommandContext) -> None:
        async def run(client: Client) -> str:
            if not client.contacts.groups:
                return "You have no groups. Create one with 'group create <name>'."
            lines = ["Groups:"]
            for gid, group in sorted(client.contacts.groups.items(), key=lambda i: i[1].name):
                members = sum(1 for c in client.contacts.contacts.values() if gid in c.groups)
                lines.append(f"  {group.name} ({plural(members, 'contact')})")
            return "\n".join(lines)

        await with_client(ctx, router, "list your groups", run)

    @processor.command("group", help="Create, rename or delete a contact group",
                       usage="create <name> | rename <old> to <new> | delete <name>")  # fmt: skip
    async def group(ctx: CommandContext) -> None:
        action, _, rest = ctx.raw_args.partition(" ")
        rest = rest.strip()
        usage = "Usage: group create <name> | group rename <old> to <new> | group delete <name>"
        if action not in ("create", "rename", "delete") or not rest:
            await ctx.reply(usage)
            return

        async def run(client: Client) -> str:
            if action == "create":
                await client.add_group(rest)
                return f"Created group '{rest}'."
            old, sep, new = rest.partition(" to ")
            name = old.strip() if action == "rename" else rest
            gid = _group_id(client, name)
            if gid is None:
                return f"There is no group '{name}'. Send 'groups' to list them."
            if action == "delete":
                await client.remove_group(gid)
                return f"Deleted group '{name}'."
            if not sep or not new.strip():
                return usage
            await client.rename_group(gid, new.strip())
            return f"Renamed group '{name}' to '{new.strip()}'."

        await with_client(ctx, router, f"{action} the group", run)

    @processor.command("nick", help="Set your MSN nickname", usage="<name>")
    async def nick(ctx: CommandContext) -> None:
        name = ctx.raw_args
        if not name:
            await ctx.reply("Usage: nick <name>")
            return

        async def run(client: Client) -> str:
            await client.set_nick(name)
            return f"Your MSN nickname is now '{name}'."

        await with_client(ctx, router, "change your nickname", run)

    @processor.command("presence", help="Set your MSN status",
                       usage="<" + "|".join(PRESENCE_CODES) + ">")  # fmt: skip
    async def presence(ctx: CommandContext) -> None:
        code = PRESENCE_CODES.get(ctx.args[0].lower()) if ctx.args else None
        if code is None:
            await ctx.reply(f"Usage: presence <{'|'.join(PRESENCE_CODES)}>")
            return

        async def run(client: Client) -> str:
            await client.set_status(code)
            return f"Your MSN status is now {ctx.args[0].lower()}."

        await with_client(ctx, router, "change your status", run)

    @processor.command("psm", help="Set your MSN personal message (empty clears it)",
                       usage="[text]")  # fmt: skip
    async def psm(ctx: CommandContext) -> None:
        async def run(client: Client) -> str:
            if client.protocol is not None and client.protocol < 11:
                return (
                    f"Personal messages need MSNP11 or later; this session speaks "
                    f"MSNP{client.protocol}."
                )
            await client.set_psm(ctx.raw_args)
            return "Personal message set." if ctx.raw_args else "Personal message cleared."

        await with_client(ctx, router, "set your personal message", run)


def _list_change_done(name: str, passport: str, group_name: str | None, was_friend: bool) -> str:
    """What `add`/`remove` did: a group change is not a list change."""
    if name == "remove":
        if group_name is None:
            return f"Removed {passport} from your contacts."
        return f"Took {passport} out of the group '{group_name}'; they stay in your contacts."
    if group_name is None:
        return f"Added {passport} to your contacts."
    if was_friend:
        return f"Put {passport} into the group '{group_name}'."
    return f"Added {passport} to your contacts, in the group '{group_name}'."


_METHODS = {
    "add": "add_contact",
    "remove": "remove_contact",
    "block": "block",
    "unblock": "unblock",
    "accept": "accept",
    "reject": "reject",
}
