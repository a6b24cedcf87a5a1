"""The bytes of one transfer between the core and a pool (a file either way, an emoticon's
or voice clip's data, the owner's display picture): chunks with flow control, never one
large event or command.

Both ends know the transfer's id (``tid``, in the command or event that started it). The
writer `put`s chunks of at most `CHUNK` bytes, then `end`; the reader `get`s them in order
until None. At most `WINDOW` chunks wait unread: the writer waits for room, so a transfer
holds at most WINDOW x CHUNK bytes (1 MiB) in Redis whatever its size, and a slow reader
slows the writer instead of filling memory. Either end may `cancel` with a reason: the
other end's next put or get raises `TransferCancelled` with it. An end whose peer is gone
(``alive()`` answers False, or nothing moved for ``stall`` seconds) cancels the transfer
and raises `TransferCancelled` too, so a dead pool or a restarted core never leaves the
other end waiting, or keys behind.

`RedisTransfers` keeps ``{p}:xfer:{tid}``, a list of entries (``D`` + data, ``E`` the end,
``C`` + why it was cancelled) whose TTL is renewed on every write, and
``{p}:xfer:{tid}:cancel`` once cancelled (a TTL too). The end that is told of a cancel
drops both; an end that gives up on a gone peer leaves its word for `KEY_TTL` at most.
`MemoryTransfers` does the same in one process (the memory link's).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

__all__ = [
    "CHUNK",
    "WINDOW",
    "MemoryTransfers",
    "RedisTransfers",
    "TransferCancelled",
    "Transfers",
    "binary_client",
    "chunks_of",
]

CHUNK = 256 * 1024  # bytes per entry at most
WINDOW = 4  # entries waiting unread at most, per transfer
STALL = 60.0  # seconds without progress after which the other end is taken for gone
CHECK = 1.0  # how often a waiting end asks whether the other one is alive
KEY_TTL = 300  # seconds a transfer's keys live after their last write

Alive = Callable[[], Awaitable[bool]]


class TransferCancelled(Exception):
    """The other end cancelled (or is gone); ``status`` as a puppets TransferFinished's."""

    def __init__(self, reason: str, status: str = "cancelled", by_peer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.by_peer = by_peer


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]


class Transfers:
    """The flow control both implementations share; they provide the primitives."""

    stall = STALL
    check = CHECK

    # --- primitives ---

    async def _state(self, tid: str) -> tuple[str | None, int]:
        """(the cancel entry or None, how many entries wait unread)."""
        raise NotImplementedError

    async def _push(self, tid: str, entry: bytes) -> None:
        raise NotImplementedError

    async def _pop(self, tid: str, timeout: float) -> bytes | None:
        """The next entry, or None after ``timeout`` seconds without one."""
        raise NotImplementedError

    async def _cancel(self, tid: str, entry: bytes) -> None:
        """Mark it cancelled, drop what waits, and wake the reader with ``entry``."""
        raise NotImplementedError

    async def discard(self, tid: str) -> None:
        """Forget the transfer (its end was read, or it is over)."""
        raise NotImplementedError

    # --- the ends ---

    async def put(
        self, tid: str, data: bytes, *, alive: Alive | None = None, stall: float | None = -1
    ) -> None:
        """Waits for room, then appends a chunk (``stall`` None: wait as long as the other
        end is alive, e.g. for a contact who has not accepted yet)."""
        if len(data) > CHUNK:
            raise ValueError(f"a chunk of {len(data)} bytes is over {CHUNK}")
        await self._write(tid, b"D" + data, alive, self.stall if stall == -1 else stall)

    async def end(self, tid: str, *, alive: Alive | None = None, stall: float | None = -1) -> None:
        await self._write(tid, b"E", alive, self.stall if stall == -1 else stall)

    async def _write(
        self, tid: str, entry: bytes, alive: Alive | None, stall: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        last_progress = next_check = loop.time()
        delay, waiting = 0.002, WINDOW
        while True:
            cancelled, waiting_now = await self._state(tid)
            if cancelled is not None:
                await self.discard(tid)  # the reader is done with it: nothing stays
                raise _cancelled(cancelled)
            if waiting_now < WINDOW:
                await self._push(tid, entry)
                return
            now = loop.time()
            if waiting_now < waiting:
                last_progress = now  # the reader took some: it is there
            waiting = waiting_now
            if stall is not None and now - last_progress > stall:
                raise await self._give_up(tid, f"nothing was taken for {stall:g} s")
            if alive is not None and now >= next_check:
                next_check = now + self.check
                if not await alive():
                    raise await self._give_up(tid, "the other end is gone")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def get(
        self, tid: str, *, alive: Alive | None = None, stall: float | None = -1
    ) -> bytes | None:
        """The next chunk, or None at the end."""
        stall = self.stall if stall == -1 else stall
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            entry = await self._pop(tid, self.check)
            if entry is not None:
                kind, body = entry[:1], entry[1:]
                if kind == b"D":
                    return body
                if kind == b"E":
                    await self.discard(tid)
                    return None
                await self.discard(tid)  # the writer stopped: nothing stays
                raise _cancelled(body.decode("utf-8", "replace"))
            cancelled, _ = await self._state(tid)
            if cancelled is not None:
                await self.discard(tid)
                raise _cancelled(cancelled)
            if stall is not None and loop.time() - started > stall:
                raise await self._give_up(tid, f"no data came for {stall:g} s")
            if alive is not None and not await alive():
                raise await self._give_up(tid, "the other end is gone")

    async def read_all(self, tid: str, limit: int, *, alive: Alive | None = None) -> bytes:
        """Every chunk up to the end; more than ``limit`` bytes cancels it."""
        out = bytearray()
        while (chunk := await self.get(tid, alive=alive)) is not None:
            out += chunk
            if len(out) > limit:
                await self.cancel(tid, f"more than {limit} bytes", status="failed")
                raise TransferCancelled(f"more than {limit} bytes", "failed")
        return bytes(out)

    async def write_all(self, tid: str, data: bytes, *, alive: Alive | None = None) -> None:
        for chunk in chunks_of(data):
            await self.put(tid, chunk, alive=alive)
        await self.end(tid, alive=alive)

    async def cancel(
        self, tid: str, reason: str, *, status: str = "cancelled", by_peer: bool = False
    ) -> None:
        """Tell the other end (its next put or get raises TransferCancelled)."""
        why = json.dumps({"reason": reason, "status": status, "by_peer": by_peer})
        await self._cancel(tid, b"C" + why.encode())

    async def _give_up(self, tid: str, reason: str) -> TransferCancelled:
        await self.cancel(tid, reason, status="failed")
        return TransferCancelled(reason, "failed")

    async def stream(self, tid: str, *, alive: Alive | None = None) -> AsyncIterator[bytes]:
        """The chunks as an async iterator (an OutgoingFile's source)."""
        while (chunk := await self.get(tid, alive=alive)) is not None:
            yield chunk


def _cancelled(text: str) -> TransferCancelled:
    try:
        why: dict[str, Any] = json.loads(text)
        return TransferCancelled(
            str(why.get("reason", "")),
            str(why.get("status", "cancelled")),
            bool(why.get("by_peer")),
        )
    except (ValueError, AttributeError):
        return TransferCancelled(text)


# --- Redis ---


def binary_client(redis: aioredis.Redis) -> aioredis.Redis:
    """A client on the same server whose replies are bytes (the link's decode to str)."""
    pool = redis.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    return aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


class RedisTransfers(Transfers):
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis  # bytes replies: see binary_client
        self.prefix = prefix

    def _key(self, tid: str) -> str:
        return f"{self.prefix}:xfer:{tid}"

    async def _state(self, tid: str) -> tuple[str | None, int]:
        key = self._key(tid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key + ":cancel")
            pipe.llen(key)
            cancelled, waiting = await pipe.execute()
        return (cancelled.decode() if cancelled is not None else None), int(waiting)

    async def _push(self, tid: str, entry: bytes) -> None:
        key = self._key(tid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, entry)
            pipe.expire(key, KEY_TTL)
            await pipe.execute()

    async def _pop(self, tid: str, timeout: float) -> bytes | None:
        got = await self.redis.blpop([self._key(tid)], timeout=max(timeout, 0.01))
        return got[1] if got else None

    async def _cancel(self, tid: str, entry: bytes) -> None:
        key = self._key(tid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key + ":cancel", entry[1:], ex=KEY_TTL)
            pipe.delete(key)
            pipe.rpush(key, entry)
            pipe.expire(key, KEY_TTL)
            await pipe.execute()

    async def discard(self, tid: str) -> None:
        key = self._key(tid)
        await self.redis.delete(key, key + ":cancel")

    async def keys(self) -> list[str]:
        """Every transfer key there is now (tests, and operators wondering)."""
        found = [k async for k in self.redis.scan_iter(match=f"{self.prefix}:xfer:*")]
        return sorted(k.decode() for k in found)


# --- in one process ---


@dataclass
class _Channel:
    entries: deque[bytes] = field(default_factory=deque)
    cancelled: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    touched: float = field(default_factory=time.monotonic)


class MemoryTransfers(Transfers):
    def __init__(self) -> None:
        self.channels: dict[str, _Channel] = {}
        self.most_waiting = 0  # the most entries ever waiting in one channel (tests)

    def _channel(self, tid: str) -> _Channel:
        channel = self.channels.get(tid)
        if channel is None:
            channel = self.channels[tid] = _Channel()
        return channel

    async def _state(self, tid: str) -> tuple[str | None, int]:
        channel = self.channels.get(tid)
        return (None, 0) if channel is None else (channel.cancelled, len(channel.entries))

    async def _push(self, tid: str, entry: bytes) -> None:
        channel = self._channel(tid)
        channel.entries.append(entry)
        channel.touched = time.monotonic()
        self.most_waiting = max(self.most_waiting, len(channel.entries))
        channel.changed.set()

    async def _pop(self, tid: str, timeout: float) -> bytes | None:
        channel = self._channel(tid)
        if not channel.entries:
            channel.changed.clear()
            try:
                await asyncio.wait_for(channel.changed.wait(), timeout)
            except TimeoutError:
                return None
        return channel.entries.popleft() if channel.entries else None

    async def _cancel(self, tid: str, entry: bytes) -> None:
        channel = self._channel(tid)
        channel.cancelled = entry[1:].decode()
        channel.entries.clear()
        channel.entries.append(entry)
        channel.changed.set()

    async def discard(self, tid: str) -> None:
        self.channels.pop(tid, None)
