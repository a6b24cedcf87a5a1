"""IRC puppet connections held by a pool (issue 13): a real ngIRCd, a real bot and a raw
observing client; the pool's `IRCExecutor` behind the in-memory link; the core's
`PuppetManager` making its connections through `RemoteIRCConnections`. A "core restart"
drops the core's objects without closing anything (as SIGKILL would) and makes new ones:
the puppet must not quit, and must speak again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from msnbridge.db import open_database
from msnbridge.irc.backoff import ReconnectScheduler
from msnbridge.irc.bot import BotConnection
from msnbridge.irc.options import IRCOptions, PuppetMode
from msnbridge.irc.puppets import Line, Puppet, PuppetManager
from msnbridge.irc.settings import IRCSettings
from msnbridge.pools.executor import SessionExecutor
from msnbridge.pools.irc_executor import IRCExecutor, owner_of
from msnbridge.pools.link import CommandFailed, Envelope
from msnbridge.pools.memory_link import MemoryDoneStore, MemoryLink
from msnbridge.pools.remote_irc import RemoteIRCConnection, RemoteIRCConnections, stable_irc_ids
from tests.ircd import IRCd, RawClient, command_of, ircd_fixture, message_text  # noqa: F401

pytestmark = pytest.mark.timeout(60)

CHANNEL = "#msn-pool"
BOB = "bob@example.com"


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


@dataclass
class Core:
    """What a bridge core holds of IRC puppets; dropped without closing on a "restart"."""

    connections: RemoteIRCConnections
    manager: PuppetManager
    joined: list[tuple[str, str]]


@dataclass
class World:
    ircd: IRCd
    options: IRCOptions
    link: MemoryLink
    done: MemoryDoneStore
    pool: IRCExecutor
    bot: BotConnection
    watcher: RawClient
    db: object
    cores: list[RemoteIRCConnections]

    def core(self) -> Core:
        connections = RemoteIRCConnections(self.link.core, command_timeout=10)

        async def on_event(envelope: Envelope) -> None:
            if connections.owns(envelope):
                await connections.apply(envelope)

        self.link.core.on_event(on_event)
        self.cores.append(connections)
        joined: list[tuple[str, str]] = []
        manager = PuppetManager(
            self.options,
            self.bot,
            ReconnectScheduler(),
            self.db,  # type: ignore[arg-type]
            request_invite=lambda nick, channel: self.bot.invite(nick, channel),
            on_joined=lambda puppet, channel: joined.append((puppet.passport, channel)),
            on_relayed=lambda puppet: None,
            connector=connections,
        )
        return Core(connections, manager, joined)

    async def said(self, text: str, timeout: float = 10.0) -> str:
        """The next PRIVMSG the watcher sees with this text (its raw line)."""
        return await self.watcher.expect(
            lambda line: command_of(line) == "PRIVMSG" and message_text(line) == text, timeout
        )


@pytest.fixture
async def world(ircd: IRCd, tmp_path: Path) -> AsyncIterator[World]:
    options = IRCOptions(
        host=ircd.host,
        port=ircd.port,
        puppet_mode=PuppetMode.CONNECTIONS,
        lines_per_second=50,
        burst=20,
    )
    db = await open_database(f"sqlite:{tmp_path / 'bridge.db'}")
    link = MemoryLink()
    done = MemoryDoneStore()
    sessions = SessionExecutor(link.pool, done, pool="pool-a")
    pool = IRCExecutor(link.pool, pool="pool-a", options=options)
    pool.install(sessions)  # deduped by command id like every pool command
    bot = BotConnection(
        IRCSettings(host=ircd.host, port=ircd.port, nick="PoolBot", rate=50, burst=20),
        lambda _event: None,
    )
    bot.start()
    await bot.wait_ready(10)
    bot.join(CHANNEL)
    await until(lambda: CHANNEL in bot.joined, what="the bot in its channel")
    watcher = await RawClient.connect(ircd, "watcher")
    await watcher.join(CHANNEL)
    bot.mode(CHANNEL, "+i")  # a conversation channel: puppets need the bot's INVITE
    await watcher.expect(lambda line: command_of(line) == "MODE" and "+i" in line)
    world = World(ircd, options, link, done, pool, bot, watcher, db, [])
    try:
        yield world
    finally:
        for core in world.cores:
            await core.close()  # left up in the pool, which then quits them
        await pool.close()
        await sessions.close()
        await watcher.close()
        await bot.close(flush_timeout=0.5)
        await link.close()
        await db.stop()  # type: ignore[attr-defined]


def bob_lines(world: World, command: str) -> list[str]:
    return [
        line
        for line in world.watcher.lines
        if command_of(line) == command and line.startswith(":Bob[m]!")
    ]


async def bob_in_channel(world: World, core: Core) -> Puppet:
    puppet = await core.manager.ensure(BOB, "Bob")
    # Held until the puppet is registered, invited by the bot and has joined.
    assert core.manager.say(puppet, CHANNEL, Line("privmsg", "hello from the pool"))
    line = await world.said("hello from the pool")
    assert line.startswith(":Bob[m]!")
    return puppet


async def test_a_puppet_registers_through_the_pool_joins_and_speaks(world: World) -> None:
    core = world.core()
    puppet = await bob_in_channel(world, core)
    conn = puppet.conn
    assert isinstance(conn, RemoteIRCConnection)  # the core holds no IRC connection itself
    assert conn.registered and conn.nick == "Bob[m]" and CHANNEL in conn.joined
    assert core.joined == [(BOB, CHANNEL)]
    held = world.pool.connections[owner_of(BOB)]
    assert held.nick == "Bob[m]" and CHANNEL in held.joined  # the pool's real connection

    assert core.manager.say(puppet, CHANNEL, Line("action", "waves"))
    line = await world.watcher.expect(lambda line: "\x01ACTION waves\x01" in line)
    assert line.startswith(":Bob[m]!")
    # A message the pool's connection cuts is cut the same way on the core's side.
    result = conn.privmsg(CHANNEL, "x" * 1200)
    assert result.queued == 3 and not result.truncated
    for _ in range(3):
        await world.watcher.expect(lambda line: " PRIVMSG " in line and "xxxx" in line)


async def test_a_core_restart_makes_no_puppet_quit(world: World) -> None:
    first = world.core()
    await bob_in_channel(world, first)
    pool_conn = world.pool.connections[owner_of(BOB)]
    with stable_irc_ids("irc:event-7"):  # a line said while handling one pool event
        first.manager.say(first.manager.puppets[BOB], CHANNEL, Line("privmsg", "line seven"))
    await world.said("line seven")

    # The core is killed: nothing of it is closed; a new one starts.
    del first
    second = world.core()
    assert await second.connections.resync() == 1
    puppet = second.manager.puppets[BOB]  # found again, with no new connection
    assert isinstance(puppet.conn, RemoteIRCConnection)
    assert puppet.channels == {CHANNEL: CHANNEL}
    await until(lambda: puppet.conn is not None and puppet.conn.registered, what="registered")
    assert puppet.in_channel(CHANNEL)
    await world.link.drain()

    # The new core handles the same event again: its line is not sent twice.
    with stable_irc_ids("irc:event-7"):
        assert second.manager.say(puppet, CHANNEL, Line("privmsg", "line seven"))
    assert second.manager.say(puppet, CHANNEL, Line("privmsg", "after the restart"))
    await world.said("after the restart")
    assert world.pool.connections[owner_of(BOB)] is pool_conn  # the same IRC connection
    said = [message_text(line) for line in bob_lines(world, "PRIVMSG")]
    assert said == ["hello from the pool", "line seven", "after the restart"]
    assert bob_lines(world, "QUIT") == []  # Bob never left
    assert len(bob_lines(world, "JOIN")) == 1  # and never came again


async def test_lines_said_before_the_takeover_is_known_are_sent_once_in_order(
    world: World,
) -> None:
    """The new core makes the puppet again for a message (not from a snapshot): until the
    pool's connect reply says the connection was taken over, registered and in the
    channel, its lines are held; no Registered or JOIN follows, and they go out then."""
    first = world.core()
    await bob_in_channel(world, first)
    pool_conn = world.pool.connections[owner_of(BOB)]
    del first
    second = world.core()
    puppet = await second.manager.ensure(BOB, "Bob")  # its irc_connect is on its way
    assert puppet.conn is not None and not puppet.conn.registered
    assert second.manager.say(puppet, CHANNEL, Line("privmsg", "m 10"))
    assert second.manager.say(puppet, CHANNEL, Line("action", "m 11"))
    assert puppet.pending  # held: the core does not know yet that it is in the channel
    await until(lambda: puppet.in_channel(CHANNEL), what="the connection taken over")
    assert puppet.pending == {}
    assert second.manager.say(puppet, CHANNEL, Line("privmsg", "m 12"))
    await world.said("m 12")
    said = [message_text(line) for line in bob_lines(world, "PRIVMSG")]
    assert said == ["hello from the pool", "m 10", "\x01ACTION m 11\x01", "m 12"]
    assert world.pool.connections[owner_of(BOB)] is pool_conn  # the same IRC connection
    assert bob_lines(world, "QUIT") == [] and len(bob_lines(world, "JOIN")) == 1


async def test_a_taken_over_puppet_is_invited_to_a_channel_wanted_meanwhile(
    world: World,
) -> None:
    """A line for a channel the kept connection is not in yet: the puppet is invited as
    soon as the takeover is known, joins, and the line follows."""
    other = "#msn-pool-two"
    world.bot.join(other)
    await until(lambda: other in world.bot.joined, what="the bot in the other channel")
    await world.watcher.join(other)
    world.bot.mode(other, "+i")
    await world.watcher.expect(lambda line: command_of(line) == "MODE" and other in line)
    first = world.core()
    await bob_in_channel(world, first)
    del first
    second = world.core()
    puppet = await second.manager.ensure(BOB, "Bob")
    assert second.manager.say(puppet, other, Line("privmsg", "over there"))
    line = await world.said("over there", timeout=15)
    assert line.startswith(":Bob[m]!") and f" {other} " in line
    assert (BOB, other) in second.joined


async def test_a_command_delivered_twice_is_sent_once(world: World) -> None:
    core = world.core()
    await bob_in_channel(world, core)
    envelope = Envelope("cmd-42", owner_of(BOB), "irc_privmsg", {"target": CHANNEL, "text": "once"})
    first = await world.link.core.command(envelope, timeout=5)
    again = await world.link.core.command(envelope, timeout=5)  # a redelivery: same id
    assert first["result"] == again["result"] == {"queued": 1, "refused": 0, "truncated": False}
    marker = Envelope("cmd-43", owner_of(BOB), "irc_privmsg", {"target": CHANNEL, "text": "end"})
    await world.link.core.command(marker, timeout=5)
    await world.said("end")
    said = [message_text(line) for line in bob_lines(world, "PRIVMSG")]
    assert said == ["hello from the pool", "once", "end"]


async def test_a_connection_the_pool_drops_is_opened_again_and_rejoins(world: World) -> None:
    """The pool lost the connection's lease (or is leaving): it quits there, the core
    opens it again, the bot invites it again, and a line said meanwhile is not lost."""
    core = world.core()
    puppet = await bob_in_channel(world, core)
    conn = puppet.conn
    assert isinstance(conn, RemoteIRCConnection)
    await world.pool.drop(owner_of(BOB), "lease lost")
    await world.watcher.expect(lambda line: command_of(line) == "QUIT" and "Bob[m]" in line)
    await world.link.drain()
    assert core.manager.say(puppet, CHANNEL, Line("privmsg", "said while away"))
    await world.said("said while away", timeout=15)
    assert puppet.conn is conn and conn.registered and CHANNEL in conn.joined
    assert len(bob_lines(world, "JOIN")) == 2  # the new connection, invited again
    assert core.joined == [(BOB, CHANNEL), (BOB, CHANNEL)]


async def test_a_line_sent_when_the_pool_has_lost_it_waits_for_the_rejoin(world: World) -> None:
    """The core learns of the loss only from a command's reply (the pool died without
    telling): that line is held and said once the new connection is back in the channel."""
    core = world.core()
    puppet = await bob_in_channel(world, core)
    # The pool forgets the connection without a word (as a dead pool would).
    held = world.pool._held.pop(owner_of(BOB))
    assert held.conn is not None
    await held.conn.close("pool died")
    await world.watcher.expect(lambda line: command_of(line) == "QUIT" and "Bob[m]" in line)
    assert puppet.in_channel(CHANNEL)  # the core does not know yet
    assert core.manager.say(puppet, CHANNEL, Line("privmsg", "into the void?"))
    await world.said("into the void?", timeout=15)
    assert puppet.conn is not None and puppet.conn.registered
    said = [message_text(line) for line in bob_lines(world, "PRIVMSG")]
    assert said == ["hello from the pool", "into the void?"]


async def test_the_mirror_takes_each_event_once_and_none_of_an_old_connection() -> None:
    """Unit test of RemoteIRCConnection's ordering, with a scripted pool end: events of
    an incarnation before the connect reply wait for it; a redelivered or older event,
    and one of an earlier connection, reach the puppet no more."""
    link = MemoryLink()
    replies: list[dict[str, object]] = []

    async def pool(envelope: Envelope) -> dict[str, object]:
        if envelope.kind == "irc_connect":
            await published.wait()  # the events of the new connection arrive first
        return replies.pop(0) if envelope.kind == "irc_connect" else {}

    published = asyncio.Event()
    link.pool.on_command(pool)
    connections = RemoteIRCConnections(link.core, command_timeout=5)
    link.core.on_event(connections.apply)
    seen: list[object] = []
    settings = IRCSettings(host="unused", nick="Bob[m]")
    conn = connections.open(BOB, settings, seen.append, msn_nick="Bob")
    assert isinstance(conn, RemoteIRCConnection)

    def state(incarnation: str, seq: int, **more: object) -> dict[str, object]:
        return {"owner": owner_of(BOB), "incarnation": incarnation, "seq": seq, "pool": "p",
                "nick": "Bob[m]", "registered": True, "joined": [], **more}  # fmt: skip

    def event(n: int, incarnation: str, seq: int, **more: object) -> Envelope:
        data = {"nick": "Bob[m]", "caps": [], "reconnect": False}
        return Envelope(
            f"e{n}",
            owner_of(BOB),
            "IRCRegistered",
            {**data, "state": state(incarnation, seq, **more)},
        )

    replies.append({"adopted": False, "state": {**state("new", 0), "registered": False}})
    conn.start()
    await asyncio.sleep(0.05)  # the connect is on its way
    await link.pool.publish(event(1, "old", 9))  # an earlier connection's: dropped
    await link.pool.publish(event(2, "new", 1, joined=["#a"]))  # before the reply: waits
    await link.drain()
    assert seen == [] and not conn.registered
    published.set()
    await until(lambda: len(seen) == 1, what="the waiting event")
    assert conn.registered and conn.joined == {"#a"}
    await link.pool.publish(event(2, "new", 1))  # delivered again
    await link.pool.publish(event(3, "new", 2, joined=["#a", "#b"]))
    await link.drain()
    assert len(seen) == 2 and conn.joined == {"#a", "#b"}
    await conn.leave()
    await link.close()


async def test_a_line_the_pool_refuses_or_nobody_answers_is_said_by_the_bot(
    world: World,
) -> None:
    """A message the puppet could not say (its pool refused it, or no pool answered in
    time) is not silently lost: the bot says it for the puppet."""
    core = world.core()
    core.connections.on_lost = core.manager.say_lost  # as the IRC side wires it
    puppet = await bob_in_channel(world, core)
    carry_out = world.link._command_handler
    assert carry_out is not None

    async def pool(envelope: Envelope) -> dict[str, object]:
        text = envelope.data.get("text")
        if text == "refused":
            raise CommandFailed("the connection's send queue is full")
        if text == "unanswered":
            await asyncio.sleep(3600)  # a pool that hangs
        return await carry_out(envelope)

    world.link.pool.on_command(pool)
    core.connections.command_timeout = 0.2
    assert core.manager.say(puppet, CHANNEL, Line("privmsg", "refused"))
    line = await world.watcher.expect(lambda x: "refused" in x and " PRIVMSG " in x)
    assert line.startswith(":PoolBot!") and message_text(line).endswith("refused")
    assert core.manager.say(puppet, CHANNEL, Line("privmsg", "unanswered"))
    line = await world.watcher.expect(lambda x: "unanswered" in x and " PRIVMSG " in x)
    assert line.startswith(":PoolBot!") and message_text(line).endswith("unanswered")
    core.connections.command_timeout = 10
    assert core.manager.say(puppet, CHANNEL, Line("privmsg", "fine again"))
    await world.said("fine again")
    said = [message_text(x) for x in bob_lines(world, "PRIVMSG")]
    assert said == ["hello from the pool", "fine again"]  # none said twice
