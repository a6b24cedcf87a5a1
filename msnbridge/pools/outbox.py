"""A pool's events on their way to the core: published by one task, in the order they
happened, kept (in order) while the link refuses them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from .link import Envelope, PoolLink

log = logging.getLogger("msnbridge.pools.outbox")

PUBLISH_RETRY = 1.0  # seconds between attempts while the link refuses events


class Outbox:
    def __init__(self, link: PoolLink, name: str) -> None:
        self.link = link
        self.name = name  # of the publishing task, and in log lines
        self._queue: deque[Envelope] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._publisher: asyncio.Task[None] | None = None

    def put(self, envelope: Envelope) -> None:
        self._queue.append(envelope)
        self._idle.clear()
        self._wake.set()
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(
                self._publish_all(), name=self.name
            )

    async def _publish_all(self) -> None:
        while self._queue:
            envelope = self._queue[0]
            try:
                await self.link.publish(envelope)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the link is down: keep the event, keep the order
                log.warning("%s: publishing an event failed (%s); retrying", self.name, e)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), PUBLISH_RETRY)
                continue
            self._queue.popleft()
        self._idle.set()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event queued so far is published."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def close(self, timeout: float) -> None:
        """Publish what is queued (up to ``timeout``), then stop publishing."""
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout)
        if self._publisher is not None and not self._publisher.done():
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
