"""The running bridge: configuration, database, command processor and the sides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import asyncpg
from mautrix.util.async_db import Database
from yarl import URL

from puppets import SessionState
from puppets.event.session import SessionStateChanged

from .config import Config
from .core.account_commands import register_account_commands
from .core.commands import CommandProcessor
from .core.sessions import Sessions
from .db import open_database
from .db import user as user_db
from .errors import StartupError
from .matrix import MatrixSide
from .permissions import Permissions
from .secrets import SecretBox

log = logging.getLogger("msnbridge")


class Bridge:
    """Start with `await bridge.start()`, stop with `await bridge.stop()`; `run()` does both
    around waiting for SIGTERM/SIGINT."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.permissions = Permissions(config["bridge.permissions"])
        self.secrets = SecretBox(config["bridge.secret_key"])
        self.commands = CommandProcessor()
        self.db: Database | None = None
        self.sessions: Sessions | None = None
        self.matrix: MatrixSide | None = None
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.db = await self._open_database()
        try:
            self.sessions = Sessions(self.config, self.db, self.secrets)
            self.sessions.listeners.append(self._on_puppet_event)
            register_account_commands(self.commands, self.sessions)
            matrix = MatrixSide(self.config, self.db, self.commands, self.permissions)
            await matrix.start()
        except BaseException:
            await self.db.stop()
            self.db = None
            raise
        self.matrix = matrix
        restored = await self.sessions.restore()
        log.info("msnbridge started; restoring %d MSN sessions", restored)

    def _on_puppet_event(self, owner: str, event: object) -> None:
        # A session that stops by itself (signed in elsewhere, password changed) does not
        # reconnect: its owner must hear about it.
        if (
            isinstance(event, SessionStateChanged)
            and event.state is SessionState.STOPPED
            and event.reason != "stopped"
        ):
            text = f"Your MSN session stopped: {event.reason}. Send 'login' to log in again."
            task = asyncio.get_running_loop().create_task(self._tell(owner, text))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _tell(self, owner: str, text: str) -> None:
        if self.matrix is not None and self.db is not None:
            stored = await user_db.get(self.db, owner)
            if stored is not None and stored.side == "matrix" and stored.management_room:
                await self.matrix.bot.send_notice(stored.management_room, text)

    async def _open_database(self) -> Database:
        url = URL(self.config["database"])
        shown = url.with_password("***") if url.password else url  # never log a password
        try:
            return await open_database(str(url))
        except (OSError, asyncpg.PostgresError) as e:
            raise StartupError(f"cannot open the database {shown}: {e}") from None

    async def stop(self) -> None:
        if self.matrix is None and self.db is None:
            return
        if self.sessions is not None:
            await self.sessions.stop()
            self.sessions = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self.matrix is not None:
            await self.matrix.stop()
            self.matrix = None
        if self.db is not None:
            await self.db.stop()
            self.db = None
        log.info("msnbridge stopped")

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self._stopping.wait()
            log.info("Stopping on signal")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            await self.stop()
