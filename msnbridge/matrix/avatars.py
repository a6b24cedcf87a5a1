"""Ghost avatars from MSN display pictures: each picture is uploaded once (by SHA1D, the
mxc URI remembered in the database) and set on the ghost when it changed."""

from __future__ import annotations

import asyncio
import logging

from mautrix.appservice import AppService
from mautrix.types import ContentURI
from mautrix.util.async_db import Database

from ..db import media as media_db

log = logging.getLogger("msnbridge.matrix.avatars")

# Display pictures are PNG, sometimes JPEG or GIF (Messenger converts to PNG, others do not).
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
]


def image_mimetype(data: bytes) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return "application/octet-stream"


class MediaUploads:
    """Uploads by SHA1D, once each, shared by every ghost and owner."""

    def __init__(self, az: AppService, db: Database) -> None:
        self.az = az
        self.db = db
        self._locks: dict[str, asyncio.Lock] = {}

    async def mxc_for(self, sha1d: str, data: bytes, name: str) -> ContentURI:
        async with self._locks.setdefault(sha1d, asyncio.Lock()):
            known = await media_db.get(self.db, sha1d)
            if known:
                return ContentURI(known)
            mime = image_mimetype(data)
            mxc = await self.az.intent.upload_media(data, mime_type=mime, filename=name)
            await media_db.save(self.db, sha1d, str(mxc), mime, len(data))
            log.debug("Uploaded %s (%d bytes) as %s", name, len(data), mxc)
            return mxc
