"""Both ends of the link in one process, for tests: what a Redis link does, minus Redis.

Envelopes and replies go through a JSON round trip (so whatever is not JSON-safe fails
here as it would on the wire), events reach the core's handler one at a time in the
order they were published, and an event whose handler raised stays unacknowledged until
`MemoryLink.redeliver` (as a killed core reads its pending entries again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any

from .link import CommandFailed, CommandHandler, Envelope, EventHandler
from .transfers import MemoryTransfers

__all__ = ["MemoryDoneStore", "MemoryLink"]


def _wire(envelope: Envelope) -> Envelope:
    data = json.loads(json.dumps(envelope.data))
    return Envelope(envelope.id, envelope.owner, envelope.kind, data)


class MemoryLink:
    """``link.core`` is a CoreLink, ``link.pool`` a PoolLink; they talk to each other."""

    def __init__(self) -> None:
        self.core = _CoreEnd(self)
        self.pool = _PoolEnd(self)
        self.commands: list[Envelope] = []  # every command sent, in order
        self.published: list[Envelope] = []  # every event published, in order
        self.unacked: list[Envelope] = []  # events whose handler raised
        self._event_handler: EventHandler | None = None
        self._command_handler: CommandHandler | None = None
        self._queue: deque[Envelope] = deque()
        self._delivering: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._has_pool = asyncio.Event()
        self.paused = False  # while True, events wait (a core that is down)
        self.transfers = MemoryTransfers()  # both ends share it, as they share Redis
        self.gone: set[str] = set()  # "core" or pool names the ends take for dead (tests)

    # --- events, pool → core ---

    async def _publish(self, envelope: Envelope) -> None:
        envelope = _wire(envelope)
        self.published.append(envelope)
        self._queue.append(envelope)
        self._kick()

    def _kick(self) -> None:
        if self.paused or self._event_handler is None or not self._queue:
            return
        self._idle.clear()
        if self._delivering is None or self._delivering.done():
            self._delivering = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        try:
            while self._queue and not self.paused and self._event_handler is not None:
                envelope = self._queue.popleft()
                try:
                    await self._event_handler(envelope)
                except Exception:
                    self.unacked.append(envelope)
        finally:
            if not self._queue or self.paused:
                self._idle.set()

    def resume(self) -> None:
        self.paused = False
        self._kick()

    def redeliver(self, envelopes: list[Envelope] | None = None) -> None:
        """Deliver again the unacknowledged events (or the given ones), first."""
        again = list(self.unacked if envelopes is None else envelopes)
        if envelopes is None:
            self.unacked.clear()
        self._queue.extendleft(reversed(again))
        self._kick()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every event published so far has reached the core's handler."""
        async with asyncio.timeout(timeout):
            while self._queue and not self.paused:
                self._kick()
                await self._idle.wait()
                await asyncio.sleep(0)

    # --- commands, core → pool ---

    async def _command(self, envelope: Envelope, timeout: float) -> dict[str, Any]:
        self.commands.append(envelope)
        async with asyncio.timeout(timeout):
            await self._has_pool.wait()  # no pool yet: the command waits, as on a stream
            assert self._command_handler is not None
            try:
                reply = await self._command_handler(_wire(envelope))
            except CommandFailed as e:
                raise CommandFailed(str(e)) from None  # only the words travel
        return json.loads(json.dumps(reply))

    async def close(self) -> None:
        if self._delivering is not None:
            self._delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivering


class _CoreEnd:
    def __init__(self, link: MemoryLink) -> None:
        self._link = link

    async def command(self, envelope: Envelope, *, timeout: float) -> dict[str, Any]:
        return await self._link._command(envelope, timeout)

    def on_event(self, handler: EventHandler) -> None:
        self._link._event_handler = handler
        self._link._kick()

    @property
    def transfers(self) -> MemoryTransfers:
        return self._link.transfers

    async def pool_holds(self, owner: str, pool: str) -> bool:
        return pool not in self._link.gone


class _PoolEnd:
    def __init__(self, link: MemoryLink) -> None:
        self._link = link

    async def publish(self, envelope: Envelope) -> None:
        await self._link._publish(envelope)

    def on_command(self, handler: CommandHandler) -> None:
        self._link._command_handler = handler
        self._link._has_pool.set()

    @property
    def transfers(self) -> MemoryTransfers:
        return self._link.transfers

    async def core_up(self) -> bool:
        return "core" not in self._link.gone


class MemoryDoneStore:
    """The executor's DoneStore in a dict (Redis keeps ``{p}:done:{id}`` instead)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any] | None] = {}

    async def claim(self, command_id: str) -> bool:
        if command_id in self.outcomes:
            return False
        self.outcomes[command_id] = None
        return True

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        return self.outcomes.get(command_id)

    async def finish(self, command_id: str, outcome: dict[str, Any]) -> None:
        self.outcomes[command_id] = json.loads(json.dumps(outcome))

    async def release(self, command_id: str) -> None:
        if self.outcomes.get(command_id) is None:
            self.outcomes.pop(command_id, None)
