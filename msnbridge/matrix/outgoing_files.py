"""Matrix media → MSN file transfers (1:1 portals; group chats keep getting a link).

The file is downloaded through the client media API (authenticated media included) into a
temporary file, never whole in memory, within ``files.max_outgoing_size``; then offered to
the contact over MSNSLP. Waiting for the contact to accept can take minutes, so each
transfer runs as a task of its own: the room's other messages do not wait for it. A
decline, a timeout or a failure is reported in the room like an undelivered message.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mautrix.types import MessageType

from puppets.event.conversation import DeliveryResult, DeliveryStatus

from ..core.msn_files import human_size
from ..db.portal import Portal
from ..temp_files import remove as remove_temp
from ..temp_files import reserve as reserve_temp

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.files")

FILE_TYPES = frozenset({MessageType.IMAGE, MessageType.FILE, MessageType.VIDEO, MessageType.AUDIO})


class TooLarge(Exception):
    pass


class OutgoingFiles:
    def __init__(self, side: MatrixSide) -> None:
        self.side = side
        self._tasks: set[asyncio.Task[None]] = set()

    def wants(self, portal: Portal, content: Any) -> bool:
        """A plain (unencrypted) media message in a 1:1 portal: sent as a file."""
        return (
            getattr(content, "msgtype", None) in FILE_TYPES
            and bool(getattr(content, "url", None))
            and len(portal.participants) == 1
        )

    def start(self, portal: Portal, event_id: str, content: Any) -> None:
        task = asyncio.get_running_loop().create_task(
            self._send(portal, event_id, content), name=f"file-to-msn:{portal.owner}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(self, portal: Portal, event_id: str, content: Any) -> None:
        config = self.side.config
        limit = config["files.max_outgoing_size"]
        name = (getattr(content, "body", "") or "file").strip().replace("/", "_") or "file"
        info = getattr(content, "info", None)
        announced = getattr(info, "size", None) if info is not None else None
        peer = portal.participants[0]
        path: Path | None = None
        try:
            if announced is not None and announced > limit:
                raise TooLarge(f"{human_size(announced)} is over the limit of {human_size(limit)}")
            client = self.side.router.client(portal.owner)
            path = await asyncio.to_thread(reserve_temp, config["files.temp_dir"], "out-")
            size = await self._download(str(content.url), path, limit)
            transfer = client.p2p.manager.send_file(peer, path, name=name, size=size)
            status = await transfer.wait()
            if status != "completed":
                raise RuntimeError(f"{status}: {transfer.reason}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.info("A file for %s was not sent: %s", peer, e)
            result = DeliveryResult(DeliveryStatus.FAILED, f"the file was not sent ({e})")
            await self.side.portal_side.delivery_failed(portal, event_id, name, result)
        finally:
            if path is not None:
                remove_temp(path)

    async def _download(self, mxc: str, path: Path, limit: int) -> int:
        """Stream the media to ``path``; stop past ``limit`` bytes. Returns the size."""
        server, _, media_id = mxc.removeprefix("mxc://").partition("/")
        if not server or not media_id:
            raise ValueError(f"not a media URI: {mxc[:60]}")
        api = self.side.az.intent.api
        base = str(api.base_url).rstrip("/")
        url = f"{base}/_matrix/client/v1/media/download/{quote(server)}/{quote(media_id)}"
        headers = {"Authorization": f"Bearer {self.side.config['appservice.as_token']}"}
        size = 0
        async with api.session.get(url, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"the homeserver answered {resp.status} for the media")
            with path.open("wb") as f:
                async for block in resp.content.iter_chunked(64 * 1024):
                    size += len(block)
                    if size > limit:
                        raise TooLarge(f"it is over the limit of {human_size(limit)}")
                    f.write(block)
        return size
