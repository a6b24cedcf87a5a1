"""Files from MSN posted to Matrix: streamed from disk to the media repository, then sent
as m.image / m.video / m.audio / m.file with name, size, mimetype (and an image's size)."""

from __future__ import annotations

import mimetypes
import struct
from collections.abc import AsyncIterator
from pathlib import Path

from mautrix.appservice import IntentAPI
from mautrix.types import (
    AudioInfo,
    EventID,
    FileInfo,
    ImageInfo,
    MediaMessageEventContent,
    MessageType,
    RoomID,
    VideoInfo,
)

from .avatars import image_mimetype

BLOCK = 64 * 1024


def file_mimetype(name: str, head: bytes) -> str:
    sniffed = image_mimetype(head)
    if sniffed != "application/octet-stream":
        return sniffed
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG from its first bytes; None when unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"GIF8") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 9 < len(head):
            if head[pos] != 0xFF:
                return None
            marker = head[pos + 1]
            length = struct.unpack(">H", head[pos + 2 : pos + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
                return width, height
            pos += 2 + length
    return None


async def _read(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            yield block


async def send_file(intent: IntentAPI, room: RoomID, path: Path, name: str, size: int) -> EventID:
    with path.open("rb") as f:
        head = f.read(BLOCK)
    mime = file_mimetype(name, head)
    mxc = await intent.upload_media(_read(path), mime_type=mime, filename=name, size=size)
    kind = mime.split("/", 1)[0]
    info: FileInfo
    if kind == "image":
        msgtype, info = MessageType.IMAGE, ImageInfo(mimetype=mime, size=size)
        dims = image_dimensions(head)
        if dims is not None:
            info.width, info.height = dims
    elif kind == "video":
        msgtype, info = MessageType.VIDEO, VideoInfo(mimetype=mime, size=size)
    elif kind == "audio":
        msgtype, info = MessageType.AUDIO, AudioInfo(mimetype=mime, size=size)
    else:
        msgtype, info = MessageType.FILE, FileInfo(mimetype=mime, size=size)
    content = MediaMessageEventContent(msgtype=msgtype, body=name, url=mxc, info=info)
    return await intent.send_message(room, content)
