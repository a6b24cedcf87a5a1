"""draft/relaymsg: the bot speaks for relayed people under spoofed nicks where the server
offers it. Neither ngIRCd nor the packaged InspIRCd 3 has RELAYMSG (InspIRCd needs a
contrib module), so a scripted server on a real socket offers the capability here; the
line format is checked against the IRCv3 draft (RELAYMSG <channel> <nick> :<text>)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from msnbridge.irc import lines
from msnbridge.irc.backoff import ReconnectScheduler
from msnbridge.irc.bot import BotConnection
from msnbridge.irc.options import IRCOptions
from msnbridge.irc.puppets import Line, Puppet, PuppetManager
from msnbridge.irc.settings import IRCSettings

pytestmark = pytest.mark.timeout(30)


def test_spoofed_nick_holds_a_separator_and_no_reserved_characters() -> None:
    assert lines.relaymsg_nick("Bob", "/") == "Bob/msn"
    assert lines.relaymsg_nick("Bob ✨ the builder", "|/") == "Bob✨thebuilder|msn"
    assert lines.relaymsg_nick("a!b@c:d,e.f*g?h#i&j$k%l+m'n\"o", "/") == "abcdefghijklmno/msn"
    assert lines.relaymsg_nick("x\r\ny\x01", None) == "xy/msn"  # no value: "/"
    assert lines.relaymsg_nick("!!!", "/") == "msn/msn"
    assert lines.relaymsg_nick("B" * 80, "/") == "B" * lines.RELAYMSG_NAME_MAX + "/msn"


def test_relaymsg_lines_split_by_what_receivers_get() -> None:
    relayed, truncated = lines.relaymsg_lines("#c", "Bob/msn", "hello\nworld")
    assert relayed == ["RELAYMSG #c Bob/msn :hello", "RELAYMSG #c Bob/msn :world"]
    assert not truncated
    (action,), _ = lines.relaymsg_lines("#c", "Bob/msn", "waves", action=True)
    assert action == "RELAYMSG #c Bob/msn :\x01ACTION waves\x01"
    long, _ = lines.relaymsg_lines("#chan", "Bob/msn", "é" * 600)
    budget = lines.payload_budget(lines.message_prefix_length("Bob/msn", "PRIVMSG", "#chan"))
    bodies = [line.split(" :", 1)[1] for line in long]
    assert "".join(bodies) == "é" * 600 and all(lines.utf8_len(b) <= budget for b in bodies)
    cut, truncated = lines.relaymsg_lines("#c", "B/msn", "\n".join("abc"), max_lines=2)
    assert len(cut) == 2 and truncated


class RelayServer:
    """Registers anyone; offers ``draft/relaymsg=/`` when ``relaymsg``; records lines."""

    def __init__(self, *, relaymsg: bool) -> None:
        self.caps = "draft/relaymsg=/ message-tags" if relaymsg else "message-tags"
        self.received: list[str] = []
        self.host, self.port = "127.0.0.1", 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RelayServer:
        self._server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nick = ""

        def send(line: str) -> None:
            writer.write(f":relay.test {line}\r\n".encode())

        while line := (await reader.readline()).decode().rstrip("\r\n"):
            self.received.append(line)
            command, _, rest = line.partition(" ")
            if command == "CAP" and rest.startswith("LS"):
                send(f"CAP * LS :{self.caps}")
            elif command == "CAP" and rest.startswith("REQ"):
                send(f"CAP * ACK {rest[4:]}")
            elif command == "NICK":
                nick = rest
            elif command == "CAP" and rest == "END":
                send(f"001 {nick} :Welcome")
                send(f"422 {nick} :No MOTD")
            elif command == "QUIT":
                break
        writer.close()

    async def wait_for(self, prefix: str) -> list[str]:
        for _ in range(200):
            found = [line for line in self.received if line.startswith(prefix)]
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {prefix!r} line; got {self.received[-5:]}")


@pytest.fixture
async def bots() -> AsyncIterator[list[BotConnection]]:
    opened: list[BotConnection] = []
    yield opened
    for bot in opened:
        await bot.close(flush_timeout=0.5)


async def connected_bot(server: RelayServer, bots: list[BotConnection]) -> BotConnection:
    settings = IRCSettings(host=server.host, port=server.port, nick="RelayBot", rate=100, burst=50)
    bot = BotConnection(settings, lambda _event: None)
    bots.append(bot)
    bot.start()
    await bot.wait_ready(5)
    return bot


def relayed_bob(bot: BotConnection) -> tuple[PuppetManager, Puppet]:
    options = IRCOptions(host="unused")
    manager = PuppetManager(
        options, bot, ReconnectScheduler(), None,  # type: ignore[arg-type]  # no DB needed
        request_invite=lambda *_: None, on_joined=lambda *_: None, on_relayed=lambda _: None,
    )  # fmt: skip
    return manager, Puppet("bob@example.com", "Bob ✨", "Bob[m]", relayed=True)


async def test_relayed_puppets_use_relaymsg_where_offered(bots: list[BotConnection]) -> None:
    async with RelayServer(relaymsg=True) as server:
        bot = await connected_bot(server, bots)
        assert bot.relaymsg_separators == "/"
        manager, bob = relayed_bob(bot)
        assert manager.say(bob, "#msn-alice-bob", Line("privmsg", "hi there"))
        assert manager.say(bob, "#msn-alice-bob", Line("action", "waves"))
        assert manager.say(bob, "#msn-alice-bob", Line("notice", "a notice"))
        relayed = await server.wait_for("RELAYMSG")
        await server.wait_for("NOTICE")
        assert relayed == [
            "RELAYMSG #msn-alice-bob Bob✨/msn :hi there",
            "RELAYMSG #msn-alice-bob Bob✨/msn :\x01ACTION waves\x01",
        ]
        # RELAYMSG carries only PRIVMSG: a notice keeps the <name> prefix form.
        assert any(line.startswith("NOTICE #msn-alice-bob :<Bo") for line in server.received)


async def test_without_the_cap_the_bot_prefixes_names(bots: list[BotConnection]) -> None:
    async with RelayServer(relaymsg=False) as server:
        bot = await connected_bot(server, bots)
        assert bot.relaymsg_separators is None
        assert bot.relaymsg("#c", "Bob", "hi") is None
        manager, bob = relayed_bob(bot)
        assert manager.say(bob, "#c", Line("privmsg", "hi there"))
        (line,) = await server.wait_for("PRIVMSG #c")
        assert line == "PRIVMSG #c :" + lines.relay_prefix("Bob ✨") + "hi there"
        assert not any(line.startswith("RELAYMSG") for line in server.received)
