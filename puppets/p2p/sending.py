"""Sending one P2P message: cut into chunks that fit a switchboard payload, framed in v1
or v2 as the peer speaks, written through the link with at most ``window`` not yet
confirmed by the server, and (optionally) waiting for the contact's acknowledgement of
the whole message.

v1 (MSNC): every chunk of a message shares its id; the receiver acknowledges a whole
message by its id. v2 (MSNP16+): each frame carries a sequence number that advances by
the frame's message size; the sender asks for an acknowledgement (RAK) on the frames it
wants acknowledged — here the last of each SLP message and of each data message awaited
— and the receiver answers with the sequence number just past that frame (TLV 2). The
first frame to a peer is a SYN carrying our peer info. A message has a package number;
each chunk says how many bytes of it remain.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

from ..event.conversation import DeliveryResult
from .header import (
    DTLV_REMAINING,
    PEER_INFO,
    TF,
    TLV_PEER_INFO,
    Flags,
    Frame,
    FrameV2,
    Header,
    OpCode,
)
from .transfer import TransferError
from .transport import build_payload, chunk_size

__all__ = ["MessageSender", "P2PLink", "V2Peer", "read_path"]

DEFAULT_WINDOW = 16
_U64 = struct.Struct(">Q")


class P2PLink(Protocol):
    def post(self, peer: str, payload: bytes) -> Awaitable[DeliveryResult]:
        """Queue ``payload`` for ``peer`` now (order kept); await the server's ACK."""
        ...


class _AckHolder(Protocol):
    data_ack: asyncio.Future[None] | None


class V2Peer:
    """Our side of the v2 transport with one peer."""

    __slots__ = ("package", "seq", "synced")

    def __init__(self) -> None:
        self.seq = random.randint(5000, 2**31)  # advanced by every frame's message size
        self.package = 0
        self.synced = False  # our SYN (peer info) went out

    def next_package(self) -> int:
        self.package = self.package % 0xFFFF + 1
        return self.package

    def stamp(self, frame: FrameV2) -> FrameV2:
        """Give ``frame`` the next sequence number (call in the order frames are posted)."""
        frame.sequence = self.seq
        self.seq = (self.seq + frame.message_size) & 0xFFFFFFFF
        return frame


def _tf(session_id: int, flags: int) -> int:
    if session_id == 0:
        return TF.NONE  # SLP
    if flags == Flags.FILE_DATA:
        return TF.FILE
    if flags == Flags.MSNOBJ_DATA:
        return TF.MSNOBJ
    return TF.NONE  # the data preparation message


class MessageSender:
    def __init__(self, link: P2PLink, window: int = DEFAULT_WINDOW, ack_timeout: float = 60.0):
        self.link = link
        self.window = max(1, window)
        self.ack_timeout = ack_timeout
        # The framing (1 or 2) to use with a peer, and our P2P-Src for v2 ("me;{guid}").
        self.framing: Callable[[str], int] = lambda peer: 1
        self.source: Callable[[], str | None] = lambda: None
        self._acks: dict[tuple[str, int, int], asyncio.Future[None]] = {}
        self._v2: dict[str, V2Peer] = {}
        self._next_id = random.randint(1000, 2**30)

    def new_id(self) -> int:
        self._next_id = self._next_id + 1 if self._next_id < 2**32 - 1 else 1000
        return self._next_id

    def v2_peer(self, peer: str) -> V2Peer:
        state = self._v2.get(peer)
        if state is None:
            state = self._v2[peer] = V2Peer()
        return state

    def forget_peer(self, peer: str) -> None:
        self._v2.pop(peer, None)

    def acked(self, peer: str, key: int, framing: int = 1) -> None:
        """The contact acknowledged our message: v1 by message id, v2 by the sequence
        number just past the frame that asked for it."""
        fut = self._acks.pop((peer, framing, key), None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def post_frame(self, peer: str, frame: Frame | FrameV2) -> asyncio.Future[DeliveryResult]:
        """Queue a single-frame message now; the future is the server's answer."""
        src = None
        if isinstance(frame, FrameV2):
            self.v2_peer(peer).stamp(frame)
            src = self.source()
        return asyncio.ensure_future(self.link.post(peer, build_payload(peer, frame, src)))

    def close(self) -> None:
        for fut in self._acks.values():
            fut.cancel()
        self._acks.clear()

    def _v1_frames(
        self, session_id: int, flags: int, app_id: int, total: int
    ) -> Callable[[int, bytes, bool], tuple[Frame, int | None]]:
        msg_id, unique = self.new_id(), random.randint(1, 2**31)

        def frame(offset: int, piece: bytes, last: bool) -> tuple[Frame, int | None]:
            header = Header(session_id, msg_id, offset, total, len(piece), flags, unique)
            return Frame(header, piece, app_id), msg_id

        return frame

    def _v2_frames(
        self, peer: str, session_id: int, flags: int, app_id: int, total: int, rak: bool
    ) -> Callable[[int, bytes, bool], tuple[FrameV2, int | None]]:
        state = self.v2_peer(peer)
        package, tf = state.next_package(), _tf(session_id, flags)

        def frame(offset: int, piece: bytes, last: bool) -> tuple[FrameV2, int | None]:
            remaining = total - offset - len(piece)
            f = FrameV2(
                tf=tf | TF.FIRST if offset == 0 else tf,
                package=package,
                session_id=session_id,
                data_tlvs=[(DTLV_REMAINING, _U64.pack(remaining))] if remaining else [],
                data=piece,
                app_id=app_id,
            )
            if last and rak:
                f.opcode |= OpCode.RAK
            if not state.synced:
                state.synced = True
                f.opcode |= OpCode.SYN | OpCode.RAK
                f.tlvs = [(TLV_PEER_INFO, PEER_INFO)]
            state.stamp(f)
            ack_key = (f.sequence + f.message_size) & 0xFFFFFFFF if last and rak else None
            return f, ack_key

        return frame

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
        framing = 2 if self.framing(peer) == 2 else 1
        src = self.source() if framing == 2 else None
        size = chunk_size(peer, v2=framing == 2, src=src)
        if framing == 2:
            # SLP messages ask for an acknowledgement as Messenger's do; data only when
            # the caller waits for it.
            rak = wait_ack or session_id == 0
            frames = self._v2_frames(peer, session_id, flags, app_id, total, rak)
        else:
            frames = self._v1_frames(session_id, flags, app_id, total)
        ack: asyncio.Future[None] | None = None
        ack_key: tuple[str, int, int] | None = None
        if wait_ack:
            ack = asyncio.get_running_loop().create_future()
            if on_ack_future is not None:
                on_ack_future.data_ack = ack
        inflight: deque[asyncio.Future[DeliveryResult]] = deque()
        offset = 0

        def post(piece: bytes, last: bool) -> asyncio.Future[DeliveryResult]:
            nonlocal ack_key
            frame, key = frames(offset, piece, last)
            if ack is not None and key is not None:
                ack_key = (peer, framing, key)
                self._acks[ack_key] = ack
            return asyncio.ensure_future(self.link.post(peer, build_payload(peer, frame, src)))

        try:
            async for piece in _rechunk(data, size):
                if stop is not None and stop.is_set():
                    raise TransferError("stopped")
                if offset + len(piece) > total:
                    raise TransferError(f"the source holds more than the {total} bytes offered")
                while len(inflight) >= self.window:
                    _check(await inflight.popleft())
                inflight.append(post(piece, offset + len(piece) == total))
                offset += len(piece)
                if progress is not None:
                    progress(offset)
            while inflight:
                _check(await inflight.popleft())
            if offset != total:
                raise TransferError(f"the source ended after {offset} of {total} bytes")
            if offset == 0:  # an empty message still travels as one empty chunk
                _check(await post(b"", True))
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
            if ack_key is not None:
                self._acks.pop(ack_key, None)


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
