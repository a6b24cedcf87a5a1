"""Files from MSN posted to Matrix: streamed from disk to the media repository, then sent
as m.image / m.video / m.audio / m.file with name, size, mimetype, and for an image its
dimensions and a thumbnail (made with Pillow)."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
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
from .images import ImageFacts, ImageRefused, image_facts

log = logging.getLogger("msnbridge.matrix.files")

BLOCK = 64 * 1024


def file_mimetype(name: str, head: bytes) -> str:
    sniffed = image_mimetype(head)
    if sniffed != "application/octet-stream":
        return sniffed
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


async def _read(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            yield block


async def upload_file(intent: IntentAPI, path: Path, name: str, size: int) -> str:
    """The file's bytes in the media repository (streamed from disk); its mxc URI."""
    with path.open("rb") as f:
        head = f.read(BLOCK)
    mime = file_mimetype(name, head)
    return str(await intent.upload_media(_read(path), mime_type=mime, filename=name, size=size))


async def send_file(intent: IntentAPI, room: RoomID, path: Path, name: str, size: int) -> EventID:
    with path.open("rb") as f:
        head = f.read(BLOCK)
    mime = file_mimetype(name, head)
    mxc = await intent.upload_media(_read(path), mime_type=mime, filename=name, size=size)
    kind = mime.split("/", 1)[0]
    info: FileInfo
    facts: ImageFacts | None = None
    if kind == "image":
        try:
            facts = await asyncio.to_thread(image_facts, path)
        except ImageRefused as e:
            # Never lost: a picture Pillow cannot decode is posted as a plain file.
            log.info("%s is not a decodable image (%s): posted as a file", name, e)
            kind = "file"
    if facts is not None:
        msgtype, info = MessageType.IMAGE, ImageInfo(mimetype=mime, size=size)
        info.width, info.height = facts.width, facts.height
        thumb = facts.thumbnail
        if thumb is not None:
            info.thumbnail_url = await intent.upload_media(
                thumb.data, mime_type=thumb.mimetype, filename=f"thumbnail-{name}"
            )
            info.thumbnail_info = ImageInfo(
                mimetype=thumb.mimetype,
                size=len(thumb.data),
                width=thumb.width,
                height=thumb.height,
            )
    elif kind == "video":
        msgtype, info = MessageType.VIDEO, VideoInfo(mimetype=mime, size=size)
    elif kind == "audio":
        msgtype, info = MessageType.AUDIO, AudioInfo(mimetype=mime, size=size)
    else:
        msgtype, info = MessageType.FILE, FileInfo(mimetype=mime, size=size)
    content = MediaMessageEventContent(msgtype=msgtype, body=name, url=mxc, info=info)
    return await intent.send_message(room, content)
