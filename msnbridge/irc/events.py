"""What an :class:`~msnbridge.irc.connection.IRCConnection` reports to its owner.

Lines from the bridge's own nicks are reported like any other (echo-message, our own
JOINs): the caller knows which nicks are ours and filters.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .refusal import Refusal


class Kind(enum.StrEnum):
    PRIVMSG = "privmsg"
    NOTICE = "notice"
    ACTION = "action"  # CTCP ACTION (/me)
    TAGMSG = "tagmsg"  # tags only, e.g. +typing
    JOIN = "join"
    PART = "part"
    QUIT = "quit"
    KICK = "kick"
    NICK = "nick"
    INVITE = "invite"
    MODE = "mode"
    TOPIC = "topic"
    AWAY = "away"  # away-notify
    JOIN_FAILED = "join_failed"  # 403/405/471/473/474/475/477: params = (numeric, reason)
    SEND_FAILED = "send_failed"  # 401/404 for a message we sent: params = (numeric, reason)


@dataclass(frozen=True, slots=True)
class IRCEvent:
    """One line from the server.

    ``target`` is the channel (or our nick for private messages; the invited nick for
    INVITE, the new nick for NICK); ``text`` is the message, part/quit/kick reason,
    topic or away message; ``params`` holds the rest (KICK: kicked nick; INVITE: channel;
    MODE: modes and arguments).
    """

    kind: Kind
    source: str  # nick!user@host, or a server name
    nick: str  # the nick part of ``source``
    target: str | None
    text: str | None = None
    params: tuple[str, ...] = ()
    tags: Mapping[str, str | None] = field(default_factory=dict)
    server_time: datetime.datetime | None = None  # from the ``time`` tag (server-time)

    @property
    def is_channel(self) -> bool:
        return bool(self.target) and self.target[0] in "#&+!"


@dataclass(frozen=True, slots=True)
class Registered:
    """Registration finished (end of MOTD): ``nick`` is ours, ``caps`` were acknowledged."""

    nick: str
    caps: frozenset[str]
    reconnect: bool  # True after a reconnection


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended. ``retry_in`` is None when the connection will not retry
    (closed, or refused in a way configured as final)."""

    reason: str
    refusal: Refusal | None
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class NickChanged:
    """Our own nick changed (alternative on collision, or the wanted nick regained)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TakenOver:
    """A connection that outlived the previous bridge process (a pool's) was taken over
    as it is: it may be registered and in channels already, and no Registered or JOIN
    follows for what it already is."""


ConnectionEvent = IRCEvent | Registered | Disconnected | NickChanged | TakenOver
