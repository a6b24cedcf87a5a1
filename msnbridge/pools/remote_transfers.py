"""The core's stand-ins for a pooled session's P2P layer: `RemoteP2P` (``client.p2p``)
with a manager whose ``send_file`` and ``fetch_object`` work as the puppets ones do,
`RemoteIncomingFile` handed out in ``FileOffered`` events, `RemoteOutgoingFile`
returned by ``send_file``. The core's file, emoticon, voice clip and avatar code uses
them as it uses the Client's in-process; the bytes travel through the link's
`transfers.Transfers` (see ``pool_transfers`` for the pool's end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from puppets.errors import PuppetError
from puppets.event.transfer import TransferFinished, TransferProgress
from puppets.msnobject import MSNObject
from puppets.p2p.manager import ObjectFetchError
from puppets.p2p.transfer import PROGRESS_STEPS, TransferError

from . import codec
from .transfers import CHUNK, TransferCancelled, Transfers

if TYPE_CHECKING:
    from .remote_client import RemoteClient

log = logging.getLogger("msnbridge.pools.remote")

MAX_OBJECT = 1 << 20  # as the puppets manager's bound on a fetched object


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _RemoteTransfer:
    """What both directions share (as puppets' Transfer)."""

    incoming = False

    def __init__(self, client: RemoteClient, tid: str, peer: str, name: str, size: int) -> None:
        self.client = client
        self.tid = tid
        self.peer = peer
        self.name = name
        self.size = size
        self.done = 0
        self.status: str | None = None
        self.reason = ""
        self.pool: str | None = None  # the pool carrying it, once it answered
        self._finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._next_report = 0

    @property
    def finished(self) -> bool:
        return self.status is not None

    @property
    def transfers(self) -> Transfers:
        return self.client.transfers  # type: ignore[return-value]

    async def wait(self, timeout: float | None = None) -> str:
        return await asyncio.wait_for(asyncio.shield(self._finished), timeout)

    async def _pool_alive(self) -> bool:
        holds = getattr(self.client.link, "pool_holds", None)
        if holds is None or self.pool is None:
            return True
        return bool(await holds(self.client.owner, self.pool))

    def _progress(self, done: int) -> None:
        self.done = done
        step = max(1, self.size // PROGRESS_STEPS)
        if done >= self._next_report or done >= self.size:
            self._next_report = done + step
            self.client._emit(
                TransferProgress(self.peer, self.name, done, self.size, self.incoming, self)  # type: ignore[arg-type]
            )

    def _finish(self, status: str, reason: str, by_peer: bool = False) -> bool:
        if self.status is not None:
            return False
        self.status, self.reason = status, reason
        self._cleanup(status)
        if not self._finished.done():
            self._finished.set_result(status)
        self.client._transfers.pop(self.tid, None)
        self.client._emit(
            TransferFinished(
                self.peer,
                self.name,
                self.size,
                self.incoming,
                status,
                reason,
                by_peer,
                self,  # type: ignore[arg-type]
            )
        )
        return True

    def _cleanup(self, status: str) -> None:
        pass

    def _tell_pool(self, kind: str, **data: Any) -> None:
        self.client._spawn(self.client._command(kind, {"transfer": self.tid, **data}), kind)


class RemoteIncomingFile(_RemoteTransfer):
    """A contact's offer held by the pool: ``accept(path or stream)`` or ``decline()``."""

    incoming = True

    def __init__(
        self, client: RemoteClient, tid: str, peer: str, name: str, size: int, preview: bytes
    ) -> None:
        super().__init__(client, tid, peer, name, size)
        self.preview = preview
        self.path: Path | None = None
        self.accepted = False
        self._own_file: BinaryIO | None = None
        self._task: asyncio.Task[None] | None = None

    def accept(self, destination: str | Path | _Writable) -> None:
        if self.finished or self.accepted:
            raise TransferError(f"the offer is already {self.status or 'accepted'}")
        if isinstance(destination, str | Path):
            self.path = Path(destination)
            self._own_file = self.path.open("wb")
            stream: _Writable = self._own_file
        else:
            stream = destination
        self.accepted = True
        self.client._transfers[self.tid] = self
        self._task = asyncio.get_running_loop().create_task(
            self._receive(stream), name=f"file-from-pool:{self.tid}"
        )

    async def _receive(self, stream: _Writable) -> None:
        try:
            reply = await self.client._command("file_accept", {"transfer": self.tid})
            self.pool = reply.get("pool")
            while (chunk := await self.transfers.get(self.tid, alive=self._pool_alive)) is not None:
                if self.done + len(chunk) > self.size:
                    raise TransferCancelled("more data than the offer said", "failed")
                stream.write(chunk)
                self._progress(self.done + len(chunk))
            if self.done != self.size:
                self._finish("failed", f"the data ended at {self.done} of {self.size} bytes")
            else:
                self._finish("completed", "received")
        except TransferCancelled as e:
            if e.reason == "the other end is gone":
                e.reason = "the connection pool holding the session stopped"
            with contextlib.suppress(Exception):
                await self.transfers.cancel(self.tid, e.reason, status="failed")
            self._finish(e.status, e.reason, e.by_peer)
        except PuppetError as e:  # the pool refused (the offer is over) or did not answer
            self._finish("failed", str(e))
        except asyncio.CancelledError:
            # The core stops: the pool is told, and cancels on MSN (the contact is told).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.transfers.cancel(self.tid, "the bridge stopped"))
            self._finish("cancelled", "the bridge stopped")
            raise
        except Exception as e:
            log.exception("A file from %s could not be received from its pool", self.peer)
            with contextlib.suppress(Exception):
                await self.transfers.cancel(self.tid, "the bridge failed", status="failed")
            self._finish("failed", f"{type(e).__name__}: {e}")

    def decline(self) -> None:
        if self.finished or self.accepted:
            raise TransferError(f"the offer is already {self.status or 'accepted'}")
        self._tell_pool("file_decline")
        self._finish("declined", "declined")

    def cancel(self, reason: str = "cancelled") -> None:
        if self.finished:
            return
        if self._task is not None:
            self.client._spawn(self.transfers.cancel(self.tid, reason), "file-cancel")
            self._task.cancel()
        else:
            self._tell_pool("file_decline")
        self._finish("cancelled", reason)

    def _cleanup(self, status: str) -> None:
        if self._own_file is not None:
            with contextlib.suppress(OSError):
                self._own_file.close()
            self._own_file = None
        if status != "completed" and self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


class RemoteOutgoingFile(_RemoteTransfer):
    """The owner's file to a contact, offered by the pool; the bytes are put from here as
    the pool reads them (after the contact accepted)."""

    def __init__(
        self, client: RemoteClient, tid: str, peer: str, source: Path, name: str, size: int
    ) -> None:
        super().__init__(client, tid, peer, name, size)
        self.source = source
        client._transfers[tid] = self
        self._task = asyncio.get_running_loop().create_task(
            self._send(), name=f"file-to-pool:{tid}"
        )

    async def _send(self) -> None:
        try:
            data = {"transfer": self.tid, "peer": self.peer, "name": self.name, "size": self.size}
            reply = await self.client._command("file_send", data)
            self.pool = reply.get("pool")
            with self.source.open("rb") as f:
                while not self.finished and (chunk := await asyncio.to_thread(f.read, CHUNK)):
                    # No stall limit: the contact may take minutes to accept; a pool gone
                    # or the transfer's end (the event) stops it.
                    await self.transfers.put(self.tid, chunk, alive=self._pool_alive, stall=None)
            if not self.finished:
                await self.transfers.end(self.tid, alive=self._pool_alive, stall=None)
            # The outcome comes as the pool's TransferFinished; a pool that dies first
            # does not send it.
            while not self.finished:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._finished), self.transfers.check)
                if not self.finished and not await self._pool_alive():
                    self._finish("failed", "the connection pool holding the session stopped")
        except TransferCancelled as e:
            if e.reason == "the other end is gone":
                e.reason = "the connection pool holding the session stopped"
            self._finish(e.status, e.reason, e.by_peer)
        except PuppetError as e:
            self._finish("failed", str(e))
        except OSError as e:
            with contextlib.suppress(Exception):
                await self.transfers.cancel(self.tid, "the bridge could not read the file")
            self._finish("failed", f"could not read the file: {e}")
        except asyncio.CancelledError:
            if not self.finished:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.transfers.cancel(self.tid, "the bridge stopped"))
                self._finish("cancelled", "the bridge stopped")
            raise

    def cancel(self, reason: str = "cancelled") -> None:
        if self.finished:
            return
        self._tell_pool("file_cancel", reason=reason)
        self._finish("cancelled", reason)
        self._task.cancel()

    def ended(self, event: TransferFinished) -> None:
        """The pool's TransferFinished for it."""
        self._finish(event.status, event.reason, event.by_peer)


class RemoteP2PManager:
    """``client.p2p.manager`` of a pooled session."""

    pictures: object = None  # the pool keeps the picture cache

    def __init__(self, client: RemoteClient) -> None:
        self.client = client

    def send_file(
        self,
        peer: str,
        source: str | Path,
        *,
        name: str | None = None,
        size: int | None = None,
        preview: bytes = b"",
        answer_timeout: float | None = None,
    ) -> RemoteOutgoingFile:
        if not isinstance(source, str | Path):
            raise TypeError("a pooled session sends files from a path")
        path = Path(source)
        size = path.stat().st_size if size is None else size
        tid = f"core:{uuid.uuid4().hex}"
        return RemoteOutgoingFile(self.client, tid, peer.lower(), path, name or path.name, size)

    async def fetch_object(self, peer: str, obj: MSNObject, timeout: float = 60.0) -> bytes:
        """The data of ``obj`` from ``peer``, fetched by the pool (checked here too)."""
        if obj.size > MAX_OBJECT:
            raise ObjectFetchError(f"an object of {obj.size} bytes is over {MAX_OBJECT}")
        client = self.client
        tid = f"core:{uuid.uuid4().hex}"
        data = {"transfer": tid, "peer": peer, "msnobject": codec.encode_value(obj),
                "timeout": timeout}  # fmt: skip
        try:
            reply = await client._command("fetch_object", data)
            pool = reply.get("pool")

            async def alive() -> bool:
                holds = getattr(client.link, "pool_holds", None)
                return holds is None or pool is None or bool(await holds(client.owner, pool))

            found = await client.transfers.read_all(tid, MAX_OBJECT, alive=alive)  # type: ignore[union-attr]
        except TransferCancelled as e:
            raise ObjectFetchError(f"the data did not come whole ({e.reason})") from None
        except PuppetError as e:
            raise ObjectFetchError(str(e)) from None
        if not obj.matches(found):
            raise ObjectFetchError("the data does not match the object's SHA1D")
        return found


class RemoteP2P:
    def __init__(self, client: RemoteClient) -> None:
        self.manager = RemoteP2PManager(client)
        self.auto_fetch_pictures = False  # the pool fetches contacts' pictures itself
        self.picture_wanted: object = None
