"""Events about conversations on switchboards, and the outcome of sending a message.

Every event carries the :class:`~puppets.switchboard.Switchboard` it came from and, when
a :class:`~puppets.conversation.Conversation` relayed it, that conversation too and who
was in it at the time (``people``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..conversation import Conversation
    from ..message import Datacast, Invitation, TextMessage
    from ..msnobject import MSNObject
    from ..switchboard import Switchboard

__all__ = [
    "ConversationEvent",
    "DatacastReceived",
    "DeliveryResult",
    "DeliveryStatus",
    "EmoticonsAnnounced",
    "InvitationReceived",
    "MessageReceived",
    "NudgeReceived",
    "OwnMessageFromOtherEndpoint",
    "P2PPayloadReceived",
    "ParticipantJoined",
    "ParticipantLeft",
    "SwitchboardClosed",
    "TypingReceived",
    "UnknownPayloadReceived",
]


class DeliveryStatus(Enum):
    """What became of a sent message, from best to worst (see :meth:`DeliveryResult.worst`)."""

    ACKED = "acked"  # the server confirmed delivery (ACK to MSG A)
    SENT = "sent"  # sent U/N; no NAK came within the grace period
    SENT_AS_OIM = "sent as an offline message"  # MSNP13+: stored for an offline contact
    NO_ANSWER = "no answer"  # no ACK/NAK in time, or nobody joined the switchboard
    NAKED = "naked"  # NAK, or an error code answering the MSG
    OFFLINE = "offline"  # CAL answered 217 for every invitee
    FAILED = "failed"  # the link was lost or no switchboard could be opened


_SEVERITY = {status: rank for rank, status in enumerate(DeliveryStatus)}


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status: DeliveryStatus
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Delivered as far as the protocol can tell (ACKED or SENT)."""
        return self.status in (
            DeliveryStatus.ACKED,
            DeliveryStatus.SENT,
            DeliveryStatus.SENT_AS_OIM,
        )

    @staticmethod
    def worst(results: list[DeliveryResult]) -> DeliveryResult:
        """The result of a message sent in several parts: its worst part."""
        if not results:
            return DeliveryResult(DeliveryStatus.FAILED, "nothing was sent")
        return max(results, key=lambda r: _SEVERITY[r.status])


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationEvent:
    switchboard: Switchboard
    conversation: Conversation | None = None
    # The conversation's participants when the event was read (set with ``conversation``):
    # a handler that runs later must not file a 1:1 message under people who joined since.
    people: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MessageReceived(ConversationEvent):
    sender: str
    nick: str
    message: TextMessage


@dataclass(frozen=True, slots=True)
class OwnMessageFromOtherEndpoint(ConversationEvent):
    """MSNP16+: the owner wrote this from another of their endpoints (``email;{guid}``)
    in a switchboard the bridge is in; never a contact's message."""

    endpoint: str  # the machine GUID of the endpoint it came from ("" if not given)
    message: TextMessage


@dataclass(frozen=True, slots=True)
class TypingReceived(ConversationEvent):
    """A typing notice; MSN repeats them every ~4 s and sends no "stopped" notice."""

    sender: str


@dataclass(frozen=True, slots=True)
class NudgeReceived(ConversationEvent):
    sender: str


@dataclass(frozen=True, slots=True)
class DatacastReceived(ConversationEvent):
    """A datacast other than a nudge (wink, voice clip, action message)."""

    sender: str
    datacast: Datacast


@dataclass(frozen=True, slots=True)
class InvitationReceived(ConversationEvent):
    sender: str
    invitation: Invitation


@dataclass(frozen=True, slots=True)
class UnknownPayloadReceived(ConversationEvent):
    sender: str
    content_type: str


@dataclass(frozen=True, slots=True)
class P2PPayloadReceived(ConversationEvent):
    """An ``application/x-msnmsgrp2p`` payload; the client's P2P layer consumes it."""

    sender: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class EmoticonsAnnounced(ConversationEvent):
    """``text/x-mms-emoticon`` / ``text/x-mms-animemoticon``: the custom emoticons the
    next message uses, as (shortcut, MSNObject) pairs."""

    sender: str
    emoticons: list[tuple[str, MSNObject]]
    animated: bool = False


@dataclass(frozen=True, slots=True)
class ParticipantJoined(ConversationEvent):
    passport: str
    nick: str


@dataclass(frozen=True, slots=True)
class ParticipantLeft(ConversationEvent):
    passport: str
    timed_out: bool  # BYE email 1: the server timed the session out


@dataclass(frozen=True, slots=True)
class SwitchboardClosed(ConversationEvent):
    """The switchboard link ended: we left, everyone else left, or it broke."""

    reason: str
    error: BaseException | None = None
