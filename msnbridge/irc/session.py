"""State of one TCP connection of an IRCConnection, from connect to loss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from .capabilities import CapNegotiator
from .refusal import Refusal
from .transport import BridgeAioConnection


class Session:
    """What one connection attempt knows; a new one starts from scratch."""

    def __init__(self, conn: BridgeAioConnection, caps: CapNegotiator):
        self.conn = conn
        self.caps = caps
        loop = asyncio.get_running_loop()
        self.welcomed = False
        self.registered: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.refusal: Refusal | None = None
        self.reason = ""
        self.last_rx = time.monotonic()
        self.tasks: list[asyncio.Task[None]] = []
        self.nick_alternatives: Iterator[str] | None = None
        self.motd_timer: asyncio.TimerHandle | None = None

    def end(self, reason: str, refusal: Refusal | None = None) -> None:
        if refusal and not self.refusal:
            self.refusal = refusal
        if not self.reason:
            self.reason = reason
        self.conn.disconnect()
        if not self.ended.done():
            self.ended.set_result(None)
