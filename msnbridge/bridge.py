"""The running bridge: configuration, database, sessions, the core router, the sides and
the metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3

import aiohttp
import asyncpg
from mautrix.util.async_db import Database

from puppets import Client, ClientConfig, SessionState
from puppets.stats import ClientStats

from . import log_safety
from .config import Config
from .core.account_commands import register_account_commands
from .core.commands import CommandProcessor
from .core.contact_commands import register_contact_commands
from .core.portal_commands import register_portal_commands
from .core.router import Router
from .core.sessions import Sessions
from .core.sides import NoticeKind
from .db.wait import open_database_when_ready, shown
from .errors import StartupError
from .irc.options import IRCOptions
from .irc.side import IRCSide
from .matrix import MatrixSide
from .metrics import Health, Metrics
from .permissions import PermissionLevel, Permissions
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
        self.router: Router | None = None
        self.matrix: MatrixSide | None = None
        self.irc: IRCSide | None = None  # when irc.enabled; its keys are checked here
        self.irc_options = IRCOptions.from_config(config) if config["irc.enabled"] else None
        self.metrics: Metrics | None = Metrics() if config["metrics.enabled"] else None
        self.puppet_stats = ClientStats()  # totals of every session's own counters
        if self.metrics is not None:
            self.metrics.watch_puppet_stats(self.puppet_stats)
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        log_safety.install()  # before the appservice listens: no token in the access log
        self.db = await self._open_database()
        try:
            if self.metrics is not None:
                self.metrics.set_health_provider(self.health)
                await self.metrics.start_http(
                    self.config["metrics.listen_address"], self.config["metrics.port"]
                )
            if self.config["pools.redis_url"]:
                # Connection pools hold the sessions (docs/deployment.md).
                from .pools.remote_sessions import RemoteSessions

                remote = RemoteSessions(self.config, self.db, self.secrets)
                if self.irc_options is not None:  # and the IRC puppets' connections
                    remote.carry_irc()
                self.sessions = remote
            else:
                remote = None
                self.sessions = Sessions(
                    self.config, self.db, self.secrets, client_factory=self._new_client
                )
            self.sessions.metrics = self.metrics
            self.router = Router(
                self.sessions,
                self.db,
                metrics=self.metrics,
                relay_format=self.config["bridge.relay.format"],
                relay_default=self.config["bridge.relay.on_in_new_rooms"],
                relay_allowed=self.config["bridge.relay.enabled"],
            )
            if remote is not None:  # a pool's message is acknowledged once stored
                remote.settle = self.router.events.inbox_written
            # Events for these owners wait for their sessions instead of failing.
            await self.sessions.expect_restore()
            await self.router.note_interrupted()  # before the appservice hands over events
            register_account_commands(self.commands, self.sessions)
            register_contact_commands(self.commands, self.router)
            register_portal_commands(self.commands, self.router)
            matrix = MatrixSide(
                self.config, self.db, self.commands, self.permissions, self.router, self.metrics
            )
            await matrix.start()
        except BaseException:
            if self.metrics is not None:
                await self.metrics.stop()
            await self.db.stop()
            self.db = None
            raise
        self.matrix = matrix
        # --- IRC side (msnbridge.irc; owned by the IRC side) ---
        if self.irc_options is not None:
            irc = IRCSide(self.irc_options, self.db, self.commands, self.permissions, self.router,
                          connector=remote.irc if remote is not None else None)  # fmt: skip
            await irc.start()  # keeps connecting in the background if the network is down
            self.irc = irc
        # --- end IRC side ---
        await self.router.update_portal_metrics()
        if interrupted := await self.router.report_interrupted():
            log.warning("%d messages were being sent when the bridge stopped", interrupted)
        if replayed := await self.router.events.replay_inbox():
            log.info("Delivering %d MSN messages received before the bridge stopped", replayed)
        restored = await self.sessions.restore(self._may_log_in)
        log.info("msnbridge started; restoring %d MSN sessions", restored)
        for owner, passport in self.sessions.not_allowed.items():
            await self.router.events.notify(
                owner,
                NoticeKind.SIGNED_OUT,
                f"Your MSN login as {passport} was not restored: you no longer have user "
                f"rights on this bridge. You are signed out and your password is forgotten.",
            )
        for owner, reason in self.sessions.unrestorable.items():
            await self.router.events.notify(
                owner,
                NoticeKind.LOGIN_FAILED,
                f"Your MSN login could not be restored: {reason}. Send 'login <passport> "
                f"<password>' to log in again.",
            )

    def _new_client(
        self, config: ClientConfig, http: aiohttp.ClientSession | None = None
    ) -> Client:
        return Client(config, http=http, stats=self.puppet_stats)

    def _may_log_in(self, owner: str) -> bool:
        level = self.permissions.level_for(owner)
        return level is not None and level >= PermissionLevel.USER

    def health(self) -> Health:
        """Serving when the appservice is up; degraded while some MSN session is not online."""
        if self.matrix is None or not self.matrix.az.ready:
            return Health("starting")
        clients = self.sessions.all() if self.sessions is not None else {}
        online = sum(1 for c in clients.values() if c.state is SessionState.ONLINE)
        status = "ok" if online == len(clients) else "degraded"
        return Health(status, {"appservice": "serving", "sessions": len(clients),
                               "sessions_online": online})  # fmt: skip

    async def _open_database(self) -> Database:
        """Waited for while it is starting (db/wait.py); a password is never shown."""
        url = str(self.config["database"])
        try:
            return await open_database_when_ready(url)
        except (OSError, asyncpg.PostgresError, sqlite3.Error) as e:
            raise StartupError(f"cannot open the database {shown(url)}: {e}") from None

    async def stop(self) -> None:
        if self.matrix is None and self.db is None:
            return
        if self.irc is not None:  # IRC side
            await self.irc.stop()
            self.irc = None
        if self.sessions is not None:
            await self.sessions.stop()
        if self.router is not None:
            await self.router.stop()
            self.router = None
        self.sessions = None
        if self.matrix is not None:
            await self.matrix.stop()
            self.matrix = None
        if self.metrics is not None:
            await self.metrics.stop()
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
