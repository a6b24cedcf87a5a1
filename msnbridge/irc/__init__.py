"""IRC side of the bridge. The connection layer: :class:`IRCConnection` (one nick kept
connected), its send queue and reconnection pacing, and pure line helpers in ``lines``."""

from .backoff import Backoff, ReconnectScheduler
from .connection import IRCConnection, IRCRefusedError, SendResult
from .events import (
    ConnectionEvent,
    Disconnected,
    IRCEvent,
    Kind,
    NickChanged,
    Registered,
    TakenOver,
)
from .refusal import Refusal, RefusalKind, classify
from .sendqueue import Priority, QueuedLine, SendQueue
from .settings import DEFAULT_CAPS, IRCSettings

__all__ = [
    "DEFAULT_CAPS",
    "Backoff",
    "ConnectionEvent",
    "Disconnected",
    "IRCConnection",
    "IRCEvent",
    "IRCRefusedError",
    "IRCSettings",
    "Kind",
    "NickChanged",
    "Priority",
    "QueuedLine",
    "ReconnectScheduler",
    "Refusal",
    "RefusalKind",
    "Registered",
    "SendQueue",
    "SendResult",
    "TakenOver",
    "classify",
]
