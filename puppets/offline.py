"""Offline messages (MSNP13+): fetching them over RSI when the server says there are
some (at login, and on arrival), delivering each once as an event with its original
send time, deleting them on the server once the client's owner has them safe; and
storing one for an offline contact."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from .errors import PuppetError
from .event.conversation import DeliveryResult, DeliveryStatus
from .event.offline import OfflineMessageReceived
from .services import AccountServices
from .soap.oim import OIMService

log = logging.getLogger("puppets.offline")

# The owner's word that emitted offline messages are safe with it (see Client.offline_ack).
OfflineAck = Callable[[Sequence[OfflineMessageReceived]], Awaitable[None]]


class OfflineMessages:
    def __init__(self, services: AccountServices, emit: Callable[[object], None]) -> None:
        self.services = services
        self._emit = emit
        self._lock = asyncio.Lock()
        self._again = False
        self.ack: OfflineAck | None = None

    @property
    def seen(self) -> set[str]:
        return self.services.seen_offline_ids

    async def fetch(self) -> int:
        """Fetch, deliver (oldest first) and delete what is waiting; the number delivered.
        Ids already delivered (this run or, via ``seen_offline_ids``, an earlier one) are
        deleted without being delivered again."""
        if self._lock.locked():
            self._again = True  # a notice during a fetch: look once more afterwards
            return 0
        delivered = 0
        async with self._lock:
            while True:
                self._again = False
                delivered += await self._fetch_once()
                if not self._again:
                    return delivered

    async def _fetch_once(self) -> int:
        rsi = self.services.rsi()
        infos = await rsi.get_metadata()
        messages = []
        done: list[str] = []
        for info in infos:
            if info.id in self.seen:
                done.append(info.id)
                continue
            try:
                messages.append(await rsi.get_message(info.id))
            except PuppetError as e:
                log.warning("offline message %s could not be fetched: %s", info.id, e)
        messages.sort(key=lambda m: m.sent_at)
        events = [
            OfflineMessageReceived(m.id, m.sender, m.nick, m.text, m.sent_at) for m in messages
        ]
        for event in events:
            self.seen.add(event.id)
            self._emit(event)
        if events and not await self._acknowledged(events):
            # Kept on the server and not counted as seen: the next fetch brings them again.
            self.seen.difference_update(e.id for e in events)
            events = []
        done += [e.id for e in events]
        if done:
            await rsi.delete_messages(done)
        return len(events)

    async def _acknowledged(self, events: list[OfflineMessageReceived]) -> bool:
        """Whether the owner took the messages just emitted (always, without an ``ack``).
        Called before anything else runs after the emission, so the owner can tell what
        its listeners did with them."""
        if self.ack is None:
            return True
        try:
            await self.ack(events)
        except Exception as e:
            log.warning(
                "%d offline messages not taken (%s); left on the server for the next fetch",
                len(events),
                e,
            )
            return False
        return True

    async def send(self, protocol: int, to: str, text: str, nick: str = "") -> DeliveryResult:
        """StoreMessage; SENT_AS_OIM, or FAILED with the service's reason."""
        if not text:
            return DeliveryResult(DeliveryStatus.FAILED, "empty message: nothing to send")
        try:
            await self._oim(protocol).store(to, text, nick)
        except PuppetError as e:
            return DeliveryResult(DeliveryStatus.FAILED, f"offline message not stored: {e}")
        return DeliveryResult(DeliveryStatus.SENT_AS_OIM, f"{to} is offline")

    _oim_client: OIMService | None = None

    def _oim(self, protocol: int) -> OIMService:
        # One OIM client while the HTTP session lasts: it keeps the lock key and the
        # message sequence. A restart of the Client brings a new HTTP session.
        client = self._oim_client
        if client is None or client.http is not self.services.http:
            client = self._oim_client = self.services.oim(protocol)
        return client
