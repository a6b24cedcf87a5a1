"""The appservice listener and the bot's identity on the homeserver."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mautrix.appservice import AppService, IntentAPI
from mautrix.appservice.state_store.asyncpg import PgASStateStore
from mautrix.errors import MatrixConnectionError, MatrixError, MatrixRequestError
from mautrix.types import JSON, Event, PresenceState
from mautrix.util.async_db import Database

from ..config import Config
from ..core.commands import CommandProcessor
from ..db import txn
from ..errors import StartupError
from ..permissions import PermissionLevel, Permissions
from .bot import MatrixBot
from .ids import GhostIds

log = logging.getLogger("msnbridge.matrix")
STOP_GRACE = 5.0  # seconds event handlers in flight get to finish at shutdown


class BridgeAppService(AppService):
    """An AppService whose record of handled transactions survives restarts: the homeserver
    resends a transaction until it gets a 200, also across a bridge restart."""

    def __init__(self, *args: Any, db: Database, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db = db

    async def handle_transaction(self, txn_id: str, **kwargs: Any) -> JSON:
        if not await txn.claim(self.db, txn_id):
            self.log.debug("Transaction %s was handled before; skipping it", txn_id)
            return {}
        return await super().handle_transaction(txn_id, **kwargs)


class MatrixSide:
    def __init__(
        self,
        config: Config,
        db: Database,
        commands: CommandProcessor,
        permissions: Permissions,
    ) -> None:
        self.config = config
        self.db = db
        self.commands = commands
        self.permissions = permissions
        self.domain: str = config["homeserver.domain"]
        self.ghosts = GhostIds(config["appservice.username_template"], self.domain)
        self.state_store = PgASStateStore(db)
        self.az = BridgeAppService(
            server=config["homeserver.address"],
            domain=self.domain,
            as_token=config["appservice.as_token"],
            hs_token=config["appservice.hs_token"],
            bot_localpart=config["appservice.bot_username"],
            id=config["appservice.id"],
            log=logging.getLogger("msnbridge.matrix.appservice"),
            verify_ssl=config["homeserver.verify_ssl"],
            state_store=self.state_store,
            ephemeral_events=config["appservice.ephemeral_events"],
            bridge_name="msn",
            db=db,
        )
        self.bot_handler = MatrixBot(self)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._started = False
        self.az.matrix_event_handler(self._handle_event)

    async def _handle_event(self, event: Event) -> None:
        # mautrix runs each handler in its own task; remember them so stop() can let the
        # ones in flight (a command being answered) finish.
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self.bot_handler.handle_event(event)
        finally:
            self._inflight.discard(task)  # type: ignore[arg-type]

    @property
    def bot(self) -> IntentAPI:
        return self.az.intent

    @property
    def bot_mxid(self) -> str:
        return self.az.bot_mxid

    def level_for(self, user_id: str) -> PermissionLevel | None:
        return self.permissions.level_for(user_id)

    def is_bridge_user(self, user_id: str) -> bool:
        """The bot or a ghost: events from these are our own echoes."""
        return user_id == self.bot_mxid or self.ghosts.passport(user_id) is not None

    async def start(self) -> None:
        await self.state_store.upgrade_table.upgrade(self.db)
        host, port = self.config["appservice.hostname"], self.config["appservice.port"]
        await self.az.start(host, port)
        log.info("Appservice listening on %s:%d", host, port)
        try:
            await self._prepare_bot()
        except MatrixConnectionError as e:
            await self.az.stop()
            raise StartupError(
                f"cannot reach the homeserver at {self.config['homeserver.address']} ({e}); "
                f"check homeserver.address"
            ) from None
        except MatrixRequestError as e:
            await self.az.stop()
            if e.http_status in (401, 403):
                raise StartupError(
                    f"the homeserver refused the bridge's as_token ({e.errcode}): load the "
                    f"registration written by `msnbridge -g` into the homeserver and restart it"
                ) from None
            raise StartupError(f"the homeserver refused to set up the bridge bot: {e}") from None
        except BaseException:
            await self.az.stop()
            raise
        self._started = True
        self.az.ready = True

    async def _prepare_bot(self) -> None:
        await self.bot.ensure_registered()
        displayname = self.config["appservice.bot_displayname"]
        try:
            current = await self.bot.get_displayname(self.bot_mxid)
        except MatrixError:
            current = None
        if current != displayname:
            await self.bot.set_displayname(displayname)
        await self.bot.set_presence(PresenceState.ONLINE, ignore_cache=True)
        # A successful ping also makes Synapse retry transactions it held while we were down.
        try:
            duration = await self.az.ping_self()
            log.info("Homeserver reached the appservice in %d ms", duration)
        except MatrixError as e:
            log.warning(
                "The homeserver could not reach the appservice at %s (%s); check "
                "appservice.address and the registration file",
                self.config["appservice.address"],
                e,
            )

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.az.ready = False
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
        try:
            await asyncio.wait_for(
                self.bot.set_presence(PresenceState.OFFLINE, ignore_cache=True), timeout=5
            )
        except (MatrixError, TimeoutError, OSError) as e:
            log.debug("Could not set the bot offline: %s", e)
        await self.az.stop()
