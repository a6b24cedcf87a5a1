"""Files offered from MSN: accepted within the configured limits into a temporary file,
handed to the sides that carry files (Matrix media), then removed.

A refused or failed transfer is told in the portal (and to the sender's Messenger, which
shows the decline or cancel). For users bridged from IRC a file is uploaded to the
homeserver and its link (``irc.files.public_media_url``, where media needs no login) said
in the conversation channel; without that key the file is declined and they get a notice
with its name and size. Legacy MSNFTP offers, which need a direct connection, are
cancelled by the puppet library; the owner is told here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from puppets.event.transfer import (
    FileOffered,
    LegacyInvitationRefused,
    RichContentReceived,
    TransferFinished,
)

from ..formatting import MessageKind, RichText
from ..temp_files import remove as remove_temp
from ..temp_files import reserve as reserve_temp
from .sides import NoticeKind, PortalMessage

if TYPE_CHECKING:
    from puppets.p2p import Transfer

    from .router import Router

log = logging.getLogger("msnbridge.router.files")

# How long a voice clip's data is waited for before it is said in words instead.
VOICE_CLIP_TIMEOUT = 20.0


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


class MsnFileRouter:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._incoming: dict[int, tuple[str, Path]] = {}  # id(transfer) -> owner, temp path

    @property
    def _limits(self) -> tuple[int, int, str]:
        c = self.router.sessions.config
        return c["files.max_incoming_size"], c["files.max_in_flight"], c["files.temp_dir"]

    def _sides(self) -> list[object]:
        return [s for s in self.router.sides if hasattr(s, "deliver_file")]

    def _uploader(self) -> object | None:
        return next((s for s in self.router.sides if hasattr(s, "upload_file")), None)

    def _public_media_url(self) -> str:
        """The base URL of links to files for IRC users; "" when they get a notice."""
        url = self.router.sessions.config["irc.files.public_media_url"] or ""
        return url.rstrip("/") if self._uploader() is not None else ""

    def in_flight(self, owner: str) -> int:
        return sum(1 for o, _ in self._incoming.values() if o == owner)

    async def handle(self, owner: str, event: object) -> None:
        if isinstance(event, FileOffered):
            await self._offered(owner, event)
        elif isinstance(event, TransferFinished) and event.incoming:
            await self._finished(owner, event)
        elif isinstance(event, LegacyInvitationRefused):
            what = f" ({event.file_name})" if event.file_name else ""
            await self._tell(
                owner,
                event.sender,
                f"{event.sender} tried to send a file{what} with an old Messenger transfer "
                "that the bridge cannot take; they were told it was not accepted.",
            )

    async def _offered(self, owner: str, event: FileOffered) -> None:
        max_size, max_flight, temp_dir = self._limits
        transfer = event.transfer
        reason = None
        if owner.startswith("@") and not self._sides():
            reason = "files are not bridged for this login"
        elif not owner.startswith("@") and not self._public_media_url():
            reason = "this bridge has no public address for files on IRC"
        elif event.size > max_size:
            reason = f"it is larger than the bridge's limit of {human_size(max_size)}"
        elif self.in_flight(owner) >= max_flight:
            reason = f"{max_flight} files are on their way already"
        if reason is not None:
            transfer.decline()
            await self._tell(
                owner,
                event.sender,
                f"A file from {event.sender} ({event.name}, {human_size(event.size)}) was "
                f"refused: {reason}.",
            )
            return
        path = reserve_temp(temp_dir, "in-")
        self._incoming[id(transfer)] = (owner, path)
        try:
            transfer.accept(path)
        except Exception:
            self._incoming.pop(id(transfer), None)
            remove_temp(path)
            raise

    async def _finished(self, owner: str, event: TransferFinished) -> None:
        entry = self._incoming.pop(id(event.transfer), None)
        if entry is None:
            return
        _, path = entry
        try:
            if event.status != "completed":
                await self._tell(
                    owner,
                    event.peer,
                    f"A file from {event.peer} ({event.name}) did not arrive: {event.reason}.",
                )
                return
            portal = await self.router.portals.get_or_create(owner, [event.peer])
            nick = self._nick(owner, event.peer)
            if not owner.startswith("@"):
                await self._link(owner, portal, event.peer, nick, path, event.name, event.size)
                return
            for side in self._sides():
                if not side.serves(portal):  # type: ignore[attr-defined]
                    continue
                try:
                    await self.router.ensure_on(side, portal)  # type: ignore[arg-type]
                    await side.deliver_file(  # type: ignore[attr-defined]
                        portal, event.peer, nick, path, event.name, event.size
                    )
                except Exception:
                    log.exception("The %s side failed to deliver a file", side.name)  # type: ignore[attr-defined]
                    await self._tell(
                        owner,
                        event.peer,
                        f"A file from {event.peer} ({event.name}) arrived "
                        "but could not be shown here.",
                    )
        finally:
            remove_temp(path)

    async def _link(
        self, owner: str, portal: object, peer: str, nick: str, path: Path, name: str, size: int
    ) -> None:
        """For IRC: the file in the homeserver's media repository, its link said by the
        contact in the conversation channel."""
        base, uploader = self._public_media_url(), self._uploader()
        try:
            if not base or uploader is None:
                raise RuntimeError("no public media address")
            mxc = await uploader.upload_file(path, name, size)  # type: ignore[attr-defined]
            server, _, media_id = mxc.removeprefix("mxc://").partition("/")
            link = f"{base}/{quote(server)}/{quote(media_id)}/{quote(name)}"
        except Exception:
            log.exception("A file for an IRC user could not be uploaded")
            await self._tell(
                owner,
                peer,
                f"A file from {peer} ({name}, {human_size(size)}) arrived but could not be "
                "put where IRC can fetch it.",
            )
            return
        text = f"sent a file: {name} ({human_size(size)}) {link}"
        message = PortalMessage(
            peer.lower(), nick, RichText.from_plain(text, MessageKind.EMOTE), MessageKind.EMOTE
        )
        for side in self.router.serving(portal):  # type: ignore[arg-type]
            try:
                await self.router.ensure_on(side, portal)  # type: ignore[arg-type]
                await side.deliver_message(portal, message)  # type: ignore[arg-type]
            except Exception:
                log.exception("The %s side failed to show a file's link", side.name)

    async def voice_clip(
        self, owner: str, portal: object, event: RichContentReceived, nick: str
    ) -> bool:
        """A voice clip fetched whole from the contact (its MSNObject, over MSNSLP) and
        posted as an audio file where files are carried; False to say it in words."""
        obj = event.msnobject
        client = self.router.sessions.get(owner)
        if event.kind != "voice clip" or obj is None or client is None:
            return False
        sides = [s for s in self._sides() if s.serves(portal)]  # type: ignore[attr-defined]
        if not sides:
            return False
        try:
            data = await client.p2p.manager.fetch_object(
                event.sender, obj, timeout=VOICE_CLIP_TIMEOUT
            )
        except Exception as e:
            log.info("The voice clip from %s did not come whole: %s", event.sender, e)
            return False
        path = reserve_temp(self._limits[2], "in-")
        try:
            path.write_bytes(data)  # at most the client's object bound (1 MiB)
            delivered = False
            for side in sides:
                try:
                    await self.router.ensure_on(side, portal)  # type: ignore[arg-type]
                    await side.deliver_file(  # type: ignore[attr-defined]
                        portal, event.sender, nick, path, "voice clip.wav", len(data)
                    )
                    delivered = True
                except Exception:
                    log.exception("The %s side failed to post a voice clip", side.name)  # type: ignore[attr-defined]
            return delivered
        finally:
            remove_temp(path)

    def _nick(self, owner: str, passport: str) -> str:
        client = self.router.sessions.get(owner)
        contact = client.contacts.get(passport) if client is not None else None
        return contact.nick if contact is not None and contact.nick else passport

    async def _tell(self, owner: str, passport: str, text: str) -> None:
        await self.router.events.notify(owner, NoticeKind.INFO, text)

    def forget(self, transfer: Transfer) -> None:
        entry = self._incoming.pop(id(transfer), None)
        if entry is not None:
            remove_temp(entry[1])
