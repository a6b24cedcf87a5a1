"""The IRC side end to end: a real ngIRCd (or InspIRCd), the MSNP test server, MSN friends
as real puppet clients, and the bridge's core (sessions, router, commands) with the IRC
side in-process (Matrix not started). IRC users are raw sockets (tests.ircd.RawClient)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from msnbridge.config import load_config
from msnbridge.core.account_commands import register_account_commands
from msnbridge.core.commands import CommandProcessor
from msnbridge.core.portal_commands import register_portal_commands
from msnbridge.core.router import Router
from msnbridge.core.sessions import Sessions
from msnbridge.db import open_database
from msnbridge.irc.lines import dehighlight
from msnbridge.irc.options import IRCOptions
from msnbridge.irc.side import IRCSide
from msnbridge.permissions import Permissions
from msnbridge.secrets import SecretBox
from puppets.event.conversation import MessageReceived, TypingReceived
from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    inspircd_fixture,  # noqa: F401 (fixture)
    ircd_fixture,  # noqa: F401 (fixture)
    message_text,
    own_ircd_fixture,  # noqa: F401 (fixture)
    running_ircd,
)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

pytestmark = pytest.mark.timeout(60)

OWNER = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        server.add_account(OWNER, "pa", nick="Alice")
        server.add_account(BOB, "pb", nick="Bob")
        server.add_account(CAROL, "pc", nick="Carol")
        for a, b in ((OWNER, BOB), (OWNER, CAROL), (BOB, CAROL)):
            server.add_contact(a, b, lists=("FL", "AL"))
            server.add_contact(b, a, lists=("FL", "AL"))
        yield server


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Closes MSN friends and raw IRC clients at the end of a test, failed or not."""
    async with contextlib.AsyncExitStack() as exits:
        yield exits


async def friend(
    stack: contextlib.AsyncExitStack, msn: MSNPTestServer, passport: str, password: str
):  # type: ignore[no-untyped-def]
    client, events = await online_client(msn, passport, password)
    stack.push_async_callback(client.stop)
    return client, events


async def raw(stack: contextlib.AsyncExitStack, ircd: IRCd, nick: str, **kw: Any) -> RawClient:
    client = await RawClient.connect(ircd, nick, **kw)
    stack.push_async_callback(client.close)
    return client


_bot_numbers = iter(range(1, 10_000))


def write_config(tmp: Path, msn: MSNPTestServer, ircd: IRCd, **irc: Any) -> Path:
    bot = f"MSNBot{next(_bot_numbers)}"  # module-shared ircd: each test its own bot nick
    section: dict[str, Any] = {
        "enabled": True,
        "server": {"host": ircd.host, "port": ircd.port},
        "bot": {"nick": bot},
        "reconnect": {"initial_backoff": 0.3, "max_backoff": 1.0},
        "limits": {"lines_per_second": 50, "burst": 50},
        "relay": {"merge_seconds": 0.5},
    }
    for key, value in irc.items():
        node = section
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    config = {
        "homeserver": {"address": "http://127.0.0.1:9", "domain": "example.com"},
        "appservice": {"as_token": "x", "hs_token": "y"},
        "bridge": {"permissions": {"*": "user"}, "secret_key": "k" * 44},
        "database": f"sqlite:{tmp / 'bridge.db'}",
        "msn": {
            "dispatch_host": msn.host,
            "dispatch_port": msn.dispatch_port,
            "nexus_url": msn.nexus_url,
            "verify_tls": False,
        },
        "irc": section,
        "logging": {"version": 1},
    }
    path = tmp / "bridge.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def write_config_18(tmp: Path, msn: MSNPTestServer, ircd: IRCd) -> Path:
    """`write_config` with the test server's SOAP services, which MSNP13+ logins use
    (address book, offline messages)."""
    path = write_config(tmp, msn, ircd)
    config = json.loads(path.read_text())
    config["msn"]["services_url"] = msn.services_url
    path.write_text(json.dumps(config))
    return path


@dataclass
class Harness:
    side: IRCSide
    router: Router
    sessions: Sessions

    @property
    def bot_nick(self) -> str:
        assert self.side.bot is not None
        return self.side.bot.nick


@contextlib.asynccontextmanager
async def running_side(config_path: Path) -> AsyncIterator[Harness]:
    config = load_config(str(config_path))
    options = IRCOptions.from_config(config)
    db = await open_database(config["database"])
    sessions = Sessions(config, db, SecretBox(config["bridge.secret_key"]), login_timeout=15)
    router = Router(sessions, db)
    commands = CommandProcessor()
    register_account_commands(commands, sessions)
    register_portal_commands(commands, router)
    side = IRCSide(options, db, commands, Permissions(config["bridge.permissions"]), router)
    await side.start(ready_timeout=10)
    try:
        yield Harness(side, router, sessions)
    finally:
        await side.stop()
        await router.stop()
        await sessions.stop()
        await db.stop()


async def login(
    stack: contextlib.AsyncExitStack, h: Harness, ircd: IRCd, nick: str = "alice"
) -> tuple[RawClient, str]:
    """The owner logs in through the bot and joins their contact-list channel."""
    owner = await raw(stack, ircd, nick)
    owner.send(f"PRIVMSG {h.bot_nick} :login {OWNER} pa")
    await owner.expect(lambda line: "NOTICE" in line and "Logged in to MSN" in line, 20)
    seen = [line for line in owner.lines if command_of(line) == "INVITE"]
    invite = seen[0] if seen else await owner.expect(lambda line: command_of(line) == "INVITE")
    channel = message_text(invite) if " :" in invite else invite.split()[-1]
    await owner.join(channel)
    return owner, channel


async def seen_or_expect(
    client: RawClient, predicate: Callable[[str], bool], timeout: float = 10
) -> str:
    """A line read already (while waiting for another) or the next one that matches."""
    seen = [line for line in client.lines if predicate(line)]
    return seen[0] if seen else await client.expect(predicate, timeout)


def voiced(channel: str, nick: str) -> Callable[[str], bool]:
    """MODE +v for ``nick``, or ``+nick`` in the NAMES reply (voiced before we joined)."""

    def match(line: str) -> bool:
        if command_of(line) == "MODE":
            return channel in line and "+v" in line and line.split()[-1] == nick
        return (
            command_of(line) == "353"
            and f" {channel} " in line
            and (f"+{nick}" in message_text(line).split())
        )

    return match


def is_cmd(cmd: str, *words: str) -> Callable[[str], bool]:
    return lambda line: command_of(line) == cmd and all(w in line for w in words)


async def test_login_contact_list_presence_and_one_to_one(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, bob_events = await friend(stack, msn, BOB, "pb")
    async with running_side(
        write_config(tmp_path, msn, ircd, **{"puppets.mode": "connections"})
    ) as h:
        owner, contacts = await login(stack, h, ircd)
        assert contacts == "#msn-alice"
        # Bob is online: his puppet joins and is voiced.
        await seen_or_expect(owner, voiced(contacts, "Bob[m]"))
        # Bob goes busy with a personal message: devoiced and away.
        await bob.set_psm("in a meeting")
        await bob.set_status("BSY")
        await owner.expect(is_cmd("MODE", contacts, "-v", "Bob[m]"), 10)
        owner.send("WHOIS Bob[m]")
        away = await owner.expect(lambda line: command_of(line) == "301", 5)
        assert "Busy: in a meeting" in away

        # 1:1 from MSN: Bob writes; the owner is invited to the conversation channel.
        conv = bob.conversation([OWNER])
        result = await conv.send_text("hello\nfrom MSN")
        assert result.ok
        invite = await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 10)
        assert invite
        await owner.join("#msn-alice-bob")
        # What came before the owner joined is the catch-up, said by the bot in order.
        got = await owner.privmsgs(2)
        assert all(line.startswith(f":{h.bot_nick}!") for line in got)
        assert [message_text(x) for x in got] == [
            f"<{dehighlight('Bob')}> {t}" for t in ("hello", "from MSN")
        ]

        # Back from IRC to MSN.
        owner.send("PRIVMSG #msn-alice-bob :\x02hi Bob\x02")
        received = await bob_events.wait_for(MessageReceived, lambda e: "hi" in e.message.text)
        assert received.message.text == "hi Bob"
        assert received.message.format.bold

        # A 2,000-character message from MSN arrives whole, in several IRC lines.
        long = " ".join(f"w{i:03d}" for i in range(400))[:2000]
        assert (await conv.send_text(long)).ok
        lines_: list[str] = []
        while sum(len(message_text(x)) + 1 for x in lines_) < len(long):
            lines_.extend(await owner.privmsgs(1))
        assert " ".join(message_text(x) for x in lines_) == long
        # The other person offline: the IRC sender is told (MSN refused it).
        await bob.stop()
        for _ in range(50):  # offline contacts stay, marked away (irc.offline.style: away)
            owner.send("WHOIS Bob[m]")
            away = await owner.expect(lambda line: command_of(line) in ("301", "318"), 5)
            if "Offline" in away:
                break
            await asyncio.sleep(0.1)
        assert message_text(away) == "Offline"
        owner.send("PRIVMSG #msn-alice-bob :are you there?")
        notice = await owner.expect(is_cmd("NOTICE", "Not delivered"), 40)
        assert "offline" in notice or "failed" in notice
        await owner.close()


async def test_allow_relays_with_p4_context_and_others_are_kept_out(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, bob_events = await friend(stack, msn, BOB, "pb")
    async with running_side(write_config(tmp_path, msn, ircd)) as h:
        owner, _ = await login(stack, h, ircd, "alice2")
        owner.send(f"PRIVMSG {h.bot_nick} :chat {BOB}")
        await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 10)
        await owner.join("#msn-alice-bob")
        guest = await raw(stack, ircd, "guest")
        intruder = await raw(stack, ircd, "intruder")
        # Not allowed: +i keeps them out.
        intruder.send("JOIN #msn-alice-bob")
        await intruder.expect(lambda line: command_of(line) == "473")
        owner.send("PRIVMSG #msn-alice-bob :!allow guest")
        await guest.expect(is_cmd("INVITE", "#msn-alice-bob"))
        await guest.join("#msn-alice-bob")
        guest.send("PRIVMSG #msn-alice-bob :hello from irc")
        guest.send("PRIVMSG #msn-alice-bob :second line")
        received = await bob_events.wait_for(MessageReceived, lambda e: "hello" in e.message.text)
        assert received.message.text == "<guest> hello from irc\nsecond line"
        assert received.message.context == "guest"
        # Bob answers: both IRC users read it.
        await bob.conversation([OWNER]).send_text("hi guest")
        for reader in (owner, guest):
            line = await reader.expect(is_cmd("PRIVMSG", "hi guest"), 10)
            assert line.startswith(":Bob[m]!")
        await intruder.close()
        await guest.close()
        await owner.close()
    await bob.stop()


async def test_relay_mode_and_group_conversation(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, _ = await friend(stack, msn, BOB, "pb")
    carol, carol_events = await friend(stack, msn, CAROL, "pc")
    async with running_side(write_config(tmp_path, msn, ircd, **{"puppets.mode": "relay"})) as h:
        owner, contacts = await login(stack, h, ircd, "alice3")
        notice = await owner.expect(is_cmd("NOTICE", contacts, "Bob is Online"), 10)
        assert notice.startswith(f":{h.bot_nick}!")
        # Bob starts a 1:1, then brings Carol in: a group channel.
        conv = bob.conversation([OWNER])
        assert (await conv.send_text("one to one")).ok
        await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 10)
        await owner.join("#msn-alice-bob")
        line = await owner.expect(is_cmd("PRIVMSG", "one to one"))
        assert message_text(line) == f"<{dehighlight('Bob')}> one to one"
        assert conv.switchboard is not None
        await conv.switchboard.invite(CAROL)
        group_notice = await owner.expect(is_cmd("NOTICE", "#msn-alice-bob", "group chat"), 10)
        group = group_notice.rsplit(" ", 1)[-1]
        assert group.startswith("#msn-alice-g")
        await seen_or_expect(owner, is_cmd("INVITE", group))
        await owner.join(group)
        await asyncio.sleep(0.5)
        owner.send(f"PRIVMSG {group} :hello both")
        got = await carol_events.wait_for(MessageReceived, lambda e: e.message.text == "hello both")
        assert got.sender == OWNER
        await owner.close()
    await bob.stop()
    await carol.stop()


async def test_auto_falls_back_to_relay_over_the_cap_and_nick_collision(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    squatter = await raw(stack, ircd, "squatter")
    squatter.send("NICK Bob[m]")
    await squatter.expect(is_cmd("NICK", "Bob[m]"))
    bob, _ = await friend(stack, msn, BOB, "pb")
    carol, _ = await friend(stack, msn, CAROL, "pc")
    config = write_config(tmp_path, msn, ircd, **{"puppets.max_connections": 1})
    async with running_side(config) as h:
        owner, _ = await login(stack, h, ircd, "alice4")
        got_voice: list[str] = []
        notices: list[str] = []
        seen = 0
        while not (got_voice and notices):
            if seen == len(owner.lines):
                await owner.readline(10)
            line = owner.lines[seen]
            seen += 1
            if command_of(line) == "MODE" and "+v" in line:
                got_voice.append(line.split()[-1])
            if command_of(line) == "353":
                got_voice.extend(n[1:] for n in message_text(line).split() if n[0] == "+")
            if command_of(line) == "NOTICE" and " is Online" in line:
                notices.append(message_text(line))
        # One puppet got the only connection, the other is relayed by the bot (auto mode).
        assert h.side.puppets is not None
        assert h.side.puppets.connections == 1
        if got_voice[0].startswith("Bob"):
            # Bob's nick is taken by a real user: his puppet has an alternative.
            assert got_voice[0] in ("Bob[m]_", "Bob[m]1")
            assert notices == ["Carol is Online"]
        else:
            assert got_voice == ["Carol[m]"] and notices == ["Bob is Online"]
        # The squatter is a real user: what they say is not mistaken for the bridge's.
        assert not h.side._is_ours("Bob[m]")
        await owner.close()
    await squatter.close()
    await bob.stop()
    await carol.stop()


async def test_irc_server_restart_loses_no_message(
    tmp_path: Path, msn: MSNPTestServer, own_ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, bob_events = await friend(stack, msn, BOB, "pb")
    config = write_config(tmp_path, msn, own_ircd, **{"puppets.mode": "connections"})
    try:
        async with running_side(config) as h:
            owner, _ = await login(stack, h, own_ircd)
            conv = bob.conversation([OWNER])
            assert (await conv.send_text("before the restart")).ok
            await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 10)
            await owner.join("#msn-alice-bob")
            await owner.expect(is_cmd("PRIVMSG", "before the restart"))
            await owner.close()

            await own_ircd.astop()
            assert (await conv.send_text("while IRC was down")).ok
            await own_ircd.astart()
            assert h.side.bot is not None
            await h.side.bot.wait_ready(10)

            owner = await raw(stack, own_ircd, "alice")
            # A new IRC connection of a bare nick proves itself (the MSN password) first.
            owner.send(f"PRIVMSG {h.bot_nick} :channels")
            await owner.expect(is_cmd("NOTICE", "password"), 10)
            owner.send(f"PRIVMSG {h.bot_nick} :pa")
            await owner.expect(is_cmd("INVITE", "#msn-alice-bob"), 10)
            await owner.join("#msn-alice-bob")
            line = await seen_or_expect(owner, is_cmd("PRIVMSG", "while IRC was down"), 15)
            assert message_text(line) == f"<{dehighlight('Bob')}> while IRC was down"
            # And the other way after the restart.
            owner.send("PRIVMSG #msn-alice-bob :back again")
            got = await bob_events.wait_for(
                MessageReceived, lambda e: e.message.text == "back again"
            )
            assert got.sender == OWNER
            await owner.close()
    finally:
        await bob.stop()


@pytest.mark.parametrize("server", ["inspircd", "ircd"])
async def test_typing_both_ways_where_message_tags_exist(
    tmp_path: Path,
    msn: MSNPTestServer,
    server: str,
    request: pytest.FixtureRequest,
    stack: contextlib.AsyncExitStack,
) -> None:
    ircd: IRCd = request.getfixturevalue(server)
    tags = ircd.kind == "inspircd"  # ngIRCd has no CAP message-tags
    bob, bob_events = await friend(stack, msn, BOB, "pb")
    config = write_config(tmp_path, msn, ircd, **{"puppets.mode": "connections"})
    try:
        async with running_side(config) as h:
            owner = await raw(stack, ircd, "typer", caps=("message-tags",) if tags else ())
            owner.send(f"PRIVMSG {h.bot_nick} :login {OWNER} pa")
            await owner.expect(is_cmd("NOTICE", "Logged in to MSN"), 20)
            conv = bob.conversation([OWNER])
            assert (await conv.send_text("hi")).ok
            await seen_or_expect(owner, is_cmd("INVITE", "#msn-alice-bob"))
            await owner.join("#msn-alice-bob")
            await owner.expect(is_cmd("PRIVMSG", "hi"))
            assert h.side.puppets is not None
            puppet = h.side.puppets.puppets[BOB]
            await poll_until(lambda: puppet.in_channel("#msn-alice-bob"))
            await conv.send_typing()
            await conv.send_text("typed")
            line = await owner.expect(lambda x: command_of(x) in ("TAGMSG", "PRIVMSG"), 10)
            if tags:
                assert command_of(line) == "TAGMSG" and "+typing=active" in line
                assert ":Bob[m]!" in line
                owner.send("@+typing=active TAGMSG #msn-alice-bob")
                await bob_events.wait_for(TypingReceived, lambda e: e.sender == OWNER)
            else:
                assert message_text(line) == "typed"  # no TAGMSG without message-tags
            await owner.close()
    finally:
        await bob.stop()


async def poll_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - connection state has no event to await
            await asyncio.sleep(0.05)


async def test_auto_falls_back_to_relay_when_the_server_refuses_connections(
    tmp_path: Path, msn: MSNPTestServer, stack: contextlib.AsyncExitStack
) -> None:
    # Two connections per IP: the bot and the owner. Bob's puppet is refused.
    servers = running_ircd(tmp_path / "ngircd", max_connections_ip=2)
    ircd = next(servers)
    bob, _ = await friend(stack, msn, BOB, "pb")
    try:
        async with running_side(write_config(tmp_path, msn, ircd)) as h:
            owner, contacts = await login(stack, h, ircd)
            await seen_or_expect(owner, is_cmd("NOTICE", contacts, "Bob is Online"))
            assert h.side.puppets is not None
            puppet = h.side.puppets.puppets[BOB]
            assert puppet.relayed and puppet.conn is None
            # Nothing was lost on the way: Bob's first message arrives, relayed.
            assert (await bob.conversation([OWNER]).send_text("first message")).ok
            await seen_or_expect(owner, is_cmd("INVITE", "#msn-alice-bob"))
            await owner.join("#msn-alice-bob")
            line = await seen_or_expect(owner, is_cmd("PRIVMSG", "first message"))
            assert message_text(line) == f"<{dehighlight('Bob')}> first message"
            await owner.close()
    finally:
        await bob.stop()
        with contextlib.suppress(StopIteration):
            next(servers)


async def test_nick_changes_quit_style_actions_nudges_and_cut_messages(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, bob_events = await friend(stack, msn, BOB, "pb")
    settings = {
        "puppets.mode": "connections",
        "offline.style": "quit",
        "offline.quit_debounce": 1.0,
        "limits.max_lines_per_message": 3,
    }
    try:
        async with running_side(write_config(tmp_path, msn, ircd, **settings)) as h:
            owner, contacts = await login(stack, h, ircd, "alice5")
            await seen_or_expect(owner, voiced(contacts, "Bob[m]"))
            # The MSN nick changes: the IRC nick follows.
            await bob.set_nick("Robert")
            await owner.expect(lambda x: x.startswith(":Bob[m]!") and " NICK " in x, 10)
            # Flapping within the debounce: no QUIT; staying offline: QUIT.
            await bob.set_status("HDN")
            await asyncio.sleep(0.2)
            await bob.set_status("NLN")
            await owner.expect(is_cmd("MODE", contacts, "+v", "Robert[m]"), 10)
            await bob.set_status("HDN")
            quit_line = await owner.expect(is_cmd("QUIT"), 10)
            assert quit_line.startswith(":Robert[m]!")
            assert not any(command_of(x) == "QUIT" for x in owner.lines[:-1])
            await bob.set_status("NLN")
            await owner.expect(is_cmd("JOIN", contacts), 10)

            conv = bob.conversation([OWNER])
            assert (await conv.send_text("one\ntwo\nthree\nfour\nfive")).ok
            await seen_or_expect(owner, is_cmd("INVITE", "#msn-alice-bob"))
            await owner.join("#msn-alice-bob")
            got = await owner.privmsgs(3)
            robert = dehighlight("Robert")
            assert [message_text(x) for x in got] == [
                f"<{robert}> {t}" for t in ("one", "two", "three")
            ]
            await owner.expect(is_cmd("NOTICE", "#msn-alice-bob", "longer than 3 lines"))
            assert (await conv.send_nudge()).ok
            await owner.expect(is_cmd("NOTICE", "Robert sent a nudge"), 10)
            owner.send("PRIVMSG #msn-alice-bob :\x01ACTION waves\x01")
            got_action = await bob_events.wait_for(
                MessageReceived, lambda e: "waves" in e.message.text
            )
            assert got_action.message.text == "* Alice waves"
            await owner.close()
    finally:
        await bob.stop()


async def test_connections_mode_evicts_the_least_recently_active_puppet(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    bob, _ = await friend(stack, msn, BOB, "pb")
    carol, _ = await friend(stack, msn, CAROL, "pc")
    settings = {"puppets.mode": "connections", "puppets.max_connections": 1}
    async with running_side(write_config(tmp_path, msn, ircd, **settings)) as h:
        owner, _ = await login(stack, h, ircd, "alice6")
        manager = h.side.puppets
        assert manager is not None
        await poll_until(lambda: BOB in manager.puppets and CAROL in manager.puppets)
        await poll_until(lambda: manager.connections == 1)
        assert not any(p.relayed for p in manager.puppets.values())
        # Whoever was evicted speaks: they get the connection back (the other one is
        # evicted) and their first message is not lost while they reconnect.
        idle = next(p for p in manager.puppets.values() if p.conn is None)
        speaker, name = (bob, "Bob[m]") if idle.passport == BOB else (carol, "Carol[m]")
        assert (await speaker.conversation([OWNER]).send_text("I am back")).ok
        channel = "#msn-alice-bob" if speaker is bob else "#msn-alice-carol"
        await seen_or_expect(owner, is_cmd("INVITE", channel))
        await owner.join(channel)
        line = await seen_or_expect(owner, is_cmd("PRIVMSG", "I am back"), 15)
        assert message_text(line) == f"<{dehighlight(name.removesuffix('[m]'))}> I am back"
        await poll_until(lambda: manager.puppets[idle.passport].conn is not None)
        assert manager.connections == 1
