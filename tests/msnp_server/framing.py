"""Server-side MSNP framing, written independently of ``puppets.command``.

Reads one client command at a time from an :class:`asyncio.StreamReader` and formats
server lines. Kept separate from the client codec on purpose: a framing bug in the
client must not be mirrored here and cancel itself out in the tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote, unquote

# Client commands whose last argument is a payload length in bytes.
CLIENT_PAYLOAD = frozenset({"MSG", "QRY", "UUX", "ADL", "RML", "FQY", "UUM", "UUN"})
# Client commands sent without a transaction id.
CLIENT_NO_TRID = frozenset({"PNG", "OUT"})

MAX_LINE = 8 * 1024
MAX_PAYLOAD = 64 * 1024

# Everything printable but space and '%' stays as is; non-ASCII goes out as %XX of UTF-8,
# as the real servers did for nicks, so clients must decode it.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


class FramingError(Exception):
    """The client broke framing: the connection must be closed."""


class PayloadTooLarge(FramingError):
    """A payload over the connection's cap (1664 bytes on the switchboard)."""


@dataclass(slots=True)
class Incoming:
    """One client command: ``args`` excludes the trid and the payload length."""

    name: str
    trid: int | None
    args: list[str]
    payload: bytes | None = None


def encode_arg(text: str) -> str:
    return quote(text, safe=_SAFE)


def decode_arg(text: str) -> str:
    return unquote(text, errors="strict")


def line(*parts: object) -> bytes:
    """One server line; ``parts`` are joined by single spaces (already encoded)."""
    return (" ".join(str(p) for p in parts) + "\r\n").encode("utf-8")


def payload_line(*parts: object, payload: bytes) -> bytes:
    """A server payload command: ``parts`` then the payload length, CRLF, the payload."""
    return line(*parts, len(payload)) + payload


def _parse_int(token: str) -> int:
    if not token.isdigit() or not token.isascii():
        raise FramingError(f"not a number: {token!r}")
    return int(token)


async def read_command(reader: asyncio.StreamReader, max_payload: int = MAX_PAYLOAD) -> Incoming:
    """Read one command. Raises FramingError on anything malformed and
    asyncio.IncompleteReadError when the peer closed."""
    try:
        raw = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError as exc:
        raise FramingError("line too long") from exc
    try:
        text = raw[:-2].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FramingError("line is not UTF-8") from exc
    tokens = text.split(" ")
    if any(not t for t in tokens) or "\r" in text or "\n" in text:
        raise FramingError(f"bad spacing in {text!r}")
    name = tokens[0]
    if len(name) != 3 or not name.isascii() or not name.isalnum() or name != name.upper():
        raise FramingError(f"bad command name {name!r}")
    rest = tokens[1:]
    trid: int | None = None
    if name in CLIENT_NO_TRID:
        if rest:
            raise FramingError(f"{name} takes no arguments")
    else:
        if not rest:
            raise FramingError(f"{name} without a transaction id")
        trid = _parse_int(rest.pop(0))
    payload: bytes | None = None
    if name in CLIENT_PAYLOAD:
        if not rest:
            raise FramingError(f"{name} without a payload length")
        length = _parse_int(rest.pop())
        if length > max_payload:
            raise PayloadTooLarge(f"{name} payload of {length} bytes")
        payload = await reader.readexactly(length)
    return Incoming(name, trid, rest, payload)
