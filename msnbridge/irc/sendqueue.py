"""Outgoing lines of one IRC connection: priorities, a byte-aware token bucket, a bound.

Servers disconnect clients that send too fast ("Excess Flood"), so every line waits for
tokens. A line costs one token plus one per ``bytes_per_token`` bytes it carries, so long
lines pace slower than short ones, as servers' receive queues count bytes.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


class Priority(enum.IntEnum):
    """Lower goes first. Within one priority lines keep their order."""

    PONG = 0  # a late PONG gets the connection dropped
    REGISTRATION = 1  # CAP, AUTHENTICATE, PASS, NICK, USER
    CONTROL = 2  # JOIN, PART, MODE, INVITE, KICK, TOPIC, QUIT
    MESSAGE = 3  # PRIVMSG, NOTICE, TAGMSG
    CTCP_REPLY = 4  # answers to VERSION/PING/TIME, least urgent


@dataclass(frozen=True, slots=True)
class QueuedLine:
    line: str
    priority: Priority
    target: str | None  # lower-cased channel/nick the line is for, to purge on PART


OverflowCallback = Callable[[QueuedLine], None]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are available (0 when they are now)."""
        self._refill()
        # A cost above the burst could never be met: such a line waits for a full bucket.
        need = min(cost, self.burst)
        return 0.0 if self._tokens >= need else (need - self._tokens) / self.rate

    def take(self, cost: float) -> None:
        self._refill()
        self._tokens -= min(cost, self.burst)


class SendQueue:
    """A bounded priority queue with pacing. ``put`` never blocks: when full, the line is
    refused and handed to ``on_overflow`` so the caller can report it.

    ``open_priority`` is the lowest-urgency priority that may be sent now: during
    registration only PONG and registration lines go out; queued messages wait (across
    reconnects) until the connection has rejoined its channels.
    """

    def __init__(
        self,
        *,
        rate: float = 2.0,
        burst: float = 5.0,
        bytes_per_token: int = 512,
        maxsize: int = 1000,
        on_overflow: OverflowCallback | None = None,
    ):
        self.bucket = TokenBucket(rate, burst)
        self.bytes_per_token = bytes_per_token
        self.maxsize = maxsize
        self.on_overflow = on_overflow
        self._queues: dict[Priority, collections.deque[QueuedLine]] = {
            p: collections.deque() for p in Priority
        }
        self._changed = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.open_priority = Priority.REGISTRATION

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _bounded_len(self) -> int:
        return sum(len(self._queues[p]) for p in Priority if p >= Priority.MESSAGE)

    def cost(self, line: str) -> float:
        return 1.0 + len(line.encode("utf-8")) / self.bytes_per_token

    def put(self, line: str, priority: Priority, target: str | None = None) -> bool:
        """Queue ``line``; False (and ``on_overflow``) when the queue is full. The bound
        applies to messages and CTCP replies only: PONG, registration and control lines
        (JOIN on reconnect, NICK) are few and the connection depends on them."""
        item = QueuedLine(line, priority, target.lower() if target else None)
        if priority >= Priority.MESSAGE and self._bounded_len() >= self.maxsize:
            if self.on_overflow is not None:
                self.on_overflow(item)
            return False
        self._queues[priority].append(item)
        self._empty.clear()
        self._changed.set()
        return True

    def requeue(self, item: QueuedLine) -> None:
        """Put back a line taken by :meth:`get` that could not be written."""
        self._queues[item.priority].appendleft(item)
        self._empty.clear()
        self._changed.set()

    def set_open(self, priority: Priority) -> None:
        self.open_priority = priority
        self._changed.set()

    def purge(self, target: str) -> list[QueuedLine]:
        """Remove and return the lines queued for ``target`` (on PART)."""
        target = target.lower()
        return self._remove(lambda item: item.target == target, Priority)

    def purge_priorities(self, priorities: Iterable[Priority]) -> list[QueuedLine]:
        """Remove and return lines that make no sense on a new connection (PONG, CAP…)."""
        return self._remove(lambda _item: True, priorities)

    def _remove(
        self, match: Callable[[QueuedLine], bool], priorities: Iterable[Priority]
    ) -> list[QueuedLine]:
        removed: list[QueuedLine] = []
        for priority in priorities:
            queue = self._queues[priority]
            kept = [item for item in queue if not match(item)]
            removed.extend(item for item in queue if match(item))
            queue.clear()
            queue.extend(kept)
        if not len(self):
            self._empty.set()
        return removed

    def _peek(self) -> QueuedLine | None:
        for priority in Priority:
            if priority > self.open_priority:
                return None
            if self._queues[priority]:
                return self._queues[priority][0]
        return None

    async def get(self) -> QueuedLine:
        """Wait for the next sendable line and for the tokens to send it."""
        while True:
            item = self._peek()
            if item is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            wait = self.bucket.delay(self.cost(item.line))
            if wait > 0:
                # A more urgent line (PONG) may arrive meanwhile: re-check after waking.
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), wait)
                except TimeoutError:
                    pass
                continue
            self._queues[item.priority].popleft()
            self.bucket.take(self.cost(item.line))
            if not len(self):
                self._empty.set()
            return item

    async def wait_empty(self) -> None:
        await self._empty.wait()
