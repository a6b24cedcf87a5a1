"""IRC puppet connections held by a pool, end to end (issue 13): the core (`msnbridge -c`)
and one pool (`msnbridge pool -c`) as processes, a real Redis, PostgreSQL as the shared
database, Synapse (the core's appservice), the MSNP test server and ngIRCd.

An IRC owner logs in through the bot; their MSN contact's messages appear on IRC from the
contact's puppet nick. The core is SIGKILLed (or stopped) and started again while the contact keeps
writing: a raw IRC client in the channels sees no QUIT of the puppet and no new JOIN,
the puppet speaks again after the restart, and every message is on IRC exactly once.
The pool holding the puppet (and, in one variant, the owner's MSN session) is SIGKILLed:
the core opens the puppet again on the other pool, unprompted, and nothing is lost or
doubled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    fresh_ircd_fixture,  # noqa: F401 (the ircd fixture)
    message_text,
)
from tests.msnp_server import MSNPTestServer
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.synapse_server import SynapseServer
from tests.test_faults_msn import fast_friend
from tests.test_faults_process import daemon, database_url
from tests.test_matrix_portals import ALICE, BOB, PASSWORD, msn  # noqa: F401 (fixture)
from tests.test_pools_restart import pool_config, pool_process

pytestmark = pytest.mark.timeout(400)

BOT = "PoolBot"
CONVERSATION = "#msn-alice-bob"
BEFORE, DOWN, AFTER = 10, 10, 10  # messages before the kill, while down, after the start


@contextlib.asynccontextmanager
async def reading(client: RawClient) -> AsyncIterator[None]:
    """Reads the client's lines in the background (into ``client.lines``)."""

    async def read() -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                with contextlib.suppress(TimeoutError):
                    await client.readline(3600)

    task = asyncio.create_task(read())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    ask: Callable[[], object] | None = None,
) -> None:
    """Wait (a deadline) until ``condition()``; ``ask`` is called every 0.3 s meanwhile
    (the bot may still be registering: it is asked again, as a person would)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    asked = 0.0
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if ask is not None and loop.time() - asked >= 0.3:
            ask()
            asked = loop.time()
        await asyncio.sleep(0.1)


def said(lines: list[str]) -> list[tuple[str, str]]:
    """(speaker, text) of the PRIVMSGs to the conversation channel."""
    out = []
    for line in lines:
        if command_of(line) == "PRIVMSG" and f" {CONVERSATION} :" in line:
            out.append((line[1:].split("!", 1)[0], message_text(line)))
    return out


def by(nick: str, command: str, line: str) -> bool:
    return command_of(line) == command and line[1:].startswith(f"{nick}!")


def numbers(lines: list[str]) -> collections.Counter[int]:
    """How often each numbered message arrived (from the puppet, or the bot's catch-up
    ``<Bob> m 3`` while nobody was in the channel yet)."""
    found: collections.Counter[int] = collections.Counter()
    for _speaker, text in said(lines):
        words = text.split()
        if len(words) >= 2 and words[-2] == "m" and words[-1].isdigit():
            found[int(words[-1])] += 1
    return found


@dataclass
class Scene:
    """The core and pools running, the IRC owner logged in and in the conversation
    channel, where Bob's puppet has said the first ``BEFORE`` messages."""

    config: Path
    core: asyncio.subprocess.Process
    pools: list[asyncio.subprocess.Process]
    owner: RawClient
    send: Callable[[int], Awaitable[None]]
    puppet: str
    mark: int = 0  # owner.lines before the fault

    def after(self) -> list[str]:
        return self.owner.lines[self.mark :]

    def report(self, total: int, since: int) -> dict[str, object]:
        """What went wrong on IRC: lost or doubled messages, and whether the puppet spoke
        (messages numbered ``since`` and later) after the fault."""
        got = numbers(self.owner.lines)
        return {
            "lost": sorted(set(range(total)) - set(got)),
            "doubled": sorted(n for n, c in got.items() if c > 1),
            "puppet silent after the fault": not any(
                who == self.puppet and text.split()[-1].isdigit()
                and int(text.split()[-1]) >= since
                for who, text in said(self.after())
            ),
        }  # fmt: skip


@contextlib.asynccontextmanager
async def scene(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    ircd: IRCd,
    tmp_path: Path,
    pools: int = 1,
    late_pools: int = 0,
) -> AsyncIterator[Scene]:
    """``late_pools`` of the pools start only once the puppet spoke: the others hold both
    the MSN session and the puppet."""
    irc = {
        "enabled": True,
        "server": {"host": ircd.host, "port": ircd.port},
        "bot": {"nick": BOT},
        "puppets": {"mode": "connections"},
        "reconnect": {"initial_backoff": 0.3, "max_backoff": 1.0},
        "limits": {"lines_per_second": 50, "burst": 50},
        "relay": {"merge_seconds": 0.2},
    }
    bob, _bob_events = await fast_friend(msn, BOB)
    conv = bob.conversation([ALICE])
    sent = 0

    async def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            for _ in range(300):  # not taken by MSN: sent again, as a person would
                if (await conv.send_text(f"m {sent}")).ok:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"MSN never took message {sent}")
            sent += 1
            await asyncio.sleep(0.1)

    async with database_url("postgres", tmp_path) as db, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(bob.stop)
        config = pool_config(
            bridge_config, msn, db, redis_url, tmp_path / "core.log", irc=irc,
            **{"bridge.permissions": {"*": "user", synapse.domain: "user"}},
        )  # fmt: skip
        log = tmp_path / "core.log"  # the pools' too
        procs: list[asyncio.subprocess.Process] = []

        async def start_pool() -> None:
            i = len(procs)
            name = f"pool-{'ab'[i]}"
            procs.append(await stack.enter_async_context(pool_process(config, tmp_path, name)))
            # The pools first: creating the tables of a fresh database at once collides.
            await until(
                lambda: log.exists() and log.read_text().count("Connection pool") > i,
                120, "the pool",
            )  # fmt: skip

        for _ in range(pools - late_pools):
            await start_pool()
        core = await stack.enter_async_context(daemon(synapse, config, tmp_path))
        owner = await RawClient.connect(ircd, "alice")
        stack.push_async_callback(owner.close)
        await stack.enter_async_context(reading(owner))
        await until(
            lambda: any(line.startswith(f":{BOT}!") for line in owner.lines), 90,
            "the bot on IRC", ask=lambda: owner.send(f"PRIVMSG {BOT} :status"),
        )  # fmt: skip
        owner.send(f"PRIVMSG {BOT} :login {ALICE} {PASSWORD}")
        # Deadlines for a loaded machine: these are only reached when something is wrong.
        await until(lambda: any("Logged in to MSN" in x for x in owner.lines), 90, "the MSN login")
        await send(1)  # Bob writes: the owner is invited to the conversation channel
        await until(
            lambda: any(command_of(x) == "INVITE" and CONVERSATION in x for x in owner.lines),
            60, "the invitation",
        )  # fmt: skip
        owner.send(f"JOIN {CONVERSATION}")
        await send(BEFORE - 1)
        await until(
            lambda: any(who not in (BOT, "alice") for who, _ in said(owner.lines)), 60,
            "the puppet speaking",
        )  # fmt: skip
        puppet = next(who for who, _ in said(owner.lines) if who not in (BOT, "alice"))
        await until(lambda: len(numbers(owner.lines)) >= BEFORE, 60, "the first messages")
        for _ in range(late_pools):
            await start_pool()
        yield Scene(config, core, procs, owner, send, puppet, len(owner.lines))


@pytest.mark.parametrize("how", ["kill", "terminate"])
async def test_core_restart_keeps_the_puppet_on_irc_and_loses_nothing(
    how: str,
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    ircd: IRCd,
    tmp_path: Path,
) -> None:
    async with scene(synapse, bridge_config, msn, redis_url, ircd, tmp_path) as s:
        getattr(s.core, how)()  # SIGKILL: nothing is closed; SIGTERM: left up in the pool
        await asyncio.wait_for(s.core.wait(), 30)
        await s.send(DOWN)  # the pool holds the MSN session and the puppet meanwhile
        await asyncio.sleep(2)
        total = BEFORE + DOWN + AFTER
        async with daemon(synapse, s.config, tmp_path) as core:
            # A new core trusts a bare nick again only once it proved itself (ngIRCd has
            # no accounts): the owner answers the bot as a person would.
            await until(lambda: any("There is news" in x for x in s.after()), 60,
                        "the bot asking the owner to prove themselves")  # fmt: skip
            s.owner.send(f"PRIVMSG {BOT} :channels")
            await until(lambda: any("password" in x for x in s.after() if
                                    command_of(x) == "NOTICE" and "There is news" not in x),
                        30, "the password question")  # fmt: skip
            s.owner.send(f"PRIVMSG {BOT} :{PASSWORD}")
            await s.send(AFTER)
            try:
                await until(lambda: len(numbers(s.owner.lines)) >= total, 90, "every message")
            except AssertionError as e:
                raise AssertionError(s.after()) from e
            await asyncio.sleep(3)  # anything doubled arrives meanwhile
            core.terminate()
            await asyncio.wait_for(core.wait(), 30)

        report = {
            **s.report(total, BEFORE + DOWN),
            "puppet quit": [x for x in s.after() if by(s.puppet, "QUIT", x)],
            "puppet joined again": [x for x in s.after() if by(s.puppet, "JOIN", x)],
        }
        assert not {k: v for k, v in report.items() if v}, (report, said(s.owner.lines))


@pytest.mark.parametrize("where", ["any", "together"])
async def test_pool_sigkill_opens_the_puppet_again_on_the_other_pool(
    where: str,
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    ircd: IRCd,
    tmp_path: Path,
) -> None:
    """The pool holding the puppet dies: its connection drops (a QUIT nobody can
    prevent), the core finds the pool gone and opens the puppet on the other pool; it is
    invited back and speaks again, and no message is lost or doubled.

    ``any``: both pools up from the start, the puppet and the owner's MSN session land
    where they land (mostly on different pools). ``together``: the second pool starts
    only once the puppet spoke, so the dead pool held the MSN session too, which moves."""
    late = 1 if where == "together" else 0
    async with scene(
        synapse, bridge_config, msn, redis_url, ircd, tmp_path, pools=2, late_pools=late
    ) as s:
        config = json.loads(s.config.read_text())
        prefix = f"msnbridge:{config['appservice']['id']}"
        redis = aioredis.from_url(redis_url, decode_responses=True)
        try:
            holder = await redis.get(f"{prefix}:lease:ircpuppet:{BOB}")
            session = await redis.get(f"{prefix}:lease:irc:nick:alice")  # the IRC owner's
        finally:
            await redis.aclose()
        assert holder, "no pool holds the puppet's lease"
        if where == "together":
            assert session == holder, (session, holder)
        dead = next(p for p in s.pools if f"-{p.pid}." in holder)
        dead.kill()
        await dead.wait()
        # Back with nothing sent meanwhile: the core saw the pool's heartbeat stop.
        await until(
            lambda: any(by(s.puppet, "JOIN", x) and CONVERSATION in x for x in s.after()),
            60, "the puppet back in the channel",
        )  # fmt: skip
        await s.send(DOWN)  # the MSN session moves too (its lease expires): retried
        total = BEFORE + DOWN + AFTER
        await s.send(AFTER)
        try:
            await until(lambda: len(numbers(s.owner.lines)) >= total, 120, "every message")
        except AssertionError as e:
            raise AssertionError(s.after()) from e
        await asyncio.sleep(3)  # anything doubled arrives meanwhile
        report = s.report(total, BEFORE)
        assert not {k: v for k, v in report.items() if v}, (report, said(s.owner.lines))
