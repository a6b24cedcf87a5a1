"""Reassembly of chunked MSG payloads (``Message-ID`` with ``Chunks: N`` / ``Chunk: i``).

The first part carries the normal headers plus ``Message-ID`` and ``Chunks``; each later
part carries only ``Message-ID`` and ``Chunk: i`` (1 <= i < N) and a piece of the body.
Senders cut bodies at byte offsets, so pieces are joined as bytes, never decoded alone.
A peer controls how much we buffer, so memory is bounded three ways: the number of
incomplete sets, their total size, and their age.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .mime import Message, build_message, parse_message

__all__ = ["ChunkAssembler"]

log = logging.getLogger("puppets.chunks")

_CHUNK_HEADERS = frozenset({"message-id", "chunks", "chunk"})


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return None


@dataclass
class _Set:
    headers: list[tuple[str, str]]
    parts: list[bytes | None]
    created: float
    size: int = 0
    missing: int = field(init=False)

    def __post_init__(self) -> None:
        self.missing = sum(part is None for part in self.parts)


class ChunkAssembler:
    """Collects the parts of chunked messages, keyed by (sender, Message-ID)."""

    def __init__(
        self,
        *,
        max_pending: int = 32,
        max_bytes: int = 256 * 1024,
        max_chunks: int = 64,
        expiry: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.max_chunks = max_chunks
        self.expiry = expiry
        self._clock = clock
        self._sets: dict[tuple[str, str], _Set] = {}
        self._bytes = 0
        self.dropped = 0  # incomplete sets and stray parts thrown away

    @property
    def pending(self) -> int:
        """Number of incomplete sets held."""
        return len(self._sets)

    @property
    def buffered(self) -> int:
        """Bytes held in incomplete sets."""
        return self._bytes

    def feed(self, sender: str, payload: bytes) -> bytes | None:
        """Return ``payload`` itself when it is not chunked, the whole reassembled
        payload when this part completes a set, else None (held or dropped)."""
        return self.feed_parsed(sender, payload, parse_message(payload))

    def feed_parsed(self, sender: str, payload: bytes, msg: Message) -> bytes | None:
        """:meth:`feed` for a payload already parsed into ``msg`` (not parsed again)."""
        msg_id = msg.get("Message-ID")
        total = _count(msg.get("Chunks"))
        index_header = msg.get("Chunk")
        if msg_id is None or (msg.get("Chunks") is None and index_header is None):
            return payload
        now = self._clock()
        self._expire(now)
        key = (sender.lower(), msg_id.strip().lower())
        if msg.get("Chunks") is not None:
            headers = [(k, v) for k, v in msg.headers if k.lower() not in _CHUNK_HEADERS]
            if total is None or total < 1 or total > self.max_chunks:
                log.debug("dropping chunked message from %s: Chunks=%r", sender, total)
                self.dropped += 1
                return None
            if total == 1:
                return build_message(headers, msg.body)
            self._discard(key)  # a restarted set replaces the old one
            parts: list[bytes | None] = [None] * total
            parts[0] = msg.body
            chunk_set = _Set(headers, parts, now, len(msg.body))
            self._sets[key] = chunk_set
            self._bytes += chunk_set.size
        else:
            index = _count(index_header)
            chunk_set = self._sets.get(key)
            if chunk_set is None or index is None or not 0 < index < len(chunk_set.parts):
                self.dropped += 1
                return None
            old = chunk_set.parts[index]
            if old is None:
                chunk_set.missing -= 1
            else:
                chunk_set.size -= len(old)
                self._bytes -= len(old)
            chunk_set.parts[index] = msg.body
            chunk_set.size += len(msg.body)
            self._bytes += len(msg.body)
        if chunk_set.missing == 0:
            self._discard(key)
            body = b"".join(part or b"" for part in chunk_set.parts)
            return build_message(chunk_set.headers, body)
        self._enforce_bounds()
        return None

    def _discard(self, key: tuple[str, str]) -> None:
        chunk_set = self._sets.pop(key, None)
        if chunk_set is not None:
            self._bytes -= chunk_set.size

    def _drop_oldest(self) -> None:
        key = next(iter(self._sets))
        log.debug("dropping incomplete chunked message from %s", key[0])
        self._discard(key)
        self.dropped += 1

    def _expire(self, now: float) -> None:
        # Sets are kept in creation order, so the expired ones are at the front.
        while self._sets:
            oldest = next(iter(self._sets.values()))
            if now - oldest.created < self.expiry:
                break
            self._drop_oldest()

    def _enforce_bounds(self) -> None:
        while self._sets and (len(self._sets) > self.max_pending or self._bytes > self.max_bytes):
            self._drop_oldest()
