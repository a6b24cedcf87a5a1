"""Units of the flood defences: the rate-limited log helper and the per-owner event queue
(coalescing, limits). The end-to-end proof is tests/test_flood_isolation.py."""

from __future__ import annotations

import logging

import pytest

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
