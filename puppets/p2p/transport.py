"""P2P frames inside switchboard MSG payloads (``application/x-msnmsgrp2p``).

Each payload is a MIME envelope naming the destination (``P2P-Dest``; with the v2
framing also ``P2P-Src``, our passport and endpoint) followed by one frame; the chunk
size is whatever keeps the whole payload within the switchboard's 1664 bytes, and never
above the 1202 bytes official clients use.
"""

from __future__ import annotations

from ..message import MAX_PAYLOAD
from ..mime import parse_message
from .header import (
    FOOTER_SIZE,
    HEADER_SIZE,
    Frame,
    FrameV2,
    P2PFormatError,
    parse_frame,
    parse_frame_v2,
)

__all__ = [
    "CAPS_EX_P2PV2",
    "CAPS_MSNC1",
    "CONTENT_TYPE",
    "build_payload",
    "chunk_size",
    "parse_payload",
]

CONTENT_TYPE = "application/x-msnmsgrp2p"
MAX_CHUNK = 1202
# Client-id capability bits: MSNC1 (Messenger 6.0 P2P). Peers only ask for pictures and
# offer files over MSNSLP to clients announcing it; others get MSNFTP invitations.
CAPS_MSNC1 = 0x10000000
# Extended capability bit (MSNP16+, after "caps:"): the peer speaks the P2P v2 framing.
CAPS_EX_P2PV2 = 0x20
# The most a v2 frame adds around its data: transport header with the peer info TLV
# (8 + 16, on a SYN), data header with the bytes-remaining TLV (8 + 12).
V2_OVERHEAD = 24 + 20


def envelope(dest: str, src: str | None = None) -> bytes:
    source = f"P2P-Src: {src}\r\n" if src else ""
    return (
        f"MIME-Version: 1.0\r\nContent-Type: {CONTENT_TYPE}\r\n{source}P2P-Dest: {dest}\r\n\r\n"
    ).encode()


def chunk_size(
    dest: str, limit: int = MAX_PAYLOAD, *, v2: bool = False, src: str | None = None
) -> int:
    overhead = V2_OVERHEAD if v2 else HEADER_SIZE
    room = limit - len(envelope(dest, src)) - overhead - FOOTER_SIZE
    if room < 1:
        raise ValueError(f"a P2P-Dest of {len(dest)} bytes leaves no room for data")
    return min(MAX_CHUNK, room)


def build_payload(dest: str, frame: Frame | FrameV2, src: str | None = None) -> bytes:
    return envelope(dest, src) + frame.build()


def parse_payload(payload: bytes, framings: tuple[int, ...] = (1,)) -> tuple[str, Frame | FrameV2]:
    """(P2P-Dest, frame); raises P2PFormatError or ValueError when it is not P2P.

    The frame is read in each of ``framings`` (1, 2) in turn until one fits: a peer
    expected to use v2 may still send v1 (it did not see our capabilities), and the
    other way round.
    """
    msg = parse_message(payload)
    if msg.content_type != CONTENT_TYPE:
        raise ValueError(f"not a P2P payload: {msg.content_type!r}")
    dest = (msg.get("P2P-Dest") or "").split(";", 1)[0].strip().lower()
    error = P2PFormatError("no framing to read the frame with")
    for framing in framings:
        try:
            return dest, parse_frame_v2(msg.body) if framing == 2 else parse_frame(msg.body)
        except P2PFormatError as e:
            error = e if framing == framings[0] else error
    raise error
