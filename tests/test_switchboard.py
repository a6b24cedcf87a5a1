"""Switchboard and Conversation against small scripted switchboard servers on real sockets.

Each test plays the server side by hand (read the client's command, answer it), so the
exact wire traffic is asserted. Integration against the full MSNP test server lives
elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from puppets.command import CLIENT_NO_TRID, CLIENT_PAYLOAD_COMMANDS, Command, CommandReader
from puppets.conversation import Conversation
from puppets.errors import MSNPError
from puppets.event.conversation import (
    ConversationEvent,
    DeliveryResult,
    DeliveryStatus,
    MessageReceived,
    NudgeReceived,
    ParticipantJoined,
    ParticipantLeft,
    SwitchboardClosed,
    TypingReceived,
    UnknownPayloadReceived,
)
from puppets.message import (
    MAX_PAYLOAD,
    TextFormat,
    TextMessage,
    build_text,
    parse_payload,
)
from puppets.switchboard import Switchboard, SwitchboardTicket

ME = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
COOKIE = "1056411141.26158"
E = TypeVar("E", bound=ConversationEvent)

# --- a scripted server ------------------------------------------------------------------


class Peer:
    """The server's end of one client connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = CommandReader(payload_commands=CLIENT_PAYLOAD_COMMANDS, no_trid=CLIENT_NO_TRID)
        self.inbox: list[Command] = []
        self.done = asyncio.Event()

    async def recv(self, timeout: float = 2.0) -> Command:
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise EOFError("client closed the connection")
            self.inbox.extend(self.codec.feed(data))
        return self.inbox.pop(0)

    async def expect(self, name: str, timeout: float = 2.0) -> Command:
        cmd = await self.recv(timeout)
        assert cmd.name == name, f"expected {name}, got {cmd}"
        return cmd

    async def silent(self, timeout: float = 0.2) -> None:
        """Assert the client sends nothing for ``timeout`` seconds."""
        with pytest.raises(TimeoutError):
            cmd = await self.recv(timeout)
            pytest.fail(f"unexpected {cmd}")

    async def until_eof(self, timeout: float = 2.0) -> list[Command]:
        """Everything the client still sends, up to its closing the connection."""
        seen: list[Command] = []
        while True:
            try:
                seen.append(await self.recv(timeout))
            except EOFError:
                return seen

    def send(self, line: str, payload: bytes = b"") -> None:
        self.writer.write(line.encode() + b"\r\n" + payload)

    def send_msg(self, sender: str, nick: str, payload: bytes) -> None:
        self.send(f"MSG {sender} {nick} {len(payload)}", payload)

    def close(self) -> None:
        self.writer.close()
        self.done.set()


class ScriptedServer:
    def __init__(self) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.all: list[Peer] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        self.all.append(peer)
        self.peers.put_nowait(peer)
        await peer.done.wait()

    async def peer(self, timeout: float = 2.0) -> Peer:
        return await asyncio.wait_for(self.peers.get(), timeout)

    def ticket(self, **kwargs: str) -> SwitchboardTicket:
        return SwitchboardTicket("127.0.0.1", self.port, COOKIE, **kwargs)

    async def stop(self) -> None:
        for peer in self.all:
            peer.close()
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    srv = ScriptedServer()
    await srv.start()
    yield srv
    await srv.stop()


class Recorder:
    """An on_event callback that keeps events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[ConversationEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: ConversationEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait(self, kind: type[E], count: int = 1, timeout: float = 2.0) -> E:
        async def until() -> None:
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.of(kind)[count - 1]


def text_of(cmd: Command) -> str:
    assert cmd.payload is not None
    parsed = parse_payload(cmd.payload)
    assert isinstance(parsed, TextMessage), parsed
    return parsed.text


# --- script fragments --------------------------------------------------------------------


async def call(server: ScriptedServer, rec: Recorder) -> tuple[Switchboard, Peer]:
    task = asyncio.create_task(
        Switchboard.call(server.ticket(), passport=ME, protocol=12, on_event=rec)
    )
    peer = await server.peer()
    usr = await peer.expect("USR")
    assert usr.args == [ME, COOKIE]
    peer.send(f"USR {usr.trid} OK {ME} Alice%20A.")
    return await task, peer


async def call_and_join(server: ScriptedServer, rec: Recorder) -> tuple[Switchboard, Peer]:
    sb, peer = await call(server, rec)
    invite = asyncio.create_task(sb.invite(BOB))
    cal = await peer.expect("CAL")
    assert cal.args == [BOB]
    peer.send(f"CAL {cal.trid} RINGING 17342299")
    await invite
    peer.send(f"JOI {BOB} Bob%20B.")
    assert await sb.wait_joined(BOB, 2)
    return sb, peer


async def serve_open(server: ScriptedServer, *, join: bool = True) -> Peer:
    """The server side of a Conversation opening a switchboard to one invitee."""
    peer = await server.peer()
    usr = await peer.expect("USR")
    peer.send(f"USR {usr.trid} OK {ME} Alice")
    cal = await peer.expect("CAL")
    peer.send(f"CAL {cal.trid} RINGING 1234")
    if join:
        peer.send(f"JOI {cal.args[0]} Bob")
    return peer


def conversation(
    server: ScriptedServer, rec: Recorder, invitees: tuple[str, ...] = (BOB,), **kwargs: float
) -> tuple[Conversation, list[int]]:
    opens: list[int] = []

    async def open_switchboard() -> SwitchboardTicket:
        opens.append(1)
        return server.ticket()

    conv = Conversation(
        passport=ME,
        protocol=12,
        open_switchboard=open_switchboard,
        invitees=invitees,
        on_event=rec,
        **kwargs,
    )
    return conv, opens


# --- Switchboard ---------------------------------------------------------------------------


async def test_call_flow_then_ack(server: ScriptedServer) -> None:
    rec = Recorder()
    sb, peer = await call_and_join(server, rec)
    assert sb.nick == "Alice A."
    assert sb.session_id == "17342299"
    assert sb.participants == {BOB: "Bob B."}
    joined = await rec.wait(ParticipantJoined)
    assert (joined.passport, joined.nick, joined.switchboard) == (BOB, "Bob B.", sb)

    fmt = TextFormat(font="Comic Sans MS", bold=True, color=0xFF0000)
    sending = asyncio.create_task(sb.send_text("hello\nthere", fmt))
    msg = await peer.expect("MSG")
    assert msg.args == ["A"]
    assert msg.payload is not None
    parsed = parse_payload(msg.payload)
    assert isinstance(parsed, TextMessage)
    assert parsed.text == "hello\nthere"
    assert parsed.format.font == "Comic Sans MS" and parsed.format.bold
    assert not sending.done()  # waits for the ACK
    peer.send(f"ACK {msg.trid}")
    result = await sending
    assert result.status is DeliveryStatus.ACKED and result.ok

    await sb.leave()
    assert sb.closed
    assert [c.name for c in await peer.until_eof()] == ["OUT"]
    closed = await rec.wait(SwitchboardClosed)
    assert closed.reason == "left"


async def test_nak_and_error_reply(server: ScriptedServer) -> None:
    sb, peer = await call_and_join(server, Recorder())
    sending = asyncio.create_task(sb.send_payload(build_text("x")))
    msg = await peer.expect("MSG")
    peer.send(f"NAK {msg.trid}")
    assert (await sending).status is DeliveryStatus.NAKED

    sending = asyncio.create_task(sb.send_payload(build_text("y")))
    msg = await peer.expect("MSG")
    peer.send(f"282 {msg.trid}")
    result = await sending
    assert result.status is DeliveryStatus.NAKED
    assert "282" in result.reason


async def test_no_reply_is_no_answer(server: ScriptedServer) -> None:
    sb, peer = await call_and_join(server, Recorder())
    result = await sb.send_payload(build_text("anyone?"), timeout=0.2)
    assert result.status is DeliveryStatus.NO_ANSWER
    await peer.expect("MSG")
    assert not sb.closed  # a missing ACK does not end the session


async def test_ack_modes_u_and_n(server: ScriptedServer) -> None:
    sb, peer = await call_and_join(server, Recorder())
    sb.nak_grace = 0.1
    assert (await sb.send_payload(build_text("u"), ack="U")).status is DeliveryStatus.SENT
    assert (await peer.expect("MSG")).args == ["U"]
    # N: no NAK within the grace period counts as sent ...
    assert (await sb.send_payload(build_text("n"), ack="N")).status is DeliveryStatus.SENT
    assert (await peer.expect("MSG")).args == ["N"]
    # ... and a NAK inside it does not.
    sending = asyncio.create_task(sb.send_payload(build_text("n2"), ack="N"))
    msg = await peer.expect("MSG")
    peer.send(f"NAK {msg.trid}")
    assert (await sending).status is DeliveryStatus.NAKED
    with pytest.raises(ValueError):
        sb.post([b"x" * (MAX_PAYLOAD + 1)])
    assert (await sb.send_text("")).status is DeliveryStatus.FAILED


async def test_cal_offline_raises_217(server: ScriptedServer) -> None:
    sb, peer = await call(server, Recorder())
    invite = asyncio.create_task(sb.invite(BOB))
    cal = await peer.expect("CAL")
    peer.send(f"217 {cal.trid}")
    with pytest.raises(MSNPError) as err:
        await invite
    assert err.value.code == 217
    assert not await sb.wait_joined(BOB, 0.05)


async def test_answer_flow_with_hex_session(server: ScriptedServer) -> None:
    rec = Recorder()
    ticket = server.ticket(session_id="8a3f09c2e1", inviter=BOB, inviter_nick="Bob")
    task = asyncio.create_task(Switchboard.answer(ticket, passport=ME, protocol=12, on_event=rec))
    peer = await server.peer()
    ans = await peer.expect("ANS")
    assert ans.args == [ME, COOKIE, "8a3f09c2e1"]
    peer.send(f"IRO {ans.trid} 1 2 {BOB} Bob")
    peer.send(f"IRO {ans.trid} 2 2 {CAROL} Carol%20%C3%A9 1342177280")
    assert not task.done()
    peer.send(f"ANS {ans.trid} OK")
    sb = await task
    assert sb.participants == {BOB: "Bob", CAROL: "Carol é"}
    assert sb.session_id == "8a3f09c2e1"
    assert await sb.wait_joined(CAROL, 0.1)

    with pytest.raises(ValueError):
        await Switchboard.answer(server.ticket(), passport=ME, protocol=12, on_event=rec)


async def test_bad_cookie_fails_call(server: ScriptedServer) -> None:
    rec = Recorder()
    task = asyncio.create_task(
        Switchboard.call(server.ticket(), passport=ME, protocol=12, on_event=rec)
    )
    peer = await server.peer()
    usr = await peer.expect("USR")
    peer.send(f"911 {usr.trid}")
    with pytest.raises(MSNPError):
        await task
    assert rec.events == []  # a switchboard that never opened reports nothing


async def test_incoming_payloads_and_bye(server: ScriptedServer) -> None:
    rec = Recorder()
    sb, peer = await call_and_join(server, rec)
    peer.send(f"JOI {CAROL} Carol")
    await rec.wait(ParticipantJoined, 2)

    text = (
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        b"X-MMS-IM-Format: FN=Lucida%20Sans%20Unicode; EF=B; CO=ff; CS=0; PF=22\r\n\r\n"
        b"Hello.\r\nI\xe2\x80\x99m Bob"
    )
    peer.send_msg(BOB, "Bob%20(new)", text)
    got = await rec.wait(MessageReceived)
    assert (got.sender, got.nick) == (BOB, "Bob (new)")
    assert got.message.text == "Hello.\nI’m Bob"
    assert got.message.format.bold and got.message.format.color == 0xFF0000
    assert sb.participants[BOB] == "Bob (new)"

    peer.send_msg(
        BOB,
        "Bob",
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\n"
        b"TypingUser: bob@example.com\r\n\r\n\r\n",
    )
    assert (await rec.wait(TypingReceived)).sender == BOB
    nudge = b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n"
    peer.send_msg(BOB, "Bob", nudge)
    peer.send_msg(CAROL, "Carol", nudge[: -len(b"\r\n")])  # the short form some clients send
    await rec.wait(NudgeReceived, 2)
    assert [e.sender for e in rec.of(NudgeReceived)] == [BOB, CAROL]
    peer.send_msg(
        BOB, "Bob", b"MIME-Version: 1.0\r\nContent-Type: application/x-unheard-of\r\n\r\nzz"
    )
    assert (await rec.wait(UnknownPayloadReceived)).content_type == "application/x-unheard-of"

    peer.send(f"BYE {CAROL}")
    left = await rec.wait(ParticipantLeft)
    assert (left.passport, left.timed_out) == (CAROL, False)
    assert not sb.closed  # Bob is still there
    peer.send(f"BYE {BOB} 1")
    left = await rec.wait(ParticipantLeft, 2)
    assert (left.passport, left.timed_out) == (BOB, True)
    # Alone now: the switchboard says OUT and closes itself.
    assert [c.name for c in await peer.until_eof()] == ["OUT"]
    closed = await rec.wait(SwitchboardClosed)
    assert closed.reason == "everyone else left"
    assert sb.closed


async def test_long_text_is_split_and_reassembles(server: ScriptedServer) -> None:
    sb, peer = await call_and_join(server, Recorder())
    text = ("Grüße aus Köln — 日本語のテキスト ✓ 🎉 " * 200)[:5000]
    assert len(text) == 5000 and len(text.encode()) > 3 * MAX_PAYLOAD
    sending = asyncio.create_task(sb.send_text(text))
    parts: list[str] = []
    while sum(len(p) for p in parts) < len(text):
        msg = await peer.expect("MSG")
        assert msg.payload is not None and len(msg.payload) <= MAX_PAYLOAD
        parts.append(text_of(msg))
        peer.send(f"ACK {msg.trid}")
    assert len(parts) > 3
    assert "".join(parts) == text
    assert (await sending).status is DeliveryStatus.ACKED


async def test_worst_part_decides_the_result(server: ScriptedServer) -> None:
    sb, peer = await call_and_join(server, Recorder())
    sending = asyncio.create_task(sb.send_text("word " * 700))  # three parts
    trids = [(await peer.expect("MSG")).trid for _ in range(3)]
    peer.send(f"ACK {trids[0]}")
    peer.send(f"NAK {trids[1]}")
    peer.send(f"ACK {trids[2]}")
    assert (await sending).status is DeliveryStatus.NAKED


async def test_server_closes_mid_send_fails_fast(server: ScriptedServer) -> None:
    rec = Recorder()
    sb, peer = await call_and_join(server, rec)
    sending = asyncio.create_task(sb.send_text("are you there?"))
    await peer.expect("MSG")
    peer.close()
    result = await asyncio.wait_for(sending, 2)  # not the 30 s ACK timeout
    assert result.status is DeliveryStatus.FAILED
    await rec.wait(SwitchboardClosed)
    assert sb.closed
    assert (await sb.send_text("again")).status is DeliveryStatus.FAILED


async def test_malformed_lines_do_not_crash(server: ScriptedServer) -> None:
    rec = Recorder()
    sb, peer = await call_and_join(server, rec)
    for line in ("JOI", "BYE", "IRO 5", "FOO 1 bar", "CAL 99 RINGING", "ACK 4242", "NAK", "600"):
        peer.send(line)
    peer.send_msg(BOB, "Bob", b"no headers at all")
    peer.send_msg(BOB, "Bob", b"")
    peer.send_msg(BOB, "Bob", build_text("still here"))
    got = await rec.wait(MessageReceived)
    assert got.message.text == "still here"
    assert not sb.closed and sb.participants == {BOB: "Bob"}

    # Framing the codec cannot get past ends the switchboard, reported with the reason.
    sending = asyncio.create_task(sb.send_text("pending"))
    await peer.expect("MSG")
    peer.send("<html><body>502 Bad Gateway</body></html>")
    closed = await rec.wait(SwitchboardClosed)
    assert "not an MSNP command" in closed.reason
    assert (await asyncio.wait_for(sending, 2)).status is DeliveryStatus.FAILED


async def test_oversized_payload_closes_with_reason(server: ScriptedServer) -> None:
    rec = Recorder()
    sb, peer = await call_and_join(server, rec)
    peer.send(f"MSG {BOB} Bob {70 * 1024}")
    closed = await rec.wait(SwitchboardClosed)
    assert "limit" in closed.reason and closed.error is not None
    assert sb.closed


# --- Conversation --------------------------------------------------------------------------


async def test_messages_queue_until_joi_and_keep_order(server: ScriptedServer) -> None:
    rec = Recorder()
    conv, opens = conversation(server, rec)
    sends = [asyncio.create_task(conv.send_text(f"message {i}")) for i in range(3)]
    peer = await serve_open(server, join=False)
    await peer.silent(0.2)  # nothing is sent before the invitee joins
    assert not any(s.done() for s in sends)
    peer.send(f"JOI {BOB} Bob")
    msgs = [await peer.expect("MSG") for _ in range(3)]
    assert [text_of(m) for m in msgs] == ["message 0", "message 1", "message 2"]
    for m in reversed(msgs):  # ACKs in any order still resolve each sender
        peer.send(f"ACK {m.trid}")
    results = await asyncio.gather(*sends)
    assert [r.status for r in results] == [DeliveryStatus.ACKED] * 3
    assert opens == [1]
    assert all(e.conversation is conv for e in rec.events)
    await conv.close()
    assert [c.name for c in await peer.until_eof()] == ["OUT"]


async def test_idle_close_then_reopen(server: ScriptedServer) -> None:
    rec = Recorder()
    conv, opens = conversation(server, rec, idle_timeout=0.3)
    sending = asyncio.create_task(conv.send_text("first"))
    peer = await serve_open(server)
    msg = await peer.expect("MSG")
    peer.send(f"ACK {msg.trid}")
    assert (await sending).ok
    assert [c.name for c in await peer.until_eof()] == ["OUT"]
    assert (await rec.wait(SwitchboardClosed)).reason == "idle"
    assert conv.switchboard is None

    sending = asyncio.create_task(conv.send_text("second"))
    peer2 = await serve_open(server)
    msg = await peer2.expect("MSG")
    assert text_of(msg) == "second"
    peer2.send(f"ACK {msg.trid}")
    assert (await sending).ok
    assert opens == [1, 1]
    await conv.close()


async def test_bye_leaves_us_alone_then_next_send_reopens(server: ScriptedServer) -> None:
    rec = Recorder()
    conv, opens = conversation(server, rec)
    sending = asyncio.create_task(conv.send_text("hi"))
    peer = await serve_open(server)
    msg = await peer.expect("MSG")
    peer.send(f"ACK {msg.trid}")
    await sending
    peer.send(f"BYE {BOB}")
    await rec.wait(SwitchboardClosed)
    assert conv.participants == {BOB}  # still who we talk to

    sending = asyncio.create_task(conv.send_text("back?"))
    peer2 = await serve_open(server)
    msg = await peer2.expect("MSG")
    peer2.send(f"ACK {msg.trid}")
    assert (await sending).status is DeliveryStatus.ACKED
    assert opens == [1, 1]
    await conv.close()


async def test_offline_invitee(server: ScriptedServer) -> None:
    rec = Recorder()
    conv, _ = conversation(server, rec)
    sending = asyncio.create_task(conv.send_text("hello?"))
    peer = await server.peer()
    usr = await peer.expect("USR")
    peer.send(f"USR {usr.trid} OK {ME} Alice")
    cal = await peer.expect("CAL")
    peer.send(f"217 {cal.trid}")
    result = await sending
    assert result.status is DeliveryStatus.OFFLINE
    assert BOB in result.reason
    assert [c.name for c in await peer.until_eof()] == ["OUT"]
    await conv.close()


async def test_nobody_joins_is_no_answer(server: ScriptedServer) -> None:
    conv, _ = conversation(server, Recorder(), join_timeout=0.2)
    sending = asyncio.create_task(conv.send_text("hello?"))
    peer = await serve_open(server, join=False)
    assert (await sending).status is DeliveryStatus.NO_ANSWER
    assert [c.name for c in await peer.until_eof()] == ["OUT"]


async def test_cannot_open_switchboard_is_failed(server: ScriptedServer) -> None:
    async def refuse() -> SwitchboardTicket:
        raise MSNPError(913, "XFR", 5)

    conv = Conversation(
        passport=ME, protocol=12, open_switchboard=refuse, invitees=[BOB], on_event=Recorder()
    )
    result = await conv.send_text("hi")
    assert result.status is DeliveryStatus.FAILED and "913" in result.reason

    # A ticket to a port nobody listens on fails too, without hanging.
    await server.stop()
    conv2, _ = conversation(server, Recorder(), reply_timeout=1)
    assert (await conv2.send_text("hi")).status is DeliveryStatus.FAILED


async def test_typing_never_opens_a_switchboard(server: ScriptedServer) -> None:
    conv, opens = conversation(server, Recorder())
    await conv.send_typing()
    await asyncio.sleep(0.05)
    assert opens == [] and server.peers.empty()

    sending = asyncio.create_task(conv.send_text("hi"))
    peer = await serve_open(server)
    msg = await peer.expect("MSG")
    peer.send(f"ACK {msg.trid}")
    await sending
    await conv.send_typing()
    typing = await peer.expect("MSG")
    assert typing.args == ["U"]
    assert typing.payload is not None and b"TypingUser: alice@example.com" in typing.payload
    await conv.close()


async def test_group_conversation_calls_everyone(server: ScriptedServer) -> None:
    rec = Recorder()
    conv, _ = conversation(server, rec, invitees=(BOB, CAROL))
    assert conv.key == frozenset({BOB, CAROL})
    sending = asyncio.create_task(conv.send_nudge())
    peer = await server.peer()
    usr = await peer.expect("USR")
    peer.send(f"USR {usr.trid} OK {ME} Alice")
    cals = {}
    for _ in range(2):
        cal = await peer.expect("CAL")
        cals[cal.args[0]] = cal.trid
    peer.send(f"217 {cals[BOB]}")  # Bob is offline, Carol answers
    peer.send(f"CAL {cals[CAROL]} RINGING 99")
    peer.send(f"JOI {CAROL} Carol")
    msg = await peer.expect("MSG")
    assert msg.payload is not None and b"ID: 1" in msg.payload
    peer.send(f"ACK {msg.trid}")
    assert (await sending).status is DeliveryStatus.ACKED
    await conv.close()


async def test_attach_answered_switchboard_and_third_party_join(server: ScriptedServer) -> None:
    rec = Recorder()
    conv, opens = conversation(server, rec)
    task = asyncio.create_task(
        Switchboard.answer(
            server.ticket(session_id="17342299"), passport=ME, protocol=12, on_event=rec
        )
    )
    peer = await server.peer()
    ans = await peer.expect("ANS")
    peer.send(f"IRO {ans.trid} 1 1 {BOB} Bob")
    peer.send(f"ANS {ans.trid} OK")
    sb = await task
    conv.attach(sb)
    assert conv.switchboard is sb

    peer.send_msg(BOB, "Bob", build_text("hi alice"))
    got = await rec.wait(MessageReceived)
    assert got.conversation is conv and got.switchboard is sb

    peer.send(f"JOI {CAROL} Carol")
    joined = await rec.wait(ParticipantJoined)
    assert joined.conversation is conv
    assert conv.participants == {BOB, CAROL}
    assert conv.key == frozenset({BOB})

    sending = asyncio.create_task(conv.send_text("hi both"))
    msg = await peer.expect("MSG")
    peer.send(f"ACK {msg.trid}")
    assert (await sending).ok
    assert opens == []  # the answered switchboard was used

    peer.send(f"BYE {CAROL}")
    await rec.wait(ParticipantLeft)
    assert conv.participants == {BOB}  # a guest who left is not re-invited
    await conv.close()
    assert (await conv.send_text("late")).status is DeliveryStatus.FAILED


def test_worst_result_order() -> None:
    acked = DeliveryResult(DeliveryStatus.ACKED, "")
    naked = DeliveryResult(DeliveryStatus.NAKED, "")
    assert DeliveryResult.worst([acked, naked, acked]) is naked
    assert DeliveryResult.worst([]).status is DeliveryStatus.FAILED


async def test_invitation_while_opening_takes_over(server: ScriptedServer) -> None:
    """Both sides start the chat at once: the answered switchboard wins, ours is left."""
    rec = Recorder()
    conv, _ = conversation(server, rec)
    sending = asyncio.create_task(conv.send_text("hello"))
    ours = await serve_open(server, join=False)

    answering = asyncio.create_task(
        Switchboard.answer(server.ticket(session_id="77"), passport=ME, protocol=12, on_event=rec)
    )
    theirs = await server.peer()
    ans = await theirs.expect("ANS")
    theirs.send(f"IRO {ans.trid} 1 1 {BOB} Bob")
    theirs.send(f"ANS {ans.trid} OK")
    conv.attach(await answering)

    msg = await theirs.expect("MSG")
    assert text_of(msg) == "hello"
    theirs.send(f"ACK {msg.trid}")
    assert (await sending).status is DeliveryStatus.ACKED
    assert [c.name for c in await ours.until_eof()] == ["OUT"]
    await conv.close()
