"""IRCConnection against real IRC servers (ngIRCd; InspIRCd for IRCv3 caps), observed by a
plain-socket client (tests.ircd.RawClient)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from msnbridge.irc import (
    ConnectionEvent,
    Disconnected,
    IRCConnection,
    IRCEvent,
    IRCRefusedError,
    IRCSettings,
    Kind,
    NickChanged,
    QueuedLine,
    ReconnectScheduler,
    RefusalKind,
    Registered,
)
from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    inspircd_fixture,  # noqa: F401
    ircd_fixture,  # noqa: F401
    message_text,
    own_ircd_fixture,  # noqa: F401
    require,
)

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """Collects a connection's events; tests wait for the ones they expect."""

    def __init__(self) -> None:
        self.events: list[ConnectionEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: ConnectionEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[Any], bool], timeout: float = 5.0, after: int = 0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if predicate(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching event; got {self.events[-8:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    def irc(self, kind: Kind) -> list[IRCEvent]:
        return [e for e in self.events if isinstance(e, IRCEvent) and e.kind == kind]


class Address(Protocol):
    host: str
    port: int


def fast(server: Address, nick: str, **overrides: Any) -> IRCSettings:
    """Settings with test-sized timers."""
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "nick": nick,
        "rate": 200.0,
        "burst": 50.0,
        "backoff_initial": 0.1,
        "backoff_max": 1.0,
        "registration_timeout": 5.0,
        "nick_regain_interval": 0.3,
        "rejoin_timeout": 3.0,
    }
    values.update(overrides)
    return IRCSettings(**values)


@pytest.fixture
async def connections() -> AsyncIterator[list[IRCConnection]]:
    """Connections a test opens; closed at the end whatever happens."""
    opened: list[IRCConnection] = []
    yield opened
    for conn in opened:
        await conn.close(flush_timeout=0.2)


@pytest.fixture
async def raws() -> AsyncIterator[list[RawClient]]:
    opened: list[RawClient] = []
    yield opened
    for raw in opened:
        await raw.close()


async def connect(
    connections: list[IRCConnection],
    settings: IRCSettings,
    channels: tuple[str, ...] = (),
    **kw: Any,
) -> tuple[IRCConnection, Recorder]:
    recorder = Recorder()
    conn = IRCConnection(settings, recorder, **kw)
    connections.append(conn)
    for channel in channels:
        conn.join(channel)
    conn.start()
    await conn.wait_ready(10)
    return conn, recorder


async def raw_client(raws: list[RawClient], server: IRCd, nick: str, *channels: str) -> RawClient:
    raw = await RawClient.connect(server, nick)
    raws.append(raw)
    for channel in channels:
        await raw.join(channel)
    return raw


async def test_registers_and_records_isupport(ircd: IRCd, connections, raws) -> None:
    conn, rec = await connect(connections, fast(ircd, "regbot"), ("#reg",))
    registered = await rec.wait_for(lambda e: isinstance(e, Registered))
    assert registered.nick == "regbot" and not registered.reconnect
    # ngIRCd offers multi-prefix only: the rest of the wanted set is not requested.
    assert conn.caps == frozenset({"multi-prefix"})
    assert conn.nicklen == 30 and conn.channellen == 50
    assert conn.features.prefix["@"] == "o"
    assert conn.registered and conn.joined == {"#reg"}
    # The server sees us: WHOIS from an independent client.
    raw = await raw_client(raws, ircd, "regwatch")
    raw.send("WHOIS regbot")
    line = await raw.expect(lambda line: " 319 " in line)
    assert "#reg" in line


async def test_privmsg_reaches_raw_client_in_order(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "orderwatch", "#order")
    conn, _ = await connect(connections, fast(ircd, "orderbot"), ("#order",))
    for i in range(10):
        assert conn.privmsg("#order", f"message {i}").ok
    conn.notice("#order", "a notice")
    conn.action("#order", "waves")
    got = await raw.privmsgs(10)
    assert [message_text(line) for line in got] == [f"message {i}" for i in range(10)]
    assert all(line.startswith(":orderbot!") for line in got)
    notice = await raw.expect(lambda line: " NOTICE #order " in line)
    assert message_text(notice) == "a notice"
    action = await raw.expect(lambda line: "ACTION" in line)
    assert message_text(action) == "\x01ACTION waves\x01"


async def test_incoming_events(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "evsrc", "#events")  # first in: channel operator
    leaver = await raw_client(raws, ircd, "evleave", "#events", "#evquit")
    conn, rec = await connect(connections, fast(ircd, "evbot"), ("#events", "#evquit"))
    leaver.send("PART #events :later")
    leaver.send("QUIT :gone")
    part = await rec.wait_for(lambda e: isinstance(e, IRCEvent) and e.kind == Kind.PART)
    assert (part.nick, part.target, part.text) == ("evleave", "#events", "later")
    quit_ = await rec.wait_for(lambda e: isinstance(e, IRCEvent) and e.kind == Kind.QUIT)
    assert (quit_.nick, quit_.target) == ("evleave", None)
    assert "gone" in quit_.text  # ngIRCd quotes it: "gone"
    raw.send("PRIVMSG #events :hello bridge")
    raw.send("NOTICE evbot :private notice")
    raw.send("PRIVMSG #events :\x01ACTION dances\x01")
    raw.send("PRIVMSG evbot :\x01VERSION\x01")
    # CTCP VERSION is answered (with a NOTICE, lowest priority).
    reply = await raw.expect(lambda line: " NOTICE evsrc " in line)
    assert message_text(reply) == "\x01VERSION msnbridge\x01"
    raw.send("MODE #events +v evbot")
    raw.send("INVITE evbot #elsewhere")
    raw.send("TOPIC #events :new topic")
    raw.send("NICK evsrc2")
    raw.send("KICK #events evbot :out")
    kick = await rec.wait_for(lambda e: isinstance(e, IRCEvent) and e.kind == Kind.KICK)
    assert (kick.nick, kick.target, kick.params, kick.text) == (
        "evsrc2",
        "#events",
        ("evbot",),
        "out",
    )
    # Kicked: not rejoined automatically, the caller decides.
    assert "#events" not in conn.channels and "#events" not in conn.joined

    msg = rec.irc(Kind.PRIVMSG)[0]
    assert (msg.nick, msg.target, msg.text, msg.is_channel) == (
        "evsrc",
        "#events",
        "hello bridge",
        True,
    )
    assert msg.source.startswith("evsrc!")
    notice = rec.irc(Kind.NOTICE)[0]
    assert (notice.target, notice.text, notice.is_channel) == ("evbot", "private notice", False)
    assert rec.irc(Kind.ACTION)[0].text == "dances"
    mode = rec.irc(Kind.MODE)[0]
    assert mode.params == ("+v", "evbot")
    invite = rec.irc(Kind.INVITE)[0]
    assert (invite.target, invite.params) == ("evbot", ("#elsewhere",))
    assert rec.irc(Kind.TOPIC)[0].text == "new topic"
    nick = rec.irc(Kind.NICK)[0]
    assert (nick.nick, nick.target) == ("evsrc", "evsrc2")


async def test_nick_collision_resolved_and_wanted_nick_regained(
    ircd: IRCd, connections, raws
) -> None:
    holder = await raw_client(raws, ircd, "takenick")
    conn, rec = await connect(connections, fast(ircd, "takenick"))
    assert conn.nick == "takenick_"  # 433 → first alternative
    await holder.close()
    changed = await rec.wait_for(lambda e: isinstance(e, NickChanged), timeout=5)
    assert (changed.old, changed.new) == ("takenick_", "takenick")
    assert conn.nick == "takenick"
    # The server agrees.
    raw = await raw_client(raws, ircd, "nickcheck")
    raw.send("ISON takenick takenick_")
    ison = await raw.expect(lambda line: " 303 " in line)
    assert message_text(ison).split() == ["takenick"]


async def test_embedded_newlines_become_lines(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "nlwatch", "#nl")
    conn, _ = await connect(connections, fast(ircd, "nlbot"), ("#nl",))
    result = conn.privmsg("#nl", "first\nsecond\r\nthird\r\n\nfourth\x00!")
    assert result.queued == 4
    got = await raw.privmsgs(4)
    assert [message_text(line) for line in got] == ["first", "second", "third", "fourth!"]


async def test_long_message_split_without_loss(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "longwatch", "#long")
    conn, _ = await connect(
        connections, fast(ircd, "longbot", max_lines_per_message=20), ("#long",)
    )
    words = [f"wörd{i}-ünïcödé-😀" for i in range(120)]
    text = " ".join(words)
    assert len(text) >= 2000
    result = conn.privmsg("#long", text)
    assert result.ok and result.queued > 1
    got = await raw.privmsgs(result.queued)
    raw_sizes = [len(line.encode()) + 2 for line in got]  # + CRLF, as the server sent it
    assert max(raw_sizes) <= 512
    # Splits fell on spaces (each dropped one): no word was cut, nothing else lost.
    assert " ".join(message_text(line) for line in got) == text


async def test_flood_queue_paces_and_keeps_order(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "floodwatch", "#flood")
    rate, burst = 100.0, 5.0
    conn, _ = await connect(
        connections, fast(ircd, "floodbot", rate=rate, burst=burst), ("#flood",)
    )
    started = time.monotonic()
    for i in range(50):
        assert conn.privmsg("#flood", f"flood line {i:02d}").ok
    got = await raw.privmsgs(50)
    elapsed = time.monotonic() - started
    assert [message_text(line) for line in got] == [f"flood line {i:02d}" for i in range(50)]
    # Each line costs a little more than one token: at least (50 - burst) / rate seconds.
    assert elapsed >= (50 - burst) / rate


async def test_queue_overflow_reported(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "ovwatch", "#overflow")
    overflowed: list[QueuedLine] = []
    recorder = Recorder()
    conn = IRCConnection(fast(ircd, "ovbot", queue_size=3), recorder, on_overflow=overflowed.append)
    connections.append(conn)
    conn.join("#overflow")
    # Not connected yet: messages wait in the queue, which holds three lines.
    results = [conn.privmsg("#overflow", f"m{i}") for i in range(5)]
    assert [r.queued for r in results] == [1, 1, 1, 0, 0]
    assert [r.refused for r in results] == [0, 0, 0, 1, 1]
    assert [item.line for item in overflowed] == ["PRIVMSG #overflow :m3", "PRIVMSG #overflow :m4"]
    conn.start()
    await conn.wait_ready(10)
    got = await raw.privmsgs(3)
    assert [message_text(line) for line in got] == ["m0", "m1", "m2"]
    assert len(overflowed) == 2  # the rejoin after registration is never refused


async def test_part_purges_lines_queued_for_the_channel(ircd: IRCd, connections, raws) -> None:
    raw = await raw_client(raws, ircd, "partwatch", "#part")
    conn, _ = await connect(connections, fast(ircd, "partbot", rate=20.0, burst=1.0), ("#part",))
    for i in range(40):
        conn.privmsg("#part", f"p{i}")
    conn.privmsg("partwatch", "private, kept")
    purged = conn.part("#part", "bye")
    assert purged >= 35
    line = await raw.expect(lambda line: " PART #part" in line or "private, kept" in line)
    assert " PART #part" in line or "private, kept" in line
    await raw.expect(lambda line: "private, kept" in line or " PART #part" in line)
    channel_lines = [ln for ln in raw.lines if " PRIVMSG #part " in ln]
    assert len(channel_lines) == 40 - purged


async def test_server_restart_reconnects_rejoins_and_delivers_queued(
    own_ircd: IRCd, connections, raws
) -> None:
    # The first attempt comes a second after the drop, so the observer rejoins first.
    settings = fast(own_ircd, "restartbot", backoff_initial=1.0, backoff_jitter=0.0)
    conn, rec = await connect(connections, settings, ("#restart", "#second"))
    assert conn.joined == {"#restart", "#second"}
    await own_ircd.astop()
    gone = await rec.wait_for(lambda e: isinstance(e, Disconnected))
    assert gone.retry_in is not None and gone.retry_in > 0
    assert not conn.registered
    queued_at = len(rec.events)
    assert conn.privmsg("#restart", "queued while the server was down").queued == 1
    await own_ircd.astart()
    raw = await raw_client(raws, own_ircd, "restartwatch", "#restart")
    back = await rec.wait_for(lambda e: isinstance(e, Registered), timeout=10, after=queued_at)
    assert back.reconnect and back.nick == "restartbot"
    line = await raw.expect(lambda line: " PRIVMSG #restart " in line, timeout=10)
    assert message_text(line) == "queued while the server was down"
    # Its JOIN came before the message.
    joins = [
        i for i, ln in enumerate(raw.lines) if ln.startswith(":restartbot!") and " JOIN " in ln
    ]
    assert joins and joins[0] < raw.lines.index(line)
    assert conn.joined == {"#restart", "#second"}


async def test_netsplit_reconnects_through_shared_scheduler(own_ircd: IRCd, connections) -> None:
    scheduler = ReconnectScheduler(concurrency=2)
    conns, recorders = [], []
    for i in range(8):
        conn, rec = await connect(
            connections,
            # No jitter: all eight retry at the same instant, the worst case.
            fast(own_ircd, f"split{i}", backoff_initial=0.3, backoff_jitter=0.0),
            ("#split",),
            scheduler=scheduler,
        )
        conns.append(conn)
        recorders.append(rec)
    await own_ircd.astop()
    await asyncio.gather(*(r.wait_for(lambda e: isinstance(e, Disconnected)) for r in recorders))
    assert not any(c.registered for c in conns)
    await own_ircd.astart()
    await asyncio.gather(*(c.wait_ready(10) for c in conns))
    assert all(c.registered and c.joined == {"#split"} for c in conns)
    assert scheduler.peak == 2  # never more than two registrations in flight


async def test_ping_timeout_and_registration_watchdog(own_ircd: IRCd, connections) -> None:
    settings = fast(
        own_ircd,
        "pingbot",
        ping_interval=0.3,
        ping_timeout=0.3,
        registration_timeout=0.5,
        backoff_initial=0.1,
        backoff_max=0.2,
    )
    conn, rec = await connect(connections, settings)
    assert own_ircd.proc is not None
    pid = own_ircd.proc.pid
    os.kill(pid, signal.SIGSTOP)  # the server hangs: TCP open, nothing answered
    try:
        lost = await rec.wait_for(lambda e: isinstance(e, Disconnected), timeout=5)
        assert "ping timeout" in lost.reason
        # Reconnecting reaches the kernel's backlog but never registers: the watchdog drops it.
        stuck = await rec.wait_for(
            lambda e: isinstance(e, Disconnected) and "registration" in e.reason, timeout=5
        )
        assert stuck.retry_in is not None
    finally:
        os.kill(pid, signal.SIGCONT)
    await conn.wait_ready(10)
    assert conn.registered


async def test_server_password(tmp_path: Path, connections) -> None:
    require("ngircd")
    server = IRCd(tmp_path / "pw", password="s3cret")
    server.start()
    try:
        conn, _ = await connect(connections, fast(server, "pwbot", password="s3cret"))
        assert conn.registered
        recorder = Recorder()
        wrong = IRCConnection(fast(server, "pwbad", password="wrong"), recorder)
        connections.append(wrong)
        wrong.start()
        with pytest.raises(IRCRefusedError) as refused:
            await wrong.wait_ready(5)
        assert refused.value.refusal.kind == RefusalKind.BAD_PASSWORD
        final = await recorder.wait_for(lambda e: isinstance(e, Disconnected))
        assert final.retry_in is None  # final: no reconnection loop against a wrong password
    finally:
        server.stop()


async def test_too_many_connections_classified(tmp_path: Path, connections) -> None:
    require("ngircd")
    server = IRCd(tmp_path / "clones", max_connections_ip=1)
    server.start()
    try:
        await connect(connections, fast(server, "first"))
        recorder = Recorder()
        second = IRCConnection(fast(server, "second", backoff_initial=5.0), recorder)
        connections.append(second)
        second.start()
        refused = await recorder.wait_for(lambda e: isinstance(e, Disconnected))
        assert refused.refusal is not None
        assert refused.refusal.kind == RefusalKind.TOO_MANY_CONNECTIONS, refused.refusal
        assert refused.retry_in is not None  # not final: the caller may fall back meanwhile
    finally:
        server.stop()


async def test_ircv3_caps_against_inspircd(inspircd: IRCd, connections, raws) -> None:
    raw = await RawClient.connect(inspircd, "capwatch", caps=("message-tags", "server-time"))
    raws.append(raw)
    await raw.join("#caps")
    conn, rec = await connect(connections, fast(inspircd, "capbot"), ("#caps",))
    assert {
        "message-tags",
        "server-time",
        "echo-message",
        "batch",
        "multi-prefix",
        "away-notify",
    } <= conn.caps
    assert "sasl" not in conn.caps  # not configured, not requested
    raw.send("@+typing=active TAGMSG #caps")
    raw.send("PRIVMSG #caps :with tags")
    msg = await rec.wait_for(lambda e: isinstance(e, IRCEvent) and e.kind == Kind.PRIVMSG)
    assert msg.server_time is not None and abs(msg.server_time.timestamp() - time.time()) < 60
    assert "msgid" in msg.tags
    typing = rec.irc(Kind.TAGMSG)[0]
    assert typing.tags.get("+typing") == "active" and typing.target == "#caps"
    # echo-message: our own line comes back; this layer does not filter it.
    conn.privmsg("#caps", "echo me", tags={"+draft/reply": "x"})
    echo = await rec.wait_for(
        lambda e: isinstance(e, IRCEvent) and e.kind == Kind.PRIVMSG and e.nick == "capbot"
    )
    assert echo.text == "echo me"
    assert conn.tagmsg("#caps", {"+typing": "active"})
    tagged = await raw.expect(lambda line: command_of(line) == "TAGMSG")
    assert tagged.split(" ")[-1].lstrip(":") == "#caps"
    assert "+typing=active" in tagged.split(" ", 1)[0].split(";")


async def test_tls_verified_and_unverified(tmp_path: Path, connections) -> None:
    require("ngircd")
    server = IRCd(tmp_path / "tls", tls=True)
    server.start()
    try:
        ca = str(server.cert_path)
        conn, _ = await connect(connections, fast(server, "tlsok", tls=True, tls_ca_file=ca))
        assert conn.registered
        conn, _ = await connect(connections, fast(server, "tlsany", tls=True, tls_verify=False))
        assert conn.registered
        # Verification on, certificate not trusted: refused, classified as a network failure.
        recorder = Recorder()
        bad = IRCConnection(fast(server, "tlsbad", tls=True), recorder)
        connections.append(bad)
        bad.start()
        failed = await recorder.wait_for(lambda e: isinstance(e, Disconnected))
        assert failed.refusal is not None and failed.refusal.kind == RefusalKind.NETWORK
        assert "CERTIFICATE_VERIFY_FAILED" in failed.refusal.message
        assert not bad.registered
    finally:
        server.stop()


class ScriptedServer:
    """A few-rules IRC server on a real socket, for what ngIRCd does not do: SASL, and
    ignoring CAP without a reply. Records every line it receives."""

    def __init__(self, *, cap: bool, sasl_password: str | None = None):
        self.cap = cap
        self.sasl_password = sasl_password
        self.received: list[str] = []
        self.server: asyncio.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nick = user = None
        negotiating = False

        def send(line: str) -> None:
            writer.write(f":scripted {line}\r\n".encode())

        def maybe_register() -> None:
            if nick and user and not negotiating:
                send(f"001 {nick} :Welcome")
                send(f"005 {nick} NICKLEN=16 CHANNELLEN=32 :are supported")
                send(f"422 {nick} :No MOTD")

        while line := (await reader.readline()).decode().rstrip("\r\n"):
            self.received.append(line)
            command, _, rest = line.partition(" ")
            if command == "CAP" and self.cap:
                if rest.startswith("LS"):
                    negotiating = True
                    send("CAP * LS :sasl=PLAIN server-time")
                elif rest.startswith("REQ"):
                    send(f"CAP * ACK {rest[4:]}")
                elif rest == "END":
                    negotiating = False
                    maybe_register()
            elif command == "AUTHENTICATE":
                if rest == "PLAIN":
                    writer.write(b"AUTHENTICATE +\r\n")
                else:
                    _, _, password = base64.b64decode(rest).decode().split("\0")
                    if password == self.sasl_password:
                        send("900 * * acct :You are now logged in as acct")
                        send("903 * :SASL authentication successful")
                    else:
                        send("904 * :SASL authentication failed")
            elif command == "NICK":
                nick = rest
                maybe_register()
            elif command == "USER":
                user = rest
                maybe_register()
            elif command == "QUIT":
                break
        writer.close()


async def test_sasl_plain(connections) -> None:
    async with ScriptedServer(cap=True, sasl_password="hunter2") as server:
        settings = fast(server, "saslbot", sasl_username="acct", sasl_password="hunter2")
        conn, _ = await connect(connections, settings)
        assert {"sasl", "server-time"} <= conn.caps
        assert conn.nicklen == 16 and conn.channellen == 32
        sent = server.received
        auth = next(
            line
            for line in sent
            if line.startswith("AUTHENTICATE ") and line != "AUTHENTICATE PLAIN"
        )
        assert base64.b64decode(auth.split(" ", 1)[1]) == b"acct\0acct\0hunter2"
        # CAP END only after SASL finished.
        assert sent.index("CAP END") > sent.index(auth)

        recorder = Recorder()
        wrong = IRCConnection(
            fast(server, "saslbad", sasl_username="acct", sasl_password="nope"),
            recorder,
        )
        connections.append(wrong)
        wrong.start()
        with pytest.raises(IRCRefusedError) as refused:
            await wrong.wait_ready(5)
        assert refused.value.refusal.kind == RefusalKind.BAD_PASSWORD


async def test_server_that_ignores_cap(connections) -> None:
    async with ScriptedServer(cap=False) as server:
        conn, rec = await connect(connections, fast(server, "oldbot"))
        assert conn.caps == frozenset()
        assert isinstance(rec.events[0], Registered)
        assert "CAP END" not in server.received
