"""The client's side of P2P: routes switchboard events to the :class:`P2PManager`,
fetches pictures and emoticons as they are announced, and answers what it cannot carry.

Legacy MSNFTP invitations (``text/x-msmsgsinvite``) need a direct connection: they are
answered with ``CANCEL`` / ``REJECT_NOT_INSTALLED`` (the sender's Messenger shows that the
transfer was not accepted) and reported as :class:`LegacyInvitationRefused`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from ..event.contact import PresenceChanged
from ..event.conversation import (
    DatacastReceived,
    DeliveryResult,
    EmoticonsAnnounced,
    InvitationReceived,
    P2PPayloadReceived,
    UnknownPayloadReceived,
)
from ..event.transfer import EmoticonReceived, LegacyInvitationRefused, RichContentReceived
from ..mime import build_message
from ..msnobject import MSNObject, build_emoticon_list, parse_optional
from .manager import ObjectFetchError, P2PManager
from .pictures import PictureCache
from .transfer import TransferError

__all__ = ["P2PService"]

log = logging.getLogger("puppets.p2p")

INK_TYPES = frozenset({"application/x-ms-ink", "image/gif"})
DATACAST_KINDS = {2: "wink", 3: "voice clip"}


class _Submitter(Protocol):
    def submit(self, payloads: list[bytes], ack: str = "A") -> Awaitable[DeliveryResult]: ...


class _Owner(Protocol):
    """What the service needs of its client (no import of the Client class)."""

    def conversation(self, passports: Iterable[str]) -> _Submitter: ...


def build_invitation_cancel(cookie: str, code: str = "REJECT_NOT_INSTALLED") -> bytes:
    body = (
        f"Invitation-Command: CANCEL\r\nInvitation-Cookie: {cookie}\r\nCancel-Code: {code}\r\n\r\n"
    )
    return build_message(
        [("Content-Type", "text/x-msmsgsinvite; charset=UTF-8")], body.encode("utf-8")
    )


def build_emoticon_payload(pairs: list[tuple[str, MSNObject]], animated: bool = False) -> bytes:
    """The message announcing custom emoticons; send it just before the text using them."""
    kind = "text/x-mms-animemoticon" if animated else "text/x-mms-emoticon"
    body = build_emoticon_list(pairs).encode("utf-8")
    return build_message([("Content-Type", kind)], body)


class _ConversationLink:
    def __init__(self, owner: _Owner) -> None:
        self.owner = owner

    def post(self, peer: str, payload: bytes) -> Awaitable[DeliveryResult]:
        return self.owner.conversation([peer]).submit([payload], "D")


class P2PService:
    def __init__(
        self,
        owner: _Owner,
        passport: str,
        emit: Callable[[object], None],
        pictures: PictureCache | None = None,
    ) -> None:
        self.emit = emit
        self.manager = P2PManager(passport, _ConversationLink(owner), emit, pictures=pictures)
        self.auto_fetch_pictures = False  # fetch contacts' pictures as they are announced
        self.auto_fetch_emoticons = False
        # Asked before fetching an announced picture: False skips it (the application has
        # it already, e.g. from before a restart). None: fetch every new picture.
        self.picture_wanted: Callable[[str, MSNObject], Awaitable[bool]] | None = None
        self.max_concurrent_fetches = 2
        self._fetching = asyncio.Semaphore(self.max_concurrent_fetches)
        self._seen_pictures: dict[str, str] = {}  # passport -> SHA1D last fetched
        self._tasks: set[asyncio.Task[object]] = set()

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self.manager.close()
        for task in list(self._tasks):
            task.cancel()

    # --- events from the client ---

    def observe(self, event: object) -> None:
        """Every client event passes here (presence changes start picture fetches)."""
        if isinstance(event, PresenceChanged) and event.status == "FLN":
            self.manager.peer_gone(event.passport)
        if not self.auto_fetch_pictures or not isinstance(event, PresenceChanged):
            return
        obj = event.msnobject
        if obj is None or event.status == "FLN":
            return
        if self._seen_pictures.get(event.passport) == obj.sha1d:
            return
        self._seen_pictures[event.passport] = obj.sha1d
        self._spawn(self._fetch_picture(event.passport, obj))

    async def _fetch_picture(self, passport: str, obj: MSNObject) -> None:
        wanted = self.picture_wanted
        if wanted is not None and not await wanted(passport, obj):
            return
        async with self._fetching:
            try:
                await self.manager.fetch_picture(passport, obj)
            except (ObjectFetchError, TransferError, TimeoutError) as e:
                self._seen_pictures.pop(passport, None)  # try again when announced again
                log.info("p2p: no display picture from %s: %s", passport, e)

    def handle(self, event: object) -> bool:
        """A conversation event; True when it was consumed (not for the application)."""
        if isinstance(event, P2PPayloadReceived):
            self.manager.feed(event.sender, event.payload)
            return True
        if isinstance(event, EmoticonsAnnounced) and self.auto_fetch_emoticons:
            for shortcut, obj in event.emoticons:
                self._spawn(self._fetch_emoticon(event.sender, shortcut, obj, event.animated))
        elif isinstance(event, InvitationReceived):
            self._refuse_legacy(event)
        elif isinstance(event, DatacastReceived) and event.datacast.id in DATACAST_KINDS:
            kind = DATACAST_KINDS[event.datacast.id]
            obj = parse_optional(event.datacast.data)
            self.emit(RichContentReceived(event.sender, kind, obj))
        elif isinstance(event, UnknownPayloadReceived) and event.content_type in INK_TYPES:
            self.emit(RichContentReceived(event.sender, "ink", None, event.content_type))
        return False

    async def _fetch_emoticon(
        self, sender: str, shortcut: str, obj: MSNObject, animated: bool
    ) -> None:
        async with self._fetching:
            try:
                data = await self.manager.fetch_object(sender, obj)
            except (ObjectFetchError, TransferError, TimeoutError) as e:
                log.info("p2p: emoticon %r from %s not fetched: %s", shortcut, sender, e)
                return
        self.emit(EmoticonReceived(sender, shortcut, obj, data, animated))

    def _refuse_legacy(self, event: InvitationReceived) -> None:
        inv = event.invitation
        if inv.command.upper() != "INVITE" or not inv.cookie:
            return
        size_text = inv.fields.get("Application-FileSize", "")
        payload = build_invitation_cancel(inv.cookie)
        self._spawn(event.switchboard.send_payload(payload, "N"))
        self.emit(
            LegacyInvitationRefused(
                event.sender,
                inv.application or "",
                inv.fields.get("Application-File", ""),
                int(size_text) if size_text.isdigit() else None,
            )
        )
