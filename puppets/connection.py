"""One TCP link to an MSNP server: framing, transaction ids and waiting for replies.

The notification and switchboard sessions are built on :class:`Connection`. It reads in
one task, resolves the future of the request a reply belongs to (by trid and name), and
hands every other command to the session's ``on_command`` callback, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
from collections.abc import Callable, Iterable

from .command import SERVER_NO_TRID, SERVER_PAYLOAD_COMMANDS, Command, CommandReader
from .errors import ConnectionLost, MSNPError, ProtocolError, ReplyTimeout

log = logging.getLogger("puppets.connection")

READ_CHUNK = 16 * 1024
# Commands whose arguments carry credentials (tickets, MD5 answers, switchboard cookies).
_SECRET_ARGS = frozenset({"USR", "ANS", "XFR", "RNG", "CAL"})


def loggable(cmd: Command) -> str:
    """A command for a debug log: no payload bodies, no credentials."""
    if cmd.name in _SECRET_ARGS:
        return f"{cmd.name} {cmd.trid if cmd.trid is not None else ''} <redacted>"
    return str(cmd)


DEFAULT_TIMEOUT = 30.0


class _Pending:
    __slots__ = ("future", "names", "request")

    def __init__(self, future: asyncio.Future[Command], names: frozenset[str], request: str):
        self.future = future
        self.names = names
        self.request = request


class Connection:
    """A framed MSNP link. Create with :meth:`open`, then :meth:`start` the reader."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_command: Callable[[Command], None],
        on_close: Callable[[BaseException | None], None] | None = None,
        name: str = "msnp",
        no_trid: frozenset[str] = SERVER_NO_TRID,
        payload_commands: frozenset[str] = SERVER_PAYLOAD_COMMANDS,
        max_payload: int | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = CommandReader(no_trid=no_trid, payload_commands=payload_commands)
        if max_payload is not None:
            self._codec.max_payload = max_payload
        self._on_command = on_command
        self._on_close = on_close
        self._pending: dict[int, _Pending] = {}
        self._next_trid = 1
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._finished = False
        self.close_reason: BaseException | None = None
        self.name = name
        self.log = log

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl: _ssl.SSLContext | None = None,
        **kwargs: object,
    ) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl, limit=READ_CHUNK), timeout
        )
        return cls(reader, writer, **kwargs)  # type: ignore[arg-type]

    @property
    def no_trid(self) -> frozenset[str]:
        return self._codec.no_trid

    @no_trid.setter
    def no_trid(self, value: frozenset[str]) -> None:
        self._codec.no_trid = value

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def peer(self) -> str:
        peer = self._writer.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._read_loop(), name=f"{self.name}-reader"
            )

    def next_trid(self) -> int:
        trid = self._next_trid
        self._next_trid += 1
        return trid

    # --- sending ---

    def send(self, cmd: Command) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.name}: connection is closed")
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s >>> %s", self.name, loggable(cmd))
        self._writer.write(cmd.encode())

    def send_command(
        self, name: str, *args: str, payload: bytes | None = None, trid: bool = True
    ) -> int | None:
        """Send without waiting for the reply; returns the trid used."""
        t = self.next_trid() if trid else None
        self.send(Command(name, t, list(args), payload))
        return t

    async def request(
        self,
        name: str,
        *args: str,
        payload: bytes | None = None,
        expect: Iterable[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Command:
        """Send a command and wait for the reply with its trid.

        ``expect`` names the commands that count as the reply (default: ``name``); an
        error code always does and raises :class:`MSNPError`.
        """
        trid = self.next_trid()
        waiter = self.expect_reply(trid, name, expect)
        self.send(Command(name, trid, list(args), payload))
        return await self.wait_reply(trid, waiter, timeout)

    def expect_reply(
        self, trid: int, name: str, expect: Iterable[str] | None = None
    ) -> asyncio.Future[Command]:
        fut: asyncio.Future[Command] = asyncio.get_running_loop().create_future()
        names = frozenset(expect) if expect is not None else frozenset({name})
        self._pending[trid] = _Pending(fut, names, name)
        return fut

    async def wait_reply(
        self, trid: int, fut: asyncio.Future[Command], timeout: float = DEFAULT_TIMEOUT
    ) -> Command:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            pending = self._pending.get(trid)
            what = pending.request if pending else "command"
            raise ReplyTimeout(
                f"{self.name}: no answer to {what} {trid} within {timeout:g} s"
            ) from None
        finally:
            self._pending.pop(trid, None)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    @property
    def flushed(self) -> bool:
        """All written bytes went to the socket and the link is open: drain() would
        return at once (a transport with an empty buffer is never paused)."""
        transport = self._writer.transport
        return not transport.is_closing() and transport.get_write_buffer_size() == 0

    # --- receiving ---

    async def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    reason = ConnectionLost(f"{self.name}: server closed the connection")
                    break
                try:
                    commands = self._codec.feed(data)
                except ProtocolError as e:
                    for cmd in e.parsed:
                        self._dispatch(cmd)
                    self.log.warning("%s: protocol error from %s: %s", self.name, self.peer, e)
                    reason = e
                    break
                for cmd in commands:
                    self._dispatch(cmd)
                    if self._closed:
                        return
        except asyncio.CancelledError:
            reason = ConnectionLost(f"{self.name}: closed")
            raise
        except (ConnectionError, OSError) as e:
            reason = ConnectionLost(f"{self.name}: {e}")
        finally:
            self._finish(reason)

    def _dispatch(self, cmd: Command) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s <<< %s", self.name, loggable(cmd))
        if cmd.trid is not None:
            pending = self._pending.get(cmd.trid)
            if pending is not None and not pending.future.done():
                if cmd.is_error:
                    pending.future.set_exception(
                        MSNPError(cmd.error_code or 0, pending.request, cmd.trid)
                    )
                    return
                if cmd.name in pending.names:
                    pending.future.set_result(cmd)
                    return
        try:
            self._on_command(cmd)
        except ProtocolError as e:
            # One malformed line: say what and go on; the rest of the stream is fine.
            self.log.warning(
                "%s: ignoring malformed %s from %s: %s", self.name, cmd.name, self.peer, e
            )
        except Exception:
            # A handler bug must not kill the link; it is logged with the command name only.
            self.log.exception("%s: handler failed on %s", self.name, cmd.name)

    def _finish(self, reason: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._closed = True
        self.close_reason = reason
        err = reason if reason is not None else ConnectionLost(f"{self.name}: closed")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(err)
                pending.future.exception()  # mark retrieved: nobody may await it any more
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()
        if self._on_close is not None:
            cb, self._on_close = self._on_close, None
            cb(reason)

    async def close(
        self, farewell: Command | None = None, *, notify: bool = True, linger: float = 1.0
    ) -> None:
        """Close the link, optionally sending ``farewell`` (e.g. OUT) first.

        ``notify=False`` closes without calling ``on_close`` (a redirect is not a loss).
        After a farewell, waits up to ``linger`` seconds for the server to hang up.
        """
        if not notify:
            self._on_close = None
        if not self._closed and farewell is not None:
            with contextlib.suppress(Exception):
                self._writer.write(farewell.encode())
                await asyncio.wait_for(self._writer.drain(), 2)
                # Let the server read it and hang up first: closing a socket with unread
                # input sends RST, and the server may then never see the farewell.
                if self._task is not None and self._task is not asyncio.current_task():
                    await asyncio.wait({self._task}, timeout=linger)
        self._finish(self.close_reason)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2)
