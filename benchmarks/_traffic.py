"""Message traffic bookkeeping shared by the bridge benchmarks: every text starts with a
unique id; the receiving end reports (text, arrival time) and the tracker counts latency,
losses and duplicates end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from _stack import Client, User, median, percentile


class Tracker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.failed_sends = 0
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._progress = asyncio.Event()

    def text(self, mid: str, filler: str = "the quick brown fox jumps over the lazy dog") -> str:
        return f"{mid} {filler}"

    def mark_sent(self, mid: str) -> None:
        self.sent[mid] = time.perf_counter()

    def receive(self, text: str, at: float) -> None:
        mid = text.split(" ", 1)[0]
        started = self.sent.get(mid)
        if started is None:
            return  # not ours (warm-up, another tracker's)
        if mid in self.latency:
            self.duplicates += 1
            return
        self.latency[mid] = at - started
        self.arrived[mid] = at
        self._progress.set()
        waiter = self._waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, mid: str, timeout: float) -> bool:
        if mid in self.latency:
            return True
        waiter = self._waiters[mid] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            self._waiters.pop(mid, None)
            return False

    async def settle(self, timeout: float) -> None:
        """Wait until every sent id arrived, or `timeout` passed."""
        deadline = time.perf_counter() + timeout
        while len(self.latency) < len(self.sent):
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), left)
            except TimeoutError:
                return

    @property
    def lost(self) -> int:
        return len(self.sent) - len(self.latency)

    def median_ms(self) -> float:
        return median(list(self.latency.values())) * 1000

    def p99_ms(self) -> float:
        return percentile(list(self.latency.values()), 99) * 1000


Send = Callable[[str], Awaitable[None]]


async def sequential(tracker: Tracker, send: Send, n: int, prefix: str, timeout: float) -> None:
    """n messages, each sent when the previous one arrived."""
    for i in range(n):
        mid = f"{prefix}{i}"
        tracker.mark_sent(mid)
        await send(tracker.text(mid))
        await tracker.wait(mid, timeout)


async def burst(
    tracker: Tracker, send: Send, n: int, prefix: str, in_flight: int, timeout: float
) -> float:
    """n messages sent as fast as the sender goes (`in_flight` at once); returns messages
    per second from the first send to the last arrival."""
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        mid = f"{prefix}{i}"
        async with sem:
            tracker.mark_sent(mid)
            try:
                await send(tracker.text(mid))
            except Exception:
                tracker.failed_sends += 1

    t0 = time.perf_counter()
    ids = {f"{prefix}{i}" for i in range(n)}
    await asyncio.gather(*(one(i) for i in range(n)))
    await tracker.settle(timeout)
    arrivals = [at for mid, at in tracker.arrived.items() if mid in ids]
    return len(arrivals) / (max(arrivals) - t0) if arrivals else 0.0


def msn_sender(client: Client, to: str) -> Send:
    """Sends in one MSN conversation with ``to``; a refused send raises."""
    conv = client.conversation([to])

    async def send(text: str) -> None:
        result = await conv.send_text(text)
        if not result.ok:
            raise RuntimeError(f"MSN send failed: {result}")

    return send


def matrix_sender(user: User, room: str) -> Send:
    async def send(text: str) -> None:
        await user.send(room, text)

    return send
