"""Events about P2P: file transfers, display pictures, custom emoticons, rich content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..msnobject import MSNObject
    from ..p2p.transfer import IncomingFile, Transfer

__all__ = [
    "DisplayPictureReceived",
    "EmoticonReceived",
    "FileOffered",
    "LegacyInvitationRefused",
    "P2PInvitationDeclined",
    "RichContentReceived",
    "TransferFinished",
    "TransferProgress",
]


@dataclass(frozen=True, slots=True)
class FileOffered:
    """A contact offers a file: call ``transfer.accept(path or stream)`` or ``decline()``."""

    sender: str
    name: str
    size: int
    preview: bytes = field(repr=False)  # a small PNG, or b""
    transfer: IncomingFile = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TransferProgress:
    peer: str
    name: str
    done: int
    size: int
    incoming: bool
    transfer: Transfer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TransferFinished:
    """``status``: completed, declined, cancelled, failed, timed out."""

    peer: str
    name: str
    size: int
    incoming: bool
    status: str
    reason: str
    by_peer: bool  # the other side declined or cancelled
    transfer: Transfer = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class DisplayPictureReceived:
    passport: str
    msnobject: MSNObject
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class EmoticonReceived:
    """A custom emoticon used in a message, with its image once fetched."""

    sender: str
    shortcut: str
    msnobject: MSNObject
    data: bytes = field(repr=False)
    animated: bool = False


@dataclass(frozen=True, slots=True)
class RichContentReceived:
    """Something the bridge cannot carry as such: ``kind`` is wink, voice clip or ink."""

    sender: str
    kind: str
    msnobject: MSNObject | None = None
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class LegacyInvitationRefused:
    """An MSNFTP (``text/x-msmsgsinvite``) offer we answered with a cancel."""

    sender: str
    application: str
    file_name: str
    size: int | None


@dataclass(frozen=True, slots=True)
class P2PInvitationDeclined:
    """An MSNSLP invitation for something we do not do (webcam, games…), declined."""

    sender: str
    euf_guid: str
    app_id: int
