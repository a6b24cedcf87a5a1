"""A pool's side of transfers with the core: what the core does in-process with a Client's
P2P layer (accept or decline a contact's file, send one, fetch an emoticon or a voice
clip, set the owner's picture), carried out here with the bytes going through
`transfers.Transfers` in chunks (see there for the flow control and the keys).

- A contact's offer (``FileOffered``) is published with ``data["transfer"]`` = its id and
  waits for the core's ``file_accept`` / ``file_decline`` (as the Client's offer waits for
  the application). Accepted, it is written to a temporary file of the pool as it comes
  and pumped to the core from there: the contact's pace is not held up by the core's,
  and only WINDOW chunks at a time are in Redis. The end (completed, or why not) goes
  the same way; the core tells the owner as in-process.
- ``file_send`` offers the contact a file whose bytes the core puts, as they are read;
  the outcome is published as a ``TransferFinished`` with ``data["transfer"]``.
- ``fetch_object`` puts the object's data (an emoticon, a voice clip); the reply says
  its size. ``set_display_picture`` reads the picture the core puts.

The other end gone (the core's heartbeat, or nothing taken for ``Transfers.stall``
seconds) cancels the MSN side too: the contact's Messenger hears a BYE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from puppets.event.transfer import FileOffered, TransferFinished, TransferProgress
from puppets.msnobject import MSNObject
from puppets.p2p.transfer import IncomingFile, OutgoingFile, TransferError

from ..temp_files import remove as remove_temp
from ..temp_files import reserve as reserve_temp
from . import codec
from .link import CommandFailed
from .transfers import CHUNK, TransferCancelled, Transfers

if TYPE_CHECKING:
    from .executor import SessionExecutor, _Held

log = logging.getLogger("msnbridge.pools.transfers")

MAX_PICTURE = 1 << 20  # the owner's display picture (a 96x96 PNG is a few KiB)


class _Incoming:
    """An offer published to the core; once accepted, its pump."""

    def __init__(self, transfer: IncomingFile) -> None:
        self.transfer = transfer
        self.wake = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        self.by_peer = False  # the contact ended it (from its TransferFinished)


class PoolTransfers:
    def __init__(self, executor: SessionExecutor, transfers: Transfers, temp_dir: str) -> None:
        self.executor = executor
        self.transfers = transfers
        self.temp_dir = temp_dir
        self._incoming: dict[str, _Incoming] = {}  # by transfer id
        self._outgoing: dict[str, OutgoingFile] = {}  # by transfer id
        self._tasks: set[asyncio.Task[Any]] = set()

    def _alive(self) -> Any:
        return getattr(self.executor.link, "core_up", None)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- events of the held clients ---

    def on_event(self, held: _Held, event: object) -> bool:
        """True when the event is this module's (published here or consumed)."""
        if isinstance(event, FileOffered):
            tid = self.executor.new_id("t")
            self._incoming[tid] = _Incoming(event.transfer)
            data = self.executor.event_data(held, event)
            data["transfer"] = tid
            self.executor.enqueue(held, "FileOffered", data)
            return True
        if isinstance(event, TransferProgress | TransferFinished):
            transfer = event.transfer
            if transfer.incoming:
                for tid, entry in list(self._incoming.items()):
                    if entry.transfer is transfer:
                        if isinstance(event, TransferFinished):
                            entry.by_peer = event.by_peer
                        entry.wake.set()
                        if entry.pump is None and transfer.finished:
                            del self._incoming[tid]  # an offer that ended unanswered
            elif isinstance(event, TransferFinished):
                tid = next((t for t, o in self._outgoing.items() if o is transfer), None)
                if tid is not None:
                    del self._outgoing[tid]
                    data = self.executor.event_data(held, event)
                    data["transfer"] = tid
                    self.executor.enqueue(held, "TransferFinished", data)
                    # What the core put and nobody will read goes now, and a core still
                    # putting stops.
                    if event.status == "completed":
                        self._spawn(self.transfers.discard(tid), f"pool-file-out:{tid}")
                    else:
                        why = self.transfers.cancel(tid, event.reason, status=event.status)
                        self._spawn(why, f"pool-file-out:{tid}")
            return True
        return False

    # --- a contact's file ---

    def _offer(self, data: dict[str, Any]) -> _Incoming:
        entry = self._incoming.get(str(data["transfer"]))
        if entry is None:
            raise CommandFailed("the file offer is over (cancelled, timed out or answered)")
        return entry

    async def file_accept(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        tid = str(data["transfer"])
        entry = self._offer(data)
        if entry.pump is not None:
            # Taken already (by a core since restarted, whose reader is gone): a second
            # reader would get the bytes from the middle.
            raise CommandFailed("the file is being received already")
        transfer = entry.transfer
        path = reserve_temp(self.temp_dir, "pool-in-")
        sink = path.open("wb", buffering=0)  # unbuffered: the pump reads what is written
        try:
            transfer.accept(sink)
        except Exception as e:
            sink.close()
            remove_temp(path)
            self._incoming.pop(tid, None)
            raise CommandFailed(f"the file offer is over ({e})") from None
        entry.pump = self._spawn(self._pump_in(tid, entry, path, sink), f"pool-file-in:{tid}")
        return {"pool": self.executor.pool}

    async def _pump_in(self, tid: str, entry: _Incoming, path: Path, sink: Any) -> None:
        transfer, sent = entry.transfer, 0
        alive = self._alive()
        try:
            with path.open("rb", buffering=0) as source:
                while True:
                    have = transfer.done
                    if transfer.finished and transfer.status != "completed":
                        break  # the rest of a failed file is not worth passing on
                    if have - sent >= CHUNK or (have > sent and transfer.finished):
                        chunk = os.pread(source.fileno(), min(CHUNK, have - sent), sent)
                        await self.transfers.put(tid, chunk, alive=alive)
                        sent += len(chunk)
                        continue
                    if transfer.finished:
                        break
                    entry.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(entry.wake.wait(), 0.05)
            if transfer.status == "completed" and sent == transfer.size:
                await self.transfers.end(tid, alive=alive)
            else:
                await self.transfers.cancel(
                    tid,
                    transfer.reason or str(transfer.status),
                    status=str(transfer.status),
                    by_peer=entry.by_peer,
                )
        except asyncio.CancelledError:
            # The pool stops: the core is told at once (not only when the lease moves),
            # and the contact hears a BYE.
            transfer.cancel("the bridge stopped")
            with contextlib.suppress(Exception):
                why = self.transfers.cancel(tid, "the connection pool stopped", status="failed")
                await asyncio.shield(why)
            raise
        except TransferCancelled as e:
            # The owner cancelled, or the core is gone: the contact hears a BYE.
            log.info("A file from %s was cancelled on the bridge's side: %s", transfer.peer, e)
            transfer.cancel(e.reason or "cancelled")
        except Exception as e:
            log.warning("A file from %s could not be passed on: %s", transfer.peer, e)
            transfer.cancel("the bridge failed")
            with contextlib.suppress(Exception):
                await self.transfers.cancel(
                    tid, f"the connection pool failed ({e})", status="failed"
                )
        finally:
            with contextlib.suppress(OSError):
                sink.close()
            remove_temp(path)
            self._incoming.pop(tid, None)

    async def file_decline(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        entry = self._incoming.pop(str(data["transfer"]), None)
        if entry is not None and not entry.transfer.finished and not entry.transfer.accepted:
            entry.transfer.decline()
        return {}

    async def file_cancel(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        entry = self._incoming.get(str(data["transfer"]))
        reason = str(data.get("reason") or "cancelled")
        if entry is not None:
            entry.transfer.cancel(reason)
        sending = self._outgoing.get(str(data["transfer"]))
        if sending is not None:
            sending.cancel(reason)
        return {}

    # --- the owner's file ---

    async def file_send(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        tid = str(data["transfer"])
        if tid in self._outgoing:
            return {"pool": self.executor.pool}  # a repeat
        source = self.transfers.stream(tid, alive=self._alive())
        transfer = held.client.p2p.manager.send_file(
            str(data["peer"]),
            _as_transfer_errors(source),
            name=str(data["name"]),
            size=int(data["size"]),
        )
        self._outgoing[tid] = transfer
        return {"pool": self.executor.pool}

    # --- objects ---

    async def fetch_object(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        tid = str(data["transfer"])
        obj = codec.decode_value(data["msnobject"])
        if not isinstance(obj, MSNObject):
            raise CommandFailed("the bridge sent no MSN object to fetch")
        timeout = float(data.get("timeout") or 60.0)
        found = await held.client.p2p.manager.fetch_object(str(data["peer"]), obj, timeout)
        # Put by a task: the core reads once it has the reply.
        self._spawn(self._put_all(tid, found), f"pool-object:{tid}")
        return {"size": len(found), "pool": self.executor.pool}

    async def _put_all(self, tid: str, data: bytes) -> None:
        try:
            await self.transfers.write_all(tid, data, alive=self._alive())
        except TransferCancelled as e:
            log.info("An object's data was not taken by the bridge: %s", e)

    async def set_display_picture(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        tid = data.get("transfer")
        picture = None
        if tid is not None:
            try:
                picture = await self.transfers.read_all(str(tid), MAX_PICTURE, alive=self._alive())
            except TransferCancelled as e:
                raise CommandFailed(f"the picture did not come whole ({e.reason})") from None
        obj = await held.client.set_display_picture(picture)
        return {"sha1d": obj.sha1d if obj is not None else None}

    async def close(self) -> None:
        for entry in list(self._incoming.values()):
            if entry.pump is not None:
                entry.pump.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _as_transfer_errors(source: Any) -> Any:
    """The core's bytes for an OutgoingFile: a core gone is a TransferError there (the
    P2P layer sends the contact a BYE and ends the transfer failed)."""
    try:
        async for chunk in source:
            yield chunk
    except TransferCancelled as e:
        raise TransferError(e.reason) from None
