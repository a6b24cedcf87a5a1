"""Reconnection pacing: per-connection exponential backoff, and one scheduler shared by
all connections so a netsplit does not make hundreds of them reconnect at the same instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable


class Backoff:
    """Exponential backoff with jitter.

    Delays grow ``initial``·``factor``ⁿ up to ``maximum``; each is drawn uniformly from
    [delay·(1−jitter), delay] so connections that dropped together spread out. A
    connection that stayed up ``stable_after`` seconds starts again from ``initial``.
    """

    def __init__(
        self,
        initial: float = 5.0,
        maximum: float = 1800.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.5,
        stable_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ):
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.stable_after = stable_after
        self.failures = 0
        self._clock = clock
        self._rng = rng or random.Random()
        self._up_since: float | None = None

    def connected(self) -> None:
        """The connection registered: start timing its stability."""
        self._up_since = self._clock()

    def disconnected(self) -> None:
        """The connection ended; a long stable session forgets earlier failures."""
        if self._up_since is not None and self._clock() - self._up_since >= self.stable_after:
            self.failures = 0
        self._up_since = None

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        base = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.failures = 0
        self._up_since = None


class ReconnectScheduler:
    """Admits at most ``concurrency`` connection attempts (connect + registration) at once,
    and starts them at least ``spacing`` seconds apart. One per bridge, shared by all
    IRC connections."""

    def __init__(self, concurrency: int = 3, spacing: float = 0.0):
        self._slots = asyncio.Semaphore(concurrency)
        self._spacing = spacing
        self._last_start = float("-inf")
        self._start_lock = asyncio.Lock()
        self.active = 0
        self.peak = 0  # most attempts seen at once (metrics, tests)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            async with self._start_lock:
                loop = asyncio.get_running_loop()
                wait = self._last_start + self._spacing - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_start = loop.time()
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                yield
            finally:
                self.active -= 1
