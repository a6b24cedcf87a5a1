"""The file transfer INVITE's Context: a little-endian structure, base64 in the SLP body.

u32 length (574, or 638 from version 3)   u32 version (2 or 3)
u64 file size                             u32 type (0: a preview follows, 1: none)
520 bytes: the file name, UTF-16LE, NUL-padded (260 code units, MAX_PATH)
30 bytes + u32: background-sharing fields (0xFF…, 0)   [+ 64 bytes from version 3]
then, after ``length`` bytes, the preview (a small PNG) when type is 0
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["FileContext", "FileContextError"]

SIZE_V2 = 574
SIZE_V3 = 638
NAME_BYTES = 520
_HEAD = struct.Struct("<IIQI")
MAX_PREVIEW = 64 * 1024


class FileContextError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class FileContext:
    name: str
    size: int
    preview: bytes = b""
    version: int = 2

    def build(self) -> bytes:
        length = SIZE_V3 if self.version >= 3 else SIZE_V2
        name = self.name.encode("utf-16-le")[: NAME_BYTES - 2]
        if len(name) % 2:
            name = name[:-1]
        kind = 0 if self.preview else 1
        out = _HEAD.pack(length, self.version, self.size, kind)
        out += name.ljust(NAME_BYTES, b"\x00")
        out += b"\xff" * 4 + b"\x00" * 26 + struct.pack("<I", 0)
        out = out.ljust(length, b"\x00")
        return out + self.preview

    @classmethod
    def parse(cls, data: bytes) -> FileContext:
        if len(data) < _HEAD.size + NAME_BYTES:
            raise FileContextError(f"a file context of {len(data)} bytes is too short")
        length, version, size, kind = _HEAD.unpack_from(data)
        if length < _HEAD.size + NAME_BYTES or length > len(data):
            raise FileContextError(f"file context length {length} does not fit {len(data)}")
        raw = data[_HEAD.size : _HEAD.size + NAME_BYTES]
        name = raw.decode("utf-16-le", "replace").split("\x00", 1)[0]
        # A name is never a path: keep only its last component, and something printable.
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(c for c in name if c.isprintable()).strip()
        if name in ("", ".", ".."):
            name = "file"
        preview = data[length:] if kind == 0 else b""
        return cls(name, size, preview[:MAX_PREVIEW], version)
