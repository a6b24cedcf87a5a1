"""Units of the IRC connection layer: send queue, token bucket, backoff, scheduler,
CAP/SASL negotiation and refusal classification (no server needed)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random

import pytest

from msnbridge.irc import Backoff, Priority, ReconnectScheduler, RefusalKind, SendQueue, classify
from msnbridge.irc.capabilities import CapNegotiator
from msnbridge.irc.sendqueue import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_counts_bytes() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3.0, clock=clock)
    assert bucket.delay(1.0) == 0
    bucket.take(1.0)
    bucket.take(1.0)
    bucket.take(1.0)
    assert bucket.delay(1.0) == pytest.approx(0.5)
    clock.now = 0.5
    assert bucket.delay(1.0) == 0
    # A cost above the burst waits for a full bucket instead of forever.
    assert bucket.delay(10.0) == pytest.approx(1.0)


def test_line_cost_grows_with_bytes() -> None:
    queue = SendQueue(bytes_per_token=512)
    assert queue.cost("PONG :x") < 1.1
    assert queue.cost("x" * 510) == pytest.approx(1 + 510 / 512)


async def test_priorities_and_order_within_priority() -> None:
    queue = SendQueue(rate=1000, burst=100)
    queue.set_open(Priority.CTCP_REPLY)
    queue.put("NOTICE a :\x01VERSION x\x01", Priority.CTCP_REPLY)
    queue.put("PRIVMSG #a :1", Priority.MESSAGE, "#a")
    queue.put("PRIVMSG #a :2", Priority.MESSAGE, "#a")
    queue.put("JOIN #b", Priority.CONTROL)
    queue.put("PONG :x", Priority.PONG)
    got = [(await queue.get()).line for _ in range(5)]
    assert got == [
        "PONG :x",
        "JOIN #b",
        "PRIVMSG #a :1",
        "PRIVMSG #a :2",
        "NOTICE a :\x01VERSION x\x01",
    ]


async def test_gate_holds_messages_until_opened() -> None:
    queue = SendQueue(rate=1000, burst=100)
    queue.put("PRIVMSG #a :held", Priority.MESSAGE)
    queue.put("NICK me", Priority.REGISTRATION)
    assert (await queue.get()).line == "NICK me"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.05)
    queue.set_open(Priority.MESSAGE)
    assert (await asyncio.wait_for(queue.get(), 1)).line == "PRIVMSG #a :held"


async def test_pacing_follows_rate() -> None:
    queue = SendQueue(rate=50, burst=2)
    queue.set_open(Priority.CTCP_REPLY)
    for i in range(12):
        queue.put(f"PRIVMSG #a :{i}", Priority.MESSAGE)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(12):
        await queue.get()
    # 2 from the burst, 10 more at ~1.03 tokens each at 50 tokens/s.
    assert loop.time() - start >= 10 / 50


def test_overflow_reported_and_control_lines_kept() -> None:
    refused = []
    queue = SendQueue(maxsize=2, on_overflow=refused.append)
    assert queue.put("PRIVMSG a :1", Priority.MESSAGE)
    assert queue.put("PRIVMSG a :2", Priority.MESSAGE)
    assert not queue.put("PRIVMSG a :3", Priority.MESSAGE)
    assert queue.put("JOIN #x", Priority.CONTROL)
    assert queue.put("PONG :y", Priority.PONG)
    assert [item.line for item in refused] == ["PRIVMSG a :3"]
    assert len(queue) == 4


def test_purge_by_target_and_priority() -> None:
    queue = SendQueue()
    queue.put("PRIVMSG #A :1", Priority.MESSAGE, "#A")
    queue.put("PRIVMSG #b :1", Priority.MESSAGE, "#b")
    queue.put("PRIVMSG #a :2", Priority.MESSAGE, "#a")
    queue.put("CAP END", Priority.REGISTRATION)
    assert [i.line for i in queue.purge("#a")] == ["PRIVMSG #A :1", "PRIVMSG #a :2"]
    assert [i.line for i in queue.purge_priorities([Priority.REGISTRATION])] == ["CAP END"]
    assert len(queue) == 1


def test_backoff_grows_caps_and_resets_after_stable_session() -> None:
    clock = FakeClock()
    backoff = Backoff(5, 60, jitter=0.5, stable_after=300, clock=clock, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    for n, delay in enumerate(delays):
        nominal = min(60, 5 * 2**n)
        assert nominal / 2 <= delay <= nominal
    assert max(delays) <= 60
    backoff.connected()
    clock.now = 100
    backoff.disconnected()  # short session: failures kept
    assert backoff.next_delay() >= 30
    backoff.connected()
    clock.now = 1000
    backoff.disconnected()  # stable for 900 s: start again
    assert backoff.next_delay() <= 5


def test_backoff_jitter_spreads_connections() -> None:
    delays = {
        round(Backoff(10, 100, rng=random.Random(seed)).next_delay(), 3) for seed in range(20)
    }
    assert len(delays) > 10


async def test_scheduler_caps_concurrent_attempts() -> None:
    scheduler = ReconnectScheduler(concurrency=2)
    peak = 0

    async def attempt() -> None:
        nonlocal peak
        async with scheduler.slot():
            peak = max(peak, scheduler.active)
            await asyncio.sleep(0.02)

    await asyncio.gather(*(attempt() for _ in range(10)))
    assert peak == 2


async def test_scheduler_spaces_starts() -> None:
    scheduler = ReconnectScheduler(concurrency=10, spacing=0.03)
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def attempt() -> None:
        async with scheduler.slot():
            starts.append(loop.time())

    await asyncio.gather(*(attempt() for _ in range(5)))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.029 for gap in gaps)


def test_cap_negotiation_multiline_ls_and_nak_fallback() -> None:
    caps = CapNegotiator(frozenset({"message-tags", "server-time", "echo-message"}))
    assert caps.start() == ["CAP LS 302"]
    assert caps.on_cap("LS", ["*", "message-tags multi-prefix"]) == []
    sent = caps.on_cap("LS", ["server-time=x sasl=PLAIN,EXTERNAL"])
    assert sent == ["CAP REQ :message-tags server-time"]
    # All-or-nothing NAK: each cap is retried alone.
    sent = caps.on_cap("NAK", ["message-tags server-time"])
    assert sent == ["CAP REQ :message-tags", "CAP REQ :server-time"]
    assert caps.on_cap("ACK", ["message-tags"]) == []
    assert caps.on_cap("NAK", ["server-time"]) == ["CAP END"]
    assert caps.enabled == {"message-tags"} and caps.done


def test_cap_negotiation_sasl_plain() -> None:
    caps = CapNegotiator(frozenset({"server-time"}), ("alice", "pässword"))
    assert caps.on_cap("LS", ["sasl=PLAIN server-time"]) == ["CAP REQ :sasl server-time"]
    assert caps.on_cap("ACK", ["sasl server-time"]) == ["AUTHENTICATE PLAIN"]
    (line,) = caps.on_authenticate("+")
    payload = base64.b64decode(line.split(" ", 1)[1])
    assert payload == "alice\0alice\0pässword".encode()
    assert caps.on_numeric("900", ["alice", "logged in"]) == []
    assert caps.on_numeric("903", ["SASL successful"]) == ["CAP END"]
    assert caps.sasl_refusal is None


def test_sasl_failure_and_long_payload() -> None:
    caps = CapNegotiator(frozenset(), ("bob", "x" * 600))
    assert caps.on_cap("LS", ["sasl"]) == ["CAP REQ :sasl"]
    caps.on_cap("ACK", ["sasl"])
    pieces = caps.on_authenticate("+")
    assert len(pieces) == 3 and all(len(p) <= len("AUTHENTICATE ") + 400 for p in pieces)
    blob = "".join(p.split(" ", 1)[1] for p in pieces)
    assert base64.b64decode(blob).endswith(b"x" * 600)
    assert caps.on_numeric("904", ["SASL authentication failed"]) == ["CAP END"]
    assert caps.sasl_refusal is not None and caps.sasl_refusal.kind == RefusalKind.BAD_PASSWORD


def test_sasl_not_requested_without_plain_or_credentials() -> None:
    caps = CapNegotiator(frozenset({"batch"}), ("a", "b"))
    assert caps.on_cap("LS", ["sasl=EXTERNAL batch"]) == ["CAP REQ :batch"]
    caps = CapNegotiator(frozenset({"batch"}))
    assert caps.on_cap("LS", ["sasl batch"]) == ["CAP REQ :batch"]


def test_server_without_cap() -> None:
    caps = CapNegotiator(frozenset({"batch"}))
    assert caps.on_numeric("421", ["CAP", "Unknown command"]) == []
    assert caps.done
    quiet = CapNegotiator(frozenset({"batch"}))
    quiet.on_welcome()  # registered us before answering CAP
    assert quiet.done
    # A late LS may still enable caps, but no CAP END after registration.
    assert quiet.on_cap("LS", ["batch"]) == ["CAP REQ :batch"]
    assert quiet.on_cap("ACK", ["batch"]) == []
    assert quiet.enabled == {"batch"}


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "Closing Link: 1.2.3.4 (Too many host connections (global))",
            RefusalKind.TOO_MANY_CONNECTIONS,
        ),
        (
            "Connection refused, too many connections from your IP address",
            RefusalKind.TOO_MANY_CONNECTIONS,
        ),
        (
            "Closing link: (u@h) [No more connections allowed from your host via this "
            "connect class (local)]",
            RefusalKind.TOO_MANY_CONNECTIONS,
        ),
        ("Your host is trying to (re)connect too fast -- throttled", RefusalKind.THROTTLED),
        ("Closing link: (u@1.2.3.4) [Throttled: Reconnecting too fast]", RefusalKind.THROTTLED),
        ("Closing Link: x (K-Lined)", RefusalKind.BANNED),
        ("Closing Link: x (G-lined: spam)", RefusalKind.BANNED),
        ("You are banned from this server- abuse", RefusalKind.BANNED),
        ("Access denied: Bad password?", RefusalKind.BAD_PASSWORD),
        ("Closing Link: x (Ping timeout: 240 seconds)", RefusalKind.OTHER),
    ],
)
def test_refusal_classification(message: str, kind: RefusalKind) -> None:
    assert classify(message).kind == kind


def test_every_handled_event_has_a_handler() -> None:
    from msnbridge.irc.connection import IRCConnection
    from msnbridge.irc.incoming import HANDLED

    assert all(callable(getattr(IRCConnection, f"_on_{name}", None)) for name in HANDLED)
