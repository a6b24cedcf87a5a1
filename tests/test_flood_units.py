"""Units of the flood defences: the rate-limited log helper and the per-owner event queue
(coalescing, limits). The end-to-end proof is tests/test_flood_isolation.py."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from msnbridge.core.msn_events import MsnEventRouter
from msnbridge.core.owner_queue import OwnerQueue
from puppets.contacts import Lists
from puppets.event.contact import ContactAdded, PersonalMessageChanged, PresenceChanged
from puppets.event.conversation import TypingReceived
from puppets.event.session import SessionState, SessionStateChanged
from puppets.logthrottle import ThrottledLog


def test_throttled_log_logs_once_per_interval_and_says_how_many_were_left_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr("puppets.logthrottle.time.monotonic", lambda: now[0])
    throttle = ThrottledLog(logging.getLogger("test.throttle"), interval=60)
    caplog.set_level(logging.INFO, logger="test.throttle")
    assert throttle.log("cap", "over the cap: %s", "a")
    for nick in "bcdef":
        now[0] += 1
        assert not throttle.log("cap", "over the cap: %s", nick)
    assert throttle.log("other", "another condition")  # keys are independent
    assert throttle.suppressed("cap") == 5
    now[0] += 60
    assert throttle.log("cap", "over the cap: %s", "g")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "over the cap: a"
    assert messages[1] == "another condition"
    assert messages[2].startswith("over the cap: g (5 more like this")
    assert len(messages) == 3


def test_owner_queue_coalesces_presence_per_contact_and_keeps_order() -> None:
    queue = OwnerQueue("@o:x")
    for i in range(1000):
        queue.put(PresenceChanged("bob@x", "NLN" if i % 2 else "AWY", f"Bob {i}"), float(i))
    queue.put(ContactAdded("carol@x", Lists.FL, "Carol"), 1000.0)
    queue.put(PersonalMessageChanged("bob@x", "old"), 1001.0)
    queue.put(PresenceChanged("BOB@x", "BSY", "Bob last"), 1002.0)
    queue.put(PersonalMessageChanged("bob@x", "new"), 1003.0)
    got = []
    while (item := queue.get()) is not None:
        got.append(item)
    assert len(got) == 3
    (presence, at), (added, _), (psm, _) = got
    assert isinstance(presence, PresenceChanged) and presence.nick == "Bob last"
    assert at == 1002.0
    assert isinstance(added, ContactAdded)
    assert isinstance(psm, PersonalMessageChanged) and psm.psm == "new"
    assert queue.coalesced == 1000 - 1 + 1 + 1


def test_owner_queue_drops_typing_over_its_limit_but_never_session_changes() -> None:
    queue = OwnerQueue("@o:x", limit=10)
    for _ in range(50):
        queue.put(TypingReceived("bob@x", switchboard=None), 0.0)  # type: ignore[arg-type]
    queue.put(SessionStateChanged(SessionState.ONLINE), 0.0)
    assert len(queue) == 11
    assert queue.dropped == 40


class _HeldRouter(MsnEventRouter):
    """The event router with its routing replaced by gates (this piece alone)."""

    def __init__(self, workers_per_owner: int) -> None:
        router = SimpleNamespace(metrics=None)
        super().__init__(router, workers_per_owner=workers_per_owner)  # type: ignore[arg-type]
        self.gates: dict[str, asyncio.Event] = {}
        self.handled: list[tuple[str, str]] = []

    async def handle(self, owner: str, event: object, started: float) -> None:
        people = ",".join(sorted(event.conversation.key))  # type: ignore[attr-defined]
        await self.gates.setdefault(people, asyncio.Event()).wait()
        self.handled.append((people, event.sender))  # type: ignore[attr-defined]


def _typing(people: str, n: int) -> TypingReceived:
    conv = SimpleNamespace(key=frozenset([people]))
    return TypingReceived(switchboard=None, conversation=conv, sender=str(n))  # type: ignore[arg-type]


async def test_event_lanes_run_side_by_side_in_a_bounded_pool_and_keep_their_order() -> None:
    events = _HeldRouter(workers_per_owner=2)
    for n in range(3):
        for people in ("a", "b", "c"):
            events.on_puppet_event("@o:x", _typing(people, n))
    await asyncio.sleep(0.01)
    assert events.workers == 2 and events.lanes == 3  # c waits for a worker
    events.gates["b"].set()  # a stays held; b is handled, then c by the freed worker
    await asyncio.sleep(0.01)
    assert events.handled == [("b", "0"), ("b", "1"), ("b", "2")]
    events.gates["c"].set()
    await asyncio.sleep(0.01)
    assert events.handled[3:] == [("c", "0"), ("c", "1"), ("c", "2")]
    events.gates["a"].set()
    await events.drain()
    assert events.handled[6:] == [("a", "0"), ("a", "1"), ("a", "2")]
    assert events.workers == 0 and events.lanes == 0
