"""The appservice listener, the bot's identity on the homeserver, and the Matrix side's
parts: ghosts, portal rooms (a core Side) and events from portal rooms."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from mautrix.appservice import AppService, IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixError, MatrixRequestError
from mautrix.types import JSON, Event, EventType, PresenceState
from mautrix.util import background_task
from mautrix.util.async_db import Database

from ..config import Config
from ..core.commands import CommandProcessor
from ..core.router import Router
from ..db import txn
from ..errors import StartupError
from ..keyed_locks import KeyedLocks
from ..metrics import Metrics, homeserver_error_kind
from ..permissions import PermissionLevel, Permissions
from . import bridge_info, inbox
from .avatars import MediaUploads, OwnerPictures
from .bot import MatrixBot
from .double_puppet import DoublePuppets
from .echoes import without_echoes
from .ghosts import Ghosts
from .ids import GhostIds
from .inbound import MatrixInbound
from .outgoing_files import OutgoingFiles
from .portal_side import MatrixPortalSide
from .settings import MATRIX_OPTIONS
from .state_cache import CachedStateStore
from .txn_flush import TransactionFlush

log = logging.getLogger("msnbridge.matrix")
STOP_GRACE = 5.0  # seconds event handlers in flight get to finish at shutdown


class _Forgetful(set[str]):
    """Stands in for mautrix's in-memory set of transaction IDs, which would drop a new
    transaction reusing an old ID (BridgeAppService keeps the record instead)."""

    def __contains__(self, item: object) -> bool:
        return False

    def add(self, item: str) -> None:
        pass


def transaction_key(txn_id: str, events: list[JSON], ephemeral: list[JSON] | None) -> str:
    """The transaction ID plus a digest of what it carries. Synapse (on SQLite) numbers
    transactions from 1 again after a restart; a retry carries the same events, a new
    transaction reusing an ID does not."""
    content = {"events": [e.get("event_id") for e in events], "ephemeral": ephemeral or []}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    return f"{txn_id}/{digest.hexdigest()[:16]}"


_EVENT_LISTS = ("events", "ephemeral", "de.sorunome.msc2409.ephemeral")


def transaction_body_error(data: object) -> str | None:
    """What is wrong with a transaction body's shape, or None. mautrix reads the body
    assuming an object with lists of objects; anything else would end in a traceback."""
    if not isinstance(data, dict):
        return f"the body is a JSON {type(data).__name__}, not an object"
    if "events" not in data:
        return "the body has no events"
    for key in _EVENT_LISTS:
        value = data.get(key)
        if value is None and key != "events":
            continue
        if not isinstance(value, list):
            return f"{key} is a {type(value).__name__}, not a list"
        if not all(isinstance(event, dict) for event in value):
            return f"{key} holds something that is not an event object"
    return None


# What the state store's update_state acts on; it does nothing with any other event.
_STATE_STORE_TYPES = frozenset(
    t.t
    for t in (
        EventType.ROOM_POWER_LEVELS,
        EventType.ROOM_MEMBER,
        EventType.ROOM_ENCRYPTION,
        EventType.ROOM_CREATE,
    )
)


class BridgeAppService(AppService):
    """An AppService whose record of handled transactions survives restarts: the homeserver
    resends a transaction until it gets a 200, also across a bridge restart."""

    def __init__(self, *args: Any, db: Database, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db = db
        self.transactions = _Forgetful()
        self.is_portal_room: inbox.IsPortalRoom | None = None  # what matrix_inbox keeps
        # Whether a sender is the bot or a ghost (set by MatrixSide).
        self.is_ours: Callable[[object], bool] | None = None
        # Transactions Synapse stored while the bridge was down and may never send.
        self.flush = TransactionFlush(lambda: self.intent, self.id, self.bot_mxid)

    async def _read_transaction_header(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        txn_id, data = await super()._read_transaction_header(request)
        if (problem := transaction_body_error(data)) is not None:
            # One line, no traceback: a broken or hostile sender, not a bridge fault.
            self.log.warning("Refused transaction %r: %s", txn_id[:64], problem)
            raise web.HTTPBadRequest(
                content_type="application/json",
                text=json.dumps({"errcode": "M_BAD_JSON", "error": problem}),
            )
        events = data.get("events") if isinstance(data, dict) else None
        if isinstance(events, list) and self.flush.should_refuse(events):
            # Ours, sent to make Synapse resend what it stored: once refused, its
            # recoverer sends every stored transaction again, oldest first.
            raise web.HTTPServiceUnavailable(
                content_type="application/json",
                text=json.dumps({"errcode": "M_UNKNOWN", "error": "send stored ones first"}),
            )
        return txn_id, data

    async def handle_matrix_event(self, event: Event, ephemeral: bool = False) -> None:
        """mautrix's, except that the state store's handler gets no task (and no room in
        the loop) for an event it would ignore: every message."""
        if ephemeral:
            event.type = event.type.with_class(EventType.Class.EPHEMERAL)
        elif getattr(event, "state_key", None) is not None:
            event.type = event.type.with_class(EventType.Class.STATE)
        else:
            event.type = event.type.with_class(EventType.Class.MESSAGE)

        async def try_handle(handler_func: Callable[[Event], Awaitable[None]]) -> None:
            try:
                await handler_func(event)
            except Exception:
                self.log.exception("Exception in Matrix event handler")

        update_state = self.state_store.update_state if self.state_store else None
        for handler in self.event_handlers:
            if handler == update_state and event.type.t not in _STATE_STORE_TYPES:
                continue
            if self.synchronous_handlers:
                await handler(event)
            else:
                background_task.create(try_handle(handler))

    async def handle_transaction(self, txn_id: str, **kwargs: Any) -> JSON:
        events = kwargs.get("events") or []
        self.flush.saw(events)
        # Only events someone wrote need the durable record: a transaction of nothing but
        # our own echoes (one per message sent into a room) and ephemeral events (typing,
        # receipts: repeating one is harmless) skips the database write.
        is_ours = self.is_ours
        if is_ours is not None:  # echoes are neither parsed nor handled
            kwargs["events"] = without_echoes(events, is_ours)
        if not any(is_ours is None or not is_ours(e.get("sender")) for e in events):
            return await super().handle_transaction(txn_id, **kwargs)
        key = transaction_key(txn_id, events, kwargs.get("ephemeral"))
        if self.is_portal_room is not None:  # before the claim: a kill between loses nothing
            await inbox.record(self.db, events, self.is_portal_room, is_ours)
        if not await txn.claim(self.db, key):
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
        router: Router,
        metrics: Metrics | None = None,
    ) -> None:
        config.check(MATRIX_OPTIONS)
        self.config = config
        self.router = router
        self.metrics = metrics
        self.db = db
        self.commands = commands
        self.permissions = permissions
        self.domain: str = config["homeserver.domain"]
        self.ghosts = GhostIds(config["appservice.username_template"], self.domain)
        self.state_store = CachedStateStore(db)
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
        self.media_base: str = config["homeserver.public_address"] or config["homeserver.address"]
        self.ghost_users = Ghosts(
            self.az,
            db,
            self.ghosts,
            config["appservice.displayname_template"],
            config["bridge.presence_refresh_interval"],
        )
        self.media = MediaUploads(self.az, db)  # display pictures, by SHA1D
        self.outgoing_files = OutgoingFiles(self)  # Matrix media → MSN file transfers
        self.owner_pictures = OwnerPictures(self)  # owners' avatars → MSN display pictures
        router.sessions.listeners.append(self.owner_pictures.on_puppet_event)
        router.sessions.picture_wanted = lambda passport, obj: self.ghost_users.needs_avatar(
            passport, obj.sha1d
        )
        self.double_puppets = DoublePuppets(self)
        self.portal_side = MatrixPortalSide(self)
        self.inbound = MatrixInbound(self)
        router.add_side(self.portal_side)
        self.bot_handler = MatrixBot(self)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._room_locks = KeyedLocks()  # one room's events in the order they came
        self._ephemeral_check: asyncio.Task[None] | None = None
        self._bridge_info: asyncio.Task[int] | None = None
        self._started = False
        self.az.matrix_event_handler(self._handle_event)
        self.az.is_portal_room = self._is_portal_room

        self.az.is_ours = lambda sender: isinstance(sender, str) and self.is_bridge_user(sender)

    async def _is_portal_room(self, room_id: str) -> bool:
        return await self.router.portals.by_room(room_id) is not None

    async def _replay_inbox(self) -> None:
        """Handle again what a killed bridge had taken from the homeserver but not handled,
        before the homeserver sends anything newer (the ping makes it retry)."""
        events = await inbox.left_over(self.db)
        if events:
            log.info("Handling %d Matrix events taken before the bridge stopped", len(events))
        for raw in events:
            sender = raw.get("sender")
            if isinstance(sender, str) and self.is_bridge_user(sender):
                # An echo of our own, recorded before echoes were left out: nothing to do.
                await inbox.done(self.db, str(raw.get("event_id")))
                continue
            try:
                event = Event.deserialize(raw)
            except Exception:
                log.warning("Dropping an unreadable matrix_inbox event %s", raw.get("event_id"))
                await inbox.done(self.db, str(raw.get("event_id")))
                continue
            await self.az.handle_matrix_event(event)

    async def _handle_event(self, event: Event) -> None:
        # mautrix runs each handler in its own task; remember them so stop() can let the
        # ones in flight (a command being answered) finish.
        started = Metrics.clock()
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        # One room's events are handled in the order they came (each runs in its own
        # task): take the room's lock before anything else can suspend this one.
        room_id = getattr(event, "room_id", None)
        ephemeral = event.type.is_ephemeral
        try:
            if not room_id or ephemeral:
                await self._dispatch(event, started)
            else:
                async with self._room_locks.hold(room_id):
                    try:
                        await self._dispatch(event, started)
                    finally:
                        await self._handled(event)
        finally:
            self._inflight.discard(task)  # type: ignore[arg-type]

    async def _handled(self, event: Event) -> None:
        """Handled (or failed for good): off matrix_inbox. Not when cancelled at shutdown."""
        cancelled = (task := asyncio.current_task()) is not None and task.cancelling()
        # Our own echoes (one per message sent into a room) were never recorded.
        sender = getattr(event, "sender", None)
        if isinstance(sender, str) and self.is_bridge_user(sender):
            return
        if event.type.t in inbox.KEPT_TYPES and not cancelled:
            await inbox.done(self.db, str(getattr(event, "event_id", "")))

    async def _dispatch(self, event: Event, started: float) -> None:
        if event.type == EventType.ROOM_MEMBER:
            self.owner_pictures.on_member(event)  # type: ignore[arg-type]
        try:
            if await self.inbound.handle(event, started):
                return
            if not event.type.is_ephemeral:
                await self.bot_handler.handle_event(event)
        except MatrixRequestError as e:
            if self.metrics is not None:
                self.metrics.homeserver_error(homeserver_error_kind(e.http_status))
            raise

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
            await self._replay_inbox()
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
        await self.ghost_users.load_visible()
        self.ghost_users.start()
        self._bridge_info = asyncio.get_running_loop().create_task(
            bridge_info.send_to_existing_rooms(self), name="matrix-bridge-info"
        )
        if not self.config["appservice.ephemeral_events"]:
            log.warning("appservice.ephemeral_events is off: typing from Matrix will not reach MSN")
        else:
            self._ephemeral_check = asyncio.get_running_loop().create_task(
                self._check_ephemeral(self.config["bridge.ephemeral_check_after"])
            )

    async def _check_ephemeral(self, after: float) -> None:
        # Synapse pushes ephemeral events (MSC2409) only when the registration asks for
        # them and the version supports it; nothing in the API says so up front.
        await asyncio.sleep(after)
        if not self.inbound.ephemeral_seen:
            log.warning(
                "No ephemeral events (typing, receipts, presence) came from the homeserver "
                "in %d s. Typing from Matrix will not reach MSN: check that the registration "
                "has receive_ephemeral: true (regenerate it with msnbridge -g) and that the "
                "homeserver supports MSC2409 (Synapse 1.22 or later).",
                after,
            )

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
        self.az.flush.stop()
        for task in (self._ephemeral_check, self._bridge_info):
            if task is not None:
                task.cancel()
        await self.ghost_users.stop()
        await self.outgoing_files.stop()
        await self.owner_pictures.stop()
        await self.inbound.stop()
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
