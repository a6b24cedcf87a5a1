"""Why an IRC server refused or dropped us, so the caller can choose: retry, wait longer,
or give up on per-user connections and fall back to relay mode."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class RefusalKind(enum.Enum):
    TOO_MANY_CONNECTIONS = "too_many_connections"  # per-host/IP clone limit
    THROTTLED = "throttled"  # reconnecting too fast
    BANNED = "banned"  # K/G/Z-line, AKILL, 465
    BAD_PASSWORD = "bad_password"  # 464 server password, SASL failure
    NETWORK = "network"  # refused, unreachable, timed out, reset
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    message: str


# Wordings of ircd-hybrid/ratbox/solanum, InspIRCd, UnrealIRCd and ngIRCd.
_PATTERNS: tuple[tuple[RefusalKind, re.Pattern[str]], ...] = (
    (RefusalKind.THROTTLED, re.compile(r"throttl|too fast|reconnect(ing)? too", re.I)),
    (
        RefusalKind.TOO_MANY_CONNECTIONS,
        re.compile(
            r"too many (host |user |global |local )?connections"
            r"|too many (clones|users|connections) (from|on|for)"
            r"|max(imum)? (number of )?connections|no more connections|server is full",
            re.I,
        ),
    ),
    (
        RefusalKind.BANNED,
        re.compile(
            r"\b[kgzd]-?lined?\b|\bbanned\b|\bakill|\bbanned from\b|you are not welcome", re.I
        ),
    ),
    (RefusalKind.BAD_PASSWORD, re.compile(r"password|authenticat", re.I)),
)

# Numerics that end registration and what they mean.
NUMERIC_KINDS = {
    "464": RefusalKind.BAD_PASSWORD,  # ERR_PASSWDMISMATCH
    "465": RefusalKind.BANNED,  # ERR_YOUREBANNEDCREEP
    "904": RefusalKind.BAD_PASSWORD,  # ERR_SASLFAIL
    "905": RefusalKind.BAD_PASSWORD,  # ERR_SASLTOOLONG
}


def classify(message: str) -> Refusal:
    """Classify an ERROR line's text (``Closing Link: … (K-Lined)``)."""
    for kind, pattern in _PATTERNS:
        if pattern.search(message):
            return Refusal(kind, message)
    return Refusal(RefusalKind.OTHER, message)
