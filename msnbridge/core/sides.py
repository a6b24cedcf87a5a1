"""What a side (Matrix, IRC) offers the core, and what the core hands it.

The core decides *which* conversation and *which* people; each side renders for itself.
A side implements :class:`Side` and registers with ``Router.add_side``; in the other
direction it calls the Router (``send``, ``send_typing``, ``send_nudge``, ``open_portal``).
Optional hook (called when present): ``conversation_grew(direct, group)`` when a 1:1
conversation became a group chat with a portal of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from puppets.contacts import Contact
from puppets.event.conversation import DeliveryResult

from ..db.portal import Portal
from ..formatting import MessageKind, RichText
from .text_safety import one_line

__all__ = [
    "HELD",
    "ContactChange",
    "NoticeKind",
    "OwnerNotice",
    "PortalMessage",
    "Side",
]


# What deliver_message returns when nobody can read the message yet (an IRC channel with
# none of its readers in it): the side counts it itself once shown or dropped, so the
# router does not count it delivered.
HELD = "\x00held"


@dataclass(frozen=True, slots=True)
class PortalMessage:
    """A message to show in a portal.

    ``sender`` is the MSN passport of who wrote it; None when it was written on another
    side of the bridge (the owner, or someone relayed through the owner's session), in
    which case ``display`` says who ("" = the owner themselves).
    """

    sender: str | None
    nick: str  # the MSN nick (URL-decoded), or the display name on the origin side
    rich: RichText
    kind: MessageKind = MessageKind.TEXT
    origin_side: str = "msn"  # "msn", "matrix" or "irc"
    display: str | None = None  # relayed sender's name on the origin side (sender None)
    sent_at: float | None = None  # original unix time (offline messages); None = now
    # The same on every delivery of this message, also one repeated after a restart: a
    # side that can (Matrix: the transaction id) makes a repeat no second message.
    txn_id: str | None = None
    # Custom emoticons of an MSN message: (shortcut, image URL) for sides that show them.
    emoticons: tuple[tuple[str, str], ...] = ()

    # The owner wrote it from another endpoint of their MSN account (MPOP): a side that
    # can speak as the owner (Matrix double puppeting, the owner's IRC puppet) does.
    own_other_endpoint: bool = False

    def __post_init__(self) -> None:
        # Names are one line on every side (text_safety.one_line).
        object.__setattr__(self, "nick", one_line(self.nick))
        if self.display is not None:
            object.__setattr__(self, "display", one_line(self.display))


class NoticeKind(enum.Enum):
    MAIL = "mail"
    MAINTENANCE = "maintenance"
    SIGNED_OUT = "signed_out"  # OUT OTH, or a session that stopped for good
    LOGIN_FAILED = "login_failed"
    CONNECTION = "connection"  # the MSN session is down for a while, or back
    CONTACTS = "contacts"  # someone added us (RL), a contact was added/removed
    INFO = "info"


@dataclass(frozen=True, slots=True)
class OwnerNotice:
    """Something the owner must hear about, outside any conversation (the bot's DM)."""

    kind: NoticeKind
    text: str


class ContactChange(enum.Enum):
    PRESENCE = "presence"
    NICK = "nick"
    PSM = "psm"
    ADDED = "added"  # to the forward list
    REMOVED = "removed"


@runtime_checkable
class Side(Protocol):
    """One side of the bridge. Every method reports failures by itself (logs, metrics):
    the router keeps going with the other sides."""

    name: str  # "matrix" or "irc"; also the metrics direction suffix (msn_to_<name>)

    def serves(self, portal: Portal) -> bool:
        """Whether this portal is shown on this side (e.g. its owner is a user here, or it
        has a channel here). Portals a side does not serve never reach its deliver_*."""
        ...

    async def ensure_portal(self, portal: Portal) -> None:
        """Create the room/channel for the portal if it has none (``chat`` command, first
        message); store its id on the portal (the router saves it)."""
        ...

    async def deliver_message(self, portal: Portal, message: PortalMessage) -> str | None:
        """Show the message; returns the side's id for it (Matrix event id), or None."""
        ...

    async def deliver_typing(self, portal: Portal, passport: str) -> None: ...

    async def deliver_nudge(self, portal: Portal, passport: str, nick: str) -> None: ...

    async def participant_joined(self, portal: Portal, passport: str, nick: str) -> None: ...

    async def participant_left(self, portal: Portal, passport: str) -> None: ...

    async def delivery_failed(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        """A message that came from this side (``origin_id``, its plain ``text``) did not
        reach MSN: tell the sender, naming the message and the status."""
        ...

    async def owner_notice(self, owner: str, notice: OwnerNotice) -> None:
        """Only the side the owner uses acts on it (see Router: it asks every side)."""
        ...

    async def delivery_note(
        self, portal: Portal, origin_id: str | None, text: str, result: DeliveryResult
    ) -> None:
        """A message from this side reached MSN in another way than a chat (stored as an
        offline message, MSNP13+): tell the sender how."""
        ...

    async def contact_changed(self, owner: str, contact: Contact, change: ContactChange) -> None:
        """Presence, nick, personal message or list membership of one of the owner's
        contacts changed (``contact`` is the puppet's live model)."""
        ...
