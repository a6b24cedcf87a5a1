"""One client connection: the read loop, writes, and closing with a counted reason."""

from __future__ import annotations

import asyncio
import logging

from .framing import MAX_PAYLOAD, FramingError, Incoming, PayloadTooLarge, read_command
from .hub import Hub

log = logging.getLogger(__name__)


class Violation(Exception):
    """The client did something the server answers by closing the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Link:
    max_payload = MAX_PAYLOAD

    def __init__(self, hub: Hub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.hub = hub
        self.reader = reader
        self.writer = writer
        self.closed = False

    def push(self, data: bytes) -> None:
        # A transport already closing (peer gone, loop not yet told) would log warnings.
        if data and not self.closed and not self.writer.transport.is_closing():
            self.writer.write(data)

    def close(self, reason: str, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.hub.stats.closes[reason] += 1
        log.debug("closing %s: %s", type(self).__name__, reason)
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()  # flushes what was written first

    async def handle(self, cmd: Incoming) -> None:
        raise NotImplementedError

    def on_closed(self) -> None:
        """Called once when the read loop ends, whatever ended it."""

    async def run(self) -> None:
        try:
            while not self.closed:
                try:
                    cmd = await read_command(self.reader, self.max_payload)
                except PayloadTooLarge:
                    self.close("payload_too_large")
                    break
                except FramingError:
                    self.close("malformed")
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.close("peer_closed")
                    break
                if self.closed:
                    break
                try:
                    await self.handle(cmd)
                except Violation as exc:
                    self.close(exc.reason)
                    break
                if self.writer.transport.get_write_buffer_size() > 256 * 1024:
                    try:
                        await self.writer.drain()
                    except ConnectionError:
                        self.close("peer_closed")
        except Exception:  # a server bug: count it, drop the link, keep serving others
            log.exception("test server handler failed")
            self.close("server_error", abort=True)
        finally:
            self.closed = True
            self.on_closed()
