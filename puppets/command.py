"""MSNP framing: command lines, payload commands and the incremental reader.

A command line is ``NAME [trid] arg arg...\\r\\n``; payload commands end in a length in
bytes followed by exactly that many bytes. This module is sans-IO: it turns bytes into
:class:`Command` values and back, and knows nothing of sockets or sessions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import quote as _quote
from urllib.parse import unquote as _unquote

from .errors import ProtocolError

__all__ = [
    "CLIENT_PAYLOAD_COMMANDS",
    "SERVER_NO_TRID",
    "SERVER_PAYLOAD_COMMANDS",
    "Command",
    "CommandReader",
    "decode_arg",
    "encode_arg",
]

# Commands a server sends with a payload (length in bytes as the last argument).
SERVER_PAYLOAD_COMMANDS = frozenset(
    {"MSG", "GCF", "UBX", "NOT", "IPG", "ADL", "FQY", "RML", "UBN", "UBM", "SDG"}
)
# Commands a client sends with a payload.
CLIENT_PAYLOAD_COMMANDS = frozenset(
    {"MSG", "QRY", "UUX", "ADL", "RML", "FQY", "UUM", "UUN", "PAG", "SDG"}
)
# Server-pushed commands that never carry a transaction id, even when their first
# argument is a number (QNG 50, RNG 17342299 ..., BPR 12182 ... in MSNP5-7).
SERVER_NO_TRID = frozenset(
    {
        "NLN",
        "FLN",
        "UBX",
        "RNG",
        "QNG",
        "JOI",
        "BYE",
        "MSG",
        "OUT",
        "NOT",
        "IPG",
        "BPR",
        "UBN",
        "UBM",
        "PNG",
    }
)
# What a client sends without a trid (the server reads these).
CLIENT_NO_TRID = frozenset({"PNG", "OUT"})

DEFAULT_MAX_LINE = 16 * 1024
_VALID_NAMES: set[str] = set()  # names already checked: skips the check on the hot path
DEFAULT_MAX_PAYLOAD = 64 * 1024
# Commands read are made without calling Command.__init__ (its defaults and a frame per
# line): 6 % fewer instructions for the reader (benchmarks/README.md).
_new_command = object.__new__

# Servers in the wild escape only these; we encode at least them (and '+' so that a
# liberal decoder that treats '+' as space cannot corrupt it).
_SAFE = "@!$&'()*,;:=/?~[]{}<>|^`#\"\\"


def encode_arg(value: str) -> str:
    """URL-encode one argument (nick, group or font name) for the wire."""
    # errors="replace": a lone surrogate (possible in JSON-decoded text) must not raise.
    return _quote(value, safe=_SAFE, errors="replace")


def decode_arg(value: str) -> str:
    """Decode one URL-encoded argument liberally (bad escapes are left as they are)."""
    if "%" not in value:
        return value
    return _unquote(value, errors="replace")


def _is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


class Command:
    """One MSNP command, reply, error or payload command.

    ``trid`` is None for commands without a transaction id. ``payload`` is None for
    commands without one; for payload commands the length argument is not in ``args``.
    (A plain slotted class rather than a dataclass: it is built once per line read.)
    """

    __slots__ = ("args", "name", "payload", "trid")

    def __init__(
        self,
        name: str,
        trid: int | None = None,
        args: list[str] | None = None,
        payload: bytes | None = None,
    ) -> None:
        self.name = name
        self.trid = trid
        self.args = [] if args is None else args
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Command):
            return NotImplemented
        return (self.name, self.trid, self.args, self.payload) == (
            other.name,
            other.trid,
            other.args,
            other.payload,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return (
            f"Command(name={self.name!r}, trid={self.trid!r}, args={self.args!r}, "
            f"payload={self.payload!r})"
        )

    @property
    def is_error(self) -> bool:
        return len(self.name) == 3 and self.name.isdigit()

    @property
    def error_code(self) -> int | None:
        return int(self.name) if self.is_error else None

    def encode(self) -> bytes:
        parts = [self.name]
        if self.trid is not None:
            parts.append(str(self.trid))
        parts.extend(self.args)
        if self.payload is not None:
            parts.append(str(len(self.payload)))
        head = " ".join(parts).encode("utf-8") + b"\r\n"
        if self.payload is not None:
            return head + self.payload
        return head

    def __str__(self) -> str:  # for logs: never the payload body
        parts = [self.name]
        if self.trid is not None:
            parts.append(str(self.trid))
        parts.extend(self.args)
        if self.payload is not None:
            parts.append(f"<{len(self.payload)} bytes>")
        return " ".join(parts)


class CommandReader:
    """Incremental parser: feed it whatever the socket returned, get whole commands back.

    Copes with partial reads and several commands in one read. A line over ``max_line``
    bytes or a payload length that is not a number or over ``max_payload`` raises
    :class:`ProtocolError`; after that the reader is poisoned and the caller should close
    the connection.
    """

    __slots__ = (
        "_buf",
        "_failed",
        "_pending",
        "max_line",
        "max_payload",
        "no_trid",
        "payload_commands",
    )

    def __init__(
        self,
        *,
        payload_commands: frozenset[str] = SERVER_PAYLOAD_COMMANDS,
        no_trid: frozenset[str] = SERVER_NO_TRID,
        max_line: int = DEFAULT_MAX_LINE,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self._buf = bytearray()
        self._pending: tuple[Command, int] | None = None
        self._failed: ProtocolError | None = None
        self.payload_commands = payload_commands
        self.no_trid = no_trid
        self.max_line = max_line
        self.max_payload = max_payload

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # The C parser (puppets/_codec.c) when it was built: ``_c_drain(self, buf, out)`` does
    # what ``self._drain(buf, out)`` does. None: the pure-Python parser.
    _c_drain: Callable[[CommandReader, bytearray, list[Command]], None] | None = None

    def feed(self, data: bytes) -> list[Command]:
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        buf += data
        out: list[Command] = []
        try:
            c_drain = self._c_drain
            if c_drain is None:
                self._drain(buf, out)
            else:
                c_drain(self, buf, out)
        except ProtocolError as e:
            self._failed = e
            buf.clear()
            e.parsed = out  # commands complete before the fault are still delivered
            raise
        if not buf:
            # A drained bytearray keeps its capacity; after a big SYN burst that would be
            # kilobytes per idle session.
            self._buf = bytearray()
        return out

    def _start_payload(self, cmd: Command) -> None:
        """Take the length off a payload command; wait for its bytes unless it is empty."""
        if not cmd.args:
            raise ProtocolError(f"{cmd.name} without a payload length")
        length_arg = cmd.args.pop()
        if not _is_digits(length_arg):
            raise ProtocolError(f"{cmd.name} payload length is not a number: {length_arg[:20]!r}")
        # Bound the digits before int(): Python refuses over 4300 of them with
        # ValueError, which must not escape as anything but ProtocolError.
        length = int(length_arg) if len(length_arg) <= 18 else None
        if length is None or length > self.max_payload:
            raise ProtocolError(
                f"{cmd.name} payload of {length_arg[:20]} bytes is over the "
                f"{self.max_payload}-byte limit"
            )
        if length == 0:
            cmd.payload = b""
        else:
            self._pending = (cmd, length)

    def _drain(self, buf: bytearray, out: list[Command]) -> None:
        # The hot path of every session: parsing is inlined here on purpose (see
        # benchmarks/codec.py).
        data = bytes(buf)
        pos = 0
        size = len(data)
        payload_commands = self.payload_commands
        no_trid = self.no_trid
        max_line = self.max_line
        append = out.append
        try:
            while True:
                pending = self._pending
                if pending is not None:
                    cmd, length = pending
                    if size - pos < length:
                        return
                    cmd.payload = data[pos : pos + length]
                    pos += length
                    self._pending = None
                    append(cmd)
                    continue
                end = data.find(b"\n", pos)
                if end < 0:
                    if size - pos > max_line:
                        raise ProtocolError(f"line longer than {max_line} bytes")
                    return
                if end - pos > max_line:
                    raise ProtocolError(f"line longer than {max_line} bytes")
                raw = data[pos : end - 1 if end > pos and data[end - 1] == 13 else end]
                pos = end + 1
                if not raw:
                    continue  # stray blank line: tolerated, as clients in the wild do
                try:
                    parts = raw.decode().split(" ")
                except UnicodeDecodeError:
                    parts = raw.decode("utf-8", "replace").split(" ")
                name = parts[0]
                if name not in _VALID_NAMES:
                    if not name or len(name) > 4 or not (name.isascii() and name.isalnum()):
                        raise ProtocolError(f"not an MSNP command: {raw[:60]!r}")
                    if len(_VALID_NAMES) < 512:  # bounded: junk names cannot grow it forever
                        _VALID_NAMES.add(name)
                trid = None
                if len(parts) > 1 and name not in no_trid:
                    first = parts[1]
                    if first.isdigit() and first.isascii() and len(first) < 10:
                        trid = int(first)
                        del parts[1]
                del parts[0]
                cmd = _new_command(Command)
                cmd.name = name
                cmd.trid = trid
                cmd.args = parts
                cmd.payload = None
                # ``ADL t OK`` / ``RML t OK`` (MSNP13+) answer a payload with none.
                if (name in payload_commands and not (parts and parts[-1] == "OK")) or (
                    len(parts) == 1 and name.isdigit() and parts[0].isdigit()
                ):
                    self._start_payload(cmd)
                    if self._pending is None:
                        append(cmd)
                    continue
                append(cmd)
        finally:
            del buf[:pos]


def _load_c_parser() -> None:
    """Use puppets/_codec.c if it was built (and PUPPETS_PURE_PYTHON is not set)."""
    if os.environ.get("PUPPETS_PURE_PYTHON"):
        return
    try:
        from . import _codec  # type: ignore[attr-defined]
    except ImportError:  # built without a compiler: the pure-Python parser, same behaviour
        return
    _codec.setup(Command, ProtocolError)
    CommandReader._c_drain = staticmethod(_codec.drain)  # type: ignore[assignment]


_load_c_parser()
# True when readers parse in C.
ACCELERATED = CommandReader._c_drain is not None
