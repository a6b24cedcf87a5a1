"""The catch-up of each IRC channel: what MSN said while none of the channel's readers was
in it, kept in the order the bridge received it and in the database (``irc_backlog``), so
it survives a restart. The bot replays it in that order when a reader joins (one
connection, so the order holds across speakers); the side renders the lines.

At most ``limit`` lines are kept per channel; older ones are dropped (``on_dropped``).
Database writes run one after another in the order they were asked for, off the caller's
path (holding a line is synchronous, so two lines can never swap places).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from mautrix.util.async_db import Database

from ..db import irc_backlog as backlog_db
from ..db.irc_backlog import HeldLine

log = logging.getLogger(__name__)

LIMIT = 200  # lines kept per channel
CLOSE_TIMEOUT = 5.0  # seconds to finish pending writes at shutdown

Job = Callable[[], Awaitable[None]]


class CatchUp:
    def __init__(
        self,
        db: Database,
        limit: int = LIMIT,
        on_dropped: Callable[[HeldLine], None] | None = None,
    ) -> None:
        self.db = db
        self.limit = limit
        self.on_dropped = on_dropped
        self._lines: dict[str, list[HeldLine]] = {}  # lower channel name → held, in order
        self._seq = 0
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """What was held before a restart; starts the writer."""
        self._lines = await backlog_db.get_all(self.db)
        self._seq = await backlog_db.max_seq(self.db)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="irc-catchup-writer")

    async def close(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._jobs.join(), CLOSE_TIMEOUT)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    def count(self, channel: str) -> int:
        return len(self._lines.get(channel.lower(), ()))

    def hold(self, channel: str, kind: str, sender: str, text: str) -> None:
        key = channel.lower()
        self._seq += 1
        line = HeldLine(key, self._seq, kind, sender, text, int(time.time()))
        lines = self._lines.setdefault(key, [])
        lines.append(line)
        db = self.db
        self._jobs.put_nowait(lambda: backlog_db.add(db, line))
        if len(lines) > self.limit:
            dropped = lines[: -self.limit]
            del lines[: -self.limit]
            first = lines[0].seq
            self._jobs.put_nowait(lambda: backlog_db.remove_before(db, key, first))
            for old in dropped:
                if self.on_dropped is not None:
                    self.on_dropped(old)

    def take(self, channel: str) -> list[HeldLine]:
        """Everything held for the channel, oldest first; it is no longer held."""
        key = channel.lower()
        lines = self._lines.pop(key, [])
        if lines:
            last, db = lines[-1].seq, self.db
            self._jobs.put_nowait(lambda: backlog_db.remove_through(db, key, last))
        return lines

    async def _write(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await job()
            except Exception:
                log.exception("Keeping the IRC catch-up in the database failed")
            finally:
                self._jobs.task_done()
