"""P2P frames inside switchboard MSG payloads (``application/x-msnmsgrp2p``).

Each payload is a MIME envelope naming the destination (``P2P-Dest``) followed by one
frame; the chunk size is whatever keeps the whole payload within the switchboard's
1664 bytes, and never above the 1202 bytes official clients use.
"""

from __future__ import annotations

from ..message import MAX_PAYLOAD
from ..mime import parse_message
from .header import FOOTER_SIZE, HEADER_SIZE, Frame, parse_frame

__all__ = ["CONTENT_TYPE", "build_payload", "chunk_size", "parse_payload"]

CONTENT_TYPE = "application/x-msnmsgrp2p"
MAX_CHUNK = 1202
# Client-id capability bits: MSNC1 (Messenger 6.0 P2P). Peers only ask for pictures and
# offer files over MSNSLP to clients announcing it; others get MSNFTP invitations.
CAPS_MSNC1 = 0x10000000


def envelope(dest: str) -> bytes:
    return (
        f"MIME-Version: 1.0\r\nContent-Type: {CONTENT_TYPE}\r\nP2P-Dest: {dest}\r\n\r\n"
    ).encode()


def chunk_size(dest: str, limit: int = MAX_PAYLOAD) -> int:
    room = limit - len(envelope(dest)) - HEADER_SIZE - FOOTER_SIZE
    if room < 1:
        raise ValueError(f"a P2P-Dest of {len(dest)} bytes leaves no room for data")
    return min(MAX_CHUNK, room)


def build_payload(dest: str, frame: Frame) -> bytes:
    return envelope(dest) + frame.build()


def parse_payload(payload: bytes) -> tuple[str, Frame]:
    """(P2P-Dest, frame); raises P2PFormatError or ValueError when it is not P2P."""
    msg = parse_message(payload)
    if msg.content_type != CONTENT_TYPE:
        raise ValueError(f"not a P2P payload: {msg.content_type!r}")
    dest = (msg.get("P2P-Dest") or "").split(";", 1)[0].strip().lower()
    return dest, parse_frame(msg.body)
