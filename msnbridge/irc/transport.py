"""irc.client_aio's AioConnection, adapted: connect without registering (we negotiate
CAP and SASL first), decode leniently, and hand every parsed event to our owner instead of
the reactor's handler table (which would answer PINGs behind our send queue's back).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from irc.client import Event
from irc.client_aio import AioConnection, AioReactor, IrcProtocol
from jaraco.stream.buffer import LenientDecodingLineBuffer

log = logging.getLogger(__name__)

# A line is at most 512 bytes plus 8191 bytes of tags; more without a newline is garbage.
MAX_PENDING_BYTES = 16384


class _Protocol(IrcProtocol):
    connection: BridgeAioConnection

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.connected = False
        self.connection.on_lost(exc)


class BridgeAioConnection(AioConnection):
    buffer_class = LenientDecodingLineBuffer
    protocol_class = _Protocol

    def __init__(
        self,
        reactor: AioReactor,
        on_event: Callable[[Event], None],
        on_line: Callable[[str], None],
        on_lost: Callable[[Exception | None], None],
    ):
        super().__init__(reactor)
        self.on_event = on_event
        self.on_line = on_line
        self.on_lost = on_lost
        self.connected = False
        self.transport: asyncio.Transport | None = None

    async def open(
        self,
        host: str,
        port: int,
        nickname: str,
        *,
        ssl_context: ssl.SSLContext | None,
        local_addr: tuple[str, int] | None,
        timeout: float,
    ) -> None:
        """Open the TCP (or TLS) link. Unlike ``AioConnection.connect`` this sends nothing."""
        self.buffer = self.buffer_class()
        self.handlers = {}
        self.real_server_name = ""
        self.real_nickname = nickname
        self.server, self.port, self.server_address = host, port, (host, port)
        loop = asyncio.get_running_loop()
        protocol = self.protocol_class(self, loop)
        transport, _ = await asyncio.wait_for(
            loop.create_connection(
                lambda: protocol,
                host,
                port,
                ssl=ssl_context,
                server_hostname=host if ssl_context else None,
                local_addr=local_addr,
            ),
            timeout,
        )
        self.transport = transport
        self.protocol = protocol
        self.connected = True

    def process_data(self, new_data: bytes) -> None:
        self.buffer.feed(new_data)
        for line in self.buffer:
            self.on_line(line)
            if not line:
                continue
            try:
                self._process_line(line)
            except Exception:  # a malformed line must not kill the connection
                log.warning("could not handle line from %s: %r", self.server, line, exc_info=True)
        if len(self.buffer) > MAX_PENDING_BYTES:
            log.warning(
                "%s sent %d bytes without a newline; dropping", self.server, len(self.buffer)
            )
            self.disconnect()

    def _handle_event(self, event: Event) -> None:
        self.on_event(event)

    def send_raw(self, string: str) -> None:
        if self.transport is None or not self.connected:
            return
        self.transport.write(self._prep_message(string))

    def disconnect(self, message: str = "") -> None:
        """Close the link (``message`` is sent as QUIT first when given)."""
        if not self.connected or self.transport is None:
            return
        if message:
            self.send_raw(f"QUIT :{message}")
        self.connected = False
        self.transport.close()
