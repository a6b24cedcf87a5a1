"""File transfers over MSNSLP: one object per offer, incoming or outgoing.

An :class:`IncomingFile` is handed to the application in a ``FileOffered`` event; it
accepts into a path (written as chunks arrive, removed if the transfer does not finish)
or into a binary stream (anything with ``write``), or declines. An :class:`OutgoingFile`
streams from a path or an async byte source. Both report progress and end with one
``TransferFinished``; :meth:`Transfer.wait` returns its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from ..event.transfer import TransferFinished, TransferProgress

if TYPE_CHECKING:
    from .manager import P2PManager
    from .slp import SLPMessage

__all__ = ["IncomingFile", "OutgoingFile", "Transfer", "TransferError"]

log = logging.getLogger("puppets.p2p")

PROGRESS_STEPS = 20  # a progress event every 5 %, at most


class TransferError(Exception):
    pass


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Transfer:
    """What both directions share: identity, progress, the end and its reason."""

    incoming: bool = False

    def __init__(self, manager: P2PManager, peer: str, session_id: int, name: str, size: int):
        self.manager = manager
        self.peer = peer
        self.session_id = session_id
        self.call_id = ""
        self.branch = ""
        self.name = name
        self.size = size
        self.done = 0
        self.status: str | None = None  # set once, when it ends
        self.reason = ""
        self._finished = asyncio.get_running_loop().create_future()
        self._next_report = 0

    @property
    def finished(self) -> bool:
        return self.status is not None

    async def wait(self, timeout: float | None = None) -> str:
        """The final status: completed, declined, cancelled, failed or timed out."""
        return await asyncio.wait_for(asyncio.shield(self._finished), timeout)

    def _progress(self, done: int) -> None:
        self.done = done
        step = max(1, self.size // PROGRESS_STEPS)
        if done >= self._next_report or done >= self.size:
            self._next_report = done + step
            self.manager.emit(
                TransferProgress(self.peer, self.name, done, self.size, self.incoming, self)
            )

    def _finish(self, status: str, reason: str, by_peer: bool = False) -> bool:
        if self.status is not None:
            return False
        self.status, self.reason = status, reason
        self.manager.forget(self)
        self._cleanup(status)
        if not self._finished.done():
            self._finished.set_result(status)
        self.manager.emit(
            TransferFinished(
                self.peer, self.name, self.size, self.incoming, status, reason, by_peer, self
            )
        )
        return True

    def _cleanup(self, status: str) -> None:
        pass

    # called by the manager
    def on_data(self, offset: int, total: int, flags: int, data: bytes) -> None:
        raise TransferError("no data expected")

    def on_response(self, msg: SLPMessage) -> None:
        pass

    def on_bye(self) -> None:
        self._finish("cancelled", "the contact cancelled the transfer", by_peer=True)

    def on_link_lost(self, reason: str) -> None:
        self._finish("failed", reason)


class IncomingFile(Transfer):
    incoming = True

    def __init__(
        self,
        manager: P2PManager,
        peer: str,
        session_id: int,
        invite: SLPMessage,
        name: str,
        size: int,
        preview: bytes,
    ) -> None:
        super().__init__(manager, peer, session_id, name, size)
        self.invite = invite
        self.call_id = invite.call_id
        self.preview = preview
        self.path: Path | None = None
        self._stream: Writable | None = None
        self._own_file: BinaryIO | None = None
        self.accepted = False
        self.last_activity = asyncio.get_running_loop().time()

    def accept(self, destination: str | Path | Writable) -> None:
        """Take the file into ``destination``: a path (created; removed on failure) or a
        binary stream the caller owns."""
        if self.finished or self.accepted:
            raise TransferError(f"the offer is already {self.status or 'accepted'}")
        if isinstance(destination, str | Path):
            self.path = Path(destination)
            self._own_file = self.path.open("wb")
            self._stream = self._own_file
        else:
            self._stream = destination
        self.accepted = True
        self.last_activity = asyncio.get_running_loop().time()
        self.manager.answer_invite(self, 200, "OK")

    def decline(self) -> None:
        if self.finished or self.accepted:
            raise TransferError(f"the offer is already {self.status or 'accepted'}")
        self.manager.answer_invite(self, 603, "Decline")
        self._finish("declined", "declined")

    def cancel(self, reason: str = "cancelled") -> None:
        if self.finished:
            return
        if self.accepted:
            self.manager.send_bye(self)
        else:
            self.manager.answer_invite(self, 603, "Decline")
        self._finish("cancelled", reason)

    def on_data(self, offset: int, total: int, flags: int, data: bytes) -> None:
        if not self.accepted or self._stream is None or self.finished:
            raise TransferError("data for a transfer that is not running")
        if total != self.size or offset != self.done:
            self.manager.send_bye(self)
            self._finish("failed", f"data out of order or of the wrong size ({offset}/{total})")
            return
        self.last_activity = asyncio.get_running_loop().time()
        try:
            self._stream.write(data)
        except (OSError, ValueError) as e:
            self.manager.send_bye(self)
            self._finish("failed", f"could not write the file: {e}")
            return
        self._progress(self.done + len(data))
        if self.done >= self.size:
            self._complete()

    def _complete(self) -> None:
        if self._own_file is not None:
            self._own_file.close()
            self._own_file = None
        self._finish("completed", "received")
        # The receiver ends the session once everything is in.
        self.manager.send_bye(self)

    def _cleanup(self, status: str) -> None:
        if self._own_file is not None:
            with contextlib.suppress(OSError):
                self._own_file.close()
            self._own_file = None
        if status != "completed" and self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


class OutgoingFile(Transfer):
    incoming = False

    def __init__(self, manager: P2PManager, peer: str, session_id: int, name: str, size: int):
        super().__init__(manager, peer, session_id, name, size)
        self.answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.data_ack: asyncio.Future[None] | None = None  # the contact's ack of the data

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop sending; the contact is told (BYE)."""
        if self.finished:
            return
        self.stop.set()
        self.manager.send_bye(self)
        self._finish("cancelled", reason)

    def on_response(self, msg: SLPMessage) -> None:
        if not self.answered.done() and msg.status is not None:
            self.answered.set_result(msg.status)

    def on_bye(self) -> None:
        ack = self.data_ack
        if ack is not None and ack.done() and not ack.cancelled():
            # The ack and the receiver's BYE came in one read: it has everything.
            self._finish("completed", "the contact received every byte")
            return
        self.stop.set()
        if not self.answered.done():
            self.answered.set_result(603)
        super().on_bye()

    def _cleanup(self, status: str) -> None:
        self.stop.set()
        if not self.answered.done():
            self.answered.cancel()
        task = self.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
