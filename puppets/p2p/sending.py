"""Sending one P2P message: cut into chunks that fit a switchboard payload, written through
the link with at most ``window`` not yet confirmed by the server, and (optionally) waiting
for the contact's acknowledgement of the whole message."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

from ..event.conversation import DeliveryResult
from .header import Frame, Header
from .transfer import TransferError
from .transport import build_payload, chunk_size

__all__ = ["MessageSender", "P2PLink", "read_path"]

DEFAULT_WINDOW = 16


class P2PLink(Protocol):
    def post(self, peer: str, payload: bytes) -> Awaitable[DeliveryResult]:
        """Queue ``payload`` for ``peer`` now (order kept); await the server's ACK."""
        ...


class _AckHolder(Protocol):
    data_ack: asyncio.Future[None] | None


class MessageSender:
    def __init__(self, link: P2PLink, window: int = DEFAULT_WINDOW, ack_timeout: float = 60.0):
        self.link = link
        self.window = max(1, window)
        self.ack_timeout = ack_timeout
        self._acks: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._next_id = random.randint(1000, 2**30)

    def new_id(self) -> int:
        self._next_id = self._next_id + 1 if self._next_id < 2**32 - 1 else 1000
        return self._next_id

    def acked(self, peer: str, message_id: int) -> None:
        """The contact acknowledged our message ``message_id``."""
        fut = self._acks.pop((peer, message_id), None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def post_frame(self, peer: str, frame: Frame) -> asyncio.Future[DeliveryResult]:
        """Queue a single-frame message now; the future is the server's answer."""
        return asyncio.ensure_future(self.link.post(peer, build_payload(peer, frame)))

    def close(self) -> None:
        for fut in self._acks.values():
            fut.cancel()
        self._acks.clear()

    async def send(
        self,
        peer: str,
        session_id: int,
        data: bytes | AsyncIterable[bytes],
        flags: int,
        app_id: int,
        *,
        total: int | None = None,
        wait_ack: bool = False,
        stop: asyncio.Event | None = None,
        progress: Callable[[int], None] | None = None,
        on_ack_future: _AckHolder | None = None,
    ) -> None:
        """Write one P2P message in chunks, at most ``window`` unconfirmed at a time.

        With ``wait_ack``, returns once the contact acknowledged the whole message.
        Raises TransferError when the switchboard refuses a chunk or ``stop`` is set.
        """
        if isinstance(data, bytes):
            total = len(data)
        assert total is not None
        size = chunk_size(peer)
        msg_id = self.new_id()
        unique = random.randint(1, 2**31)
        ack: asyncio.Future[None] | None = None
        if wait_ack:
            ack = asyncio.get_running_loop().create_future()
            self._acks[(peer, msg_id)] = ack
            if on_ack_future is not None:
                on_ack_future.data_ack = ack
        inflight: deque[asyncio.Future[DeliveryResult]] = deque()
        offset = 0
        try:
            async for piece in _rechunk(data, size):
                if stop is not None and stop.is_set():
                    raise TransferError("stopped")
                if offset + len(piece) > total:
                    raise TransferError(f"the source holds more than the {total} bytes offered")
                while len(inflight) >= self.window:
                    _check(await inflight.popleft())
                header = Header(session_id, msg_id, offset, total, len(piece), flags, unique)
                payload = build_payload(peer, Frame(header, piece, app_id))
                inflight.append(asyncio.ensure_future(self.link.post(peer, payload)))
                offset += len(piece)
                if progress is not None:
                    progress(offset)
            while inflight:
                _check(await inflight.popleft())
            if offset != total:
                raise TransferError(f"the source ended after {offset} of {total} bytes")
            if offset == 0:  # an empty message still travels as one empty chunk
                header = Header(session_id, msg_id, 0, 0, 0, flags, unique)
                _check(await self.link.post(peer, build_payload(peer, Frame(header, b"", app_id))))
            if ack is not None:
                waiters = [ack]
                if stop is not None:
                    waiters.append(asyncio.ensure_future(stop.wait()))
                try:
                    done, _ = await asyncio.wait(
                        waiters, timeout=self.ack_timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for w in waiters[1:]:
                        w.cancel()
                if ack not in done:
                    if stop is not None and stop.is_set():
                        raise TransferError("stopped")
                    raise TransferError("the contact did not acknowledge the data in time")
        finally:
            for fut in inflight:
                fut.cancel()
            self._acks.pop((peer, msg_id), None)


def _check(result: DeliveryResult) -> None:
    if not result.ok:
        raise TransferError(f"the switchboard did not take a chunk: {result.reason}")


async def read_path(path: Path, block: int = 64 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while True:
            data = f.read(block)
            if not data:
                return
            yield data


async def _rechunk(data: bytes | AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """``data`` in pieces of exactly ``size`` bytes (the last may be shorter)."""
    if isinstance(data, bytes):
        for i in range(0, len(data), size):
            yield data[i : i + size]
        return
    pending = bytearray()
    async for block in data:
        pending += block
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)
