"""A queue of puppet events (one lane: an owner's own events, or one conversation's), bounded.

Presence and personal-message changes are coalesced per contact: the sides read the
contact's current state when they handle one, so a contact that changes a thousand times
while the owner's worker is busy costs one entry, not a thousand. Other events keep their
order; past ``limit`` of them, typing notices (worthless once late) are dropped, counted
and logged once per burst. Messages, session and list changes are never dropped.
"""

from __future__ import annotations

import logging
from collections import deque

from puppets.event import contact as contact_ev
from puppets.event.conversation import TypingReceived
from puppets.logthrottle import ThrottledLog

log = logging.getLogger("msnbridge.router.msn")
_dropped_log = ThrottledLog(log, level=logging.WARNING)

MAX_EVENTS = 10_000  # queued events (coalesced ones not counted) before dropping begins
_COALESCED = (contact_ev.PresenceChanged, contact_ev.PersonalMessageChanged)
_DROPPABLE = (TypingReceived,)


# In the queue, a coalesced event's place is its key, (event type, passport): the event is
# the latest one stored under it. (A bare tuple: a login queues one per contact.)
_Key = tuple[type, str]


class OwnerQueue:
    def __init__(self, owner: str, limit: int = MAX_EVENTS) -> None:
        self.owner = owner
        self.limit = limit
        self.dropped = 0
        self.coalesced = 0
        self._items: deque[tuple[object, float] | _Key] = deque()
        self._latest: dict[_Key, tuple[object, float]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: object, started: float) -> None:
        if isinstance(event, _COALESCED):
            passport = event.passport  # puppets' contacts give it lowercased already
            key = (type(event), passport if passport.islower() else passport.lower())
            if key in self._latest:
                self.coalesced += 1
            else:
                self._items.append(key)
            self._latest[key] = (event, started)
            return
        if len(self._items) >= self.limit and isinstance(event, _DROPPABLE):
            self.dropped += 1
            _dropped_log.log(
                self.owner,
                "The MSN event queue of %s is full (%d); dropping %s (%d dropped so far)",
                self.owner,
                len(self._items),
                type(event).__name__,
                self.dropped,
            )
            return
        self._items.append((event, started))

    def get(self) -> tuple[object, float] | None:
        """The next event and when it was read; None when the queue is empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item[0], type):  # a coalesced event's key
            return self._latest.pop(item)  # type: ignore[arg-type]
        return item  # type: ignore[return-value]
