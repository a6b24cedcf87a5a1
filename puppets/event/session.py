"""Events about the puppet session itself: state, login, sign-out, server notices."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SessionState(Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    BACKING_OFF = "backing off"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SessionStateChanged:
    state: SessionState
    reason: str | None = None
    retry_in: float | None = None  # seconds, when backing off


@dataclass(frozen=True, slots=True)
class LoggedIn:
    protocol: int
    passport: str
    nick: str


@dataclass(frozen=True, slots=True)
class ServerSignedOut:
    """The server sent OUT: ``OTH`` = signed in elsewhere (no automatic reconnect),
    ``SSD`` = server shutting down (reconnect with backoff), or another code."""

    code: str

    @property
    def elsewhere(self) -> bool:
        return self.code == "OTH"


@dataclass(frozen=True, slots=True)
class SystemNotice:
    """A system (maintenance) message: the server goes down in ``minutes``."""

    type: int
    minutes: int | None


@dataclass(frozen=True, slots=True)
class ChallengeAnswered:
    protocol: int


@dataclass(frozen=True, slots=True)
class OwnEndpointsChanged:
    """MSNP16+: where else the owner is signed in (machine GUID -> endpoint name),
    this endpoint excluded."""

    endpoints: dict[str, str]
