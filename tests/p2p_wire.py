"""What P2P framing travels on the switchboard, read from the raw bytes the test server
relays (independently of puppets' own parsers)."""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.msnp_server import MSNPTestServer

P2P_TYPE = b"content-type: application/x-msnmsgrp2p"


@dataclass(slots=True)
class WireFrame:
    sender: str
    framing: str  # "v1", "v2" or "?"
    headers: bytes
    body: bytes

    # v2 fields (transport header, data header), when framing == "v2"
    @property
    def opcode(self) -> int:
        return self.body[1]

    @property
    def sequence(self) -> int:
        return struct.unpack_from(">I", self.body, 4)[0]

    @property
    def message_size(self) -> int:
        return struct.unpack_from(">H", self.body, 2)[0]

    def tlvs(self) -> dict[int, bytes]:
        out, pos, end = {}, 8, self.body[0]
        while pos + 2 <= end and self.body[pos]:
            kind, size = self.body[pos], self.body[pos + 1]
            out[kind] = self.body[pos + 2 : pos + 2 + size]
            pos += 2 + size
        return out

    @property
    def tf(self) -> int | None:
        return self.body[self.body[0] + 1] if self.message_size else None


def classify(body: bytes) -> str:
    """v1: a 48-byte little-endian header whose length field accounts for the rest;
    v2: a header length (a multiple of 4, at least 8) and a big-endian message size
    that account for it."""
    if len(body) >= 52 and 48 + struct.unpack_from("<I", body, 24)[0] + 4 == len(body):
        return "v1"
    if len(body) >= 12:
        hlen, size = body[0], struct.unpack_from(">H", body, 2)[0]
        if hlen >= 8 and hlen % 4 == 0 and hlen + size + 4 == len(body):
            return "v2"
    return "?"


@dataclass
class Wire:
    frames: list[WireFrame] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, sender: str, payload: bytes) -> None:
        head, sep, body = payload.partition(b"\r\n\r\n")
        if sep and P2P_TYPE in head.lower():
            self.frames.append(WireFrame(sender, classify(body), head, body))
            self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds, re-checking after every relayed frame."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def framings(self, sender: str | None = None) -> Counter[str]:
        return Counter(f.framing for f in self.frames if sender in (None, f.sender))


def tap(server: MSNPTestServer) -> Wire:
    wire = Wire()
    server.hub.sb_taps.append(wire)
    return wire


def untap(server: MSNPTestServer, wire: Wire) -> None:
    server.hub.sb_taps.remove(wire)
