"""Transactions Synapse stored but never sent, flushed after a restart.

While the bridge is down, Synapse stores what it has for it and a recoverer resends it,
oldest first, once the bridge answers. Its scheduler has a race there: a transaction
created just as the recoverer finishes (the scheduler still saw the bridge down, the
recoverer found nothing left and marked it up) is stored and never sent; nothing retries
it until some later request fails. A message in it would be lost without a word.

The bridge cannot see that transaction, but it can make Synapse send it. When the first
transactions after a start carry events from before the start (Synapse was recovering),
the bridge waits until they have stopped coming, sends one event of its own into a room
of its own, and answers the transaction carrying that event 503 once: Synapse marks the
bridge down and its recoverer sends every stored transaction again, oldest first (a
stranded one, then this one). A ping makes the recoverer start at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MNotFound
from mautrix.types import EventType, RoomID

FLUSH_TYPE = EventType.find("fi.msnbridge.flush", EventType.Class.MESSAGE)
ROOM_KEY = "fi.msnbridge.flush_room"  # bot account data: its room for these events
QUIET_SECONDS = 3.0  # no transaction for this long: Synapse's recovery is over
MAX_WAIT_SECONDS = 15.0  # or this long after the recovery was seen, whichever comes first
OLD_MS = 2000  # events older than the start by this much were stored while we were down

log = logging.getLogger("msnbridge.matrix.txn_flush")


class TransactionFlush:
    def __init__(
        self, bot_intent: Callable[[], IntentAPI], appservice_id: str, bot_mxid: str
    ) -> None:
        self._bot_intent = bot_intent  # the appservice's bot, once it has started
        self.appservice_id = appservice_id
        self.bot_mxid = bot_mxid
        self.started_ms = time.time() * 1000
        self._last_seen = time.monotonic()
        # watching → waiting (recovery seen) → sent (our event is out) → refused → done
        self.state = "watching"
        self._tasks: set[asyncio.Task[None]] = set()

    def saw(self, events: list[Any]) -> None:
        """A transaction taken: note when, and whether Synapse was recovering."""
        self._last_seen = time.monotonic()
        if self.state != "watching":
            return
        if any(_ts(e) < self.started_ms - OLD_MS for e in events):
            self.state = "waiting"
            self._spawn(self._flush_when_quiet())

    def should_refuse(self, events: list[Any]) -> bool:
        """Whether to answer this transaction 503: it carries our flush event, once."""
        if self.state not in ("sent", "refused") or not any(self._ours(e) for e in events):
            return False
        if self.state == "refused":
            self.state = "done"  # sent again by the recoverer, after what it had stored
            log.info("Synapse resent its stored transactions")
            return False
        self.state = "refused"
        self._spawn(self._ping())
        return True

    def _ours(self, event: Any) -> bool:
        return (
            isinstance(event, dict)
            and event.get("type") == FLUSH_TYPE.t
            and event.get("sender") == self.bot_mxid
        )

    async def _flush_when_quiet(self) -> None:
        latest = time.monotonic() + MAX_WAIT_SECONDS  # a busy homeserver is never quiet
        while (now := time.monotonic()) < latest:
            idle = now - self._last_seen
            if idle >= QUIET_SECONDS:
                break
            await asyncio.sleep(min(QUIET_SECONDS - idle, latest - now))
        try:
            room = await self._room()
            self.state = "sent"  # before sending: its transaction may come back first
            await self._bot_intent().send_message_event(room, FLUSH_TYPE, {"reason": "restart"})
        except Exception as e:
            self.state = "done"
            log.warning("Could not ask Synapse to resend stored transactions: %s", e)
            return
        log.info("Asked Synapse to resend any transaction it stored while the bridge was down")

    async def _room(self) -> RoomID:
        """The bot's own room for these events, remembered in its account data (an alias
        would need the appservice to reserve an alias namespace)."""
        intent = self._bot_intent()
        try:
            stored = await intent.get_account_data(ROOM_KEY)
        except MNotFound:
            stored = None
        if isinstance(stored, dict) and isinstance(stored.get("room_id"), str):
            return RoomID(stored["room_id"])
        room = await intent.create_room(name="msnbridge (internal)")
        await intent.set_account_data(ROOM_KEY, {"room_id": room})
        return room

    async def _ping(self) -> None:
        await asyncio.sleep(0.5)  # after Synapse has noted the failure
        try:
            await self._bot_intent().appservice_ping(self.appservice_id)
        except Exception as e:  # an older homeserver: its back-off retries a bit later
            log.debug("Could not ping the homeserver: %s", e)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="txn-flush")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _ts(event: Any) -> float:
    if isinstance(event, dict) and isinstance(event.get("origin_server_ts"), int | float):
        return float(event["origin_server_ts"])
    return float("inf")
