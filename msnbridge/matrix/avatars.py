"""Pictures between the sides: ghost avatars from MSN display pictures (each picture
uploaded once, by SHA1D, the mxc URI remembered in the database) and owners' Matrix
avatars as their MSN display pictures."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
from mautrix.appservice import AppService
from mautrix.errors import MatrixError
from mautrix.types import ContentURI, StateEvent, UserID
from mautrix.util.async_db import Database

from puppets.errors import PuppetError
from puppets.event.session import LoggedIn

from ..db import media as media_db
from .images import ImageRefused, display_picture

if TYPE_CHECKING:
    from .appservice import MatrixSide

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


async def fetch_media(side: MatrixSide, mxc: str, limit: int) -> bytes:
    """Media through the client media API (authenticated media), at most ``limit`` bytes."""
    server, _, media_id = mxc.removeprefix("mxc://").partition("/")
    if not server or not media_id:
        raise ValueError(f"not a media URI: {mxc[:60]}")
    api = side.az.intent.api
    url = (
        f"{str(api.base_url).rstrip('/')}/_matrix/client/v1/media/download/"
        f"{quote(server)}/{quote(media_id)}"
    )
    headers = {"Authorization": f"Bearer {side.config['appservice.as_token']}"}
    data = bytearray()
    async with api.session.get(url, headers=headers) as resp:
        if resp.status != 200:
            raise ValueError(f"the homeserver answered {resp.status} for {mxc}")
        async for block in resp.content.iter_chunked(64 * 1024):
            data += block
            if len(data) > limit:
                raise ValueError(f"{mxc} is larger than {limit} bytes")
    return bytes(data)


class OwnerPictures:
    """An owner's Matrix avatar as their MSN display picture: at each login, and when a
    member event of theirs in a room the bridge sees carries a new avatar.

    The avatar is converted with Pillow to what Messenger shows: a 96x96 PNG of its centre
    square (the first frame of an animation). Avatars over ``MAX_AVATAR`` bytes, or that
    cannot be decoded safely, are left out, logged once per avatar.
    """

    MAX_AVATAR = 20 * 1024 * 1024

    def __init__(self, side: MatrixSide) -> None:
        self.side = side
        self._shown: dict[str, str] = {}  # owner -> mxc now shown on MSN
        self._refused: dict[str, str] = {}  # owner -> mxc refused already (logged once)
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, owner: str, mxc: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self.refresh(owner, mxc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_puppet_event(self, owner: str, event: object) -> None:
        if owner.startswith("@") and isinstance(event, LoggedIn):
            self._spawn(owner, None)

    def on_member(self, event: StateEvent) -> None:
        owner = str(event.state_key)
        if event.sender != owner or self.side.router.sessions.get(owner) is None:
            return
        mxc = getattr(event.content, "avatar_url", None)
        if mxc and self._shown.get(owner) != str(mxc):
            self._spawn(owner, str(mxc))

    async def refresh(self, owner: str, mxc: str | None) -> None:
        try:
            if mxc is None:
                mxc = str(await self.side.bot.get_avatar_url(UserID(owner)) or "")
            if not mxc or self._shown.get(owner) == mxc or self._refused.get(owner) == mxc:
                return
            client = self.side.router.sessions.get(owner)
            if client is None:
                return
            data = await fetch_media(self.side, mxc, self.MAX_AVATAR)
            try:
                picture = await asyncio.to_thread(display_picture, data)
            except ImageRefused as e:
                self._refused[owner] = mxc
                log.warning("The avatar of %s (%s) is not shown on MSN: %s", owner, mxc, e)
                return
            await client.set_display_picture(picture)
            self._shown[owner] = mxc
        except (MatrixError, ValueError, PuppetError, aiohttp.ClientError) as e:
            log.info("The avatar of %s could not become their MSN picture: %s", owner, e)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
