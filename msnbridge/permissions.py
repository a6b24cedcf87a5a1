"""Who may use the bridge: `bridge.permissions` maps "*", a server name or a Matrix user ID
to a level; the most specific entry that matches a user wins. IRC users are matched by
their identity (msnbridge/irc/identity.py): "irc:account:<services account>" or
"irc:nick:<nick>", then "irc:*" (every IRC user), then "*". A level is what an identity
may do; whether the nick speaking now *is* a bare-nick identity that owns a login is the
IRC side's question (msnbridge/irc/proof.py)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any


class PermissionLevel(enum.IntEnum):
    RELAY = 1  # may talk in bridged rooms through someone else's session
    USER = 2  # may log in with their own MSN account
    ADMIN = 3  # user, plus administrative commands


_MXID = re.compile(r"^@[^:\s]+:[^\s]+$")
_SERVER = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
_IRC = re.compile(r"^irc:(\*|nick:[^\s:]+|account:[^\s:]+)$")


def parse_permissions(raw: Mapping[str, Any]) -> dict[str, PermissionLevel]:
    """Validates the config mapping; raises ValueError naming the bad entry."""
    parsed: dict[str, PermissionLevel] = {}
    for key, value in raw.items():
        key = str(key)
        if key.startswith("irc:"):
            if not _IRC.match(key):
                raise ValueError(
                    f"entry {key!r}: IRC entries are 'irc:*', 'irc:nick:<nick>' or "
                    "'irc:account:<account>'"
                )
            key = key.lower()  # IRC identities are case-insensitive
        elif key != "*" and not _MXID.match(key) and not _SERVER.match(key):
            raise ValueError(
                f"entry {key!r} is neither '*', a server name nor a user ID like @admin:example.com"
            )
        try:
            parsed[key] = PermissionLevel[str(value).upper()]
        except KeyError:
            raise ValueError(
                f"entry {key!r} has level {value!r}; expected relay, user or admin"
            ) from None
    return parsed


class Permissions:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._levels = parse_permissions(raw)

    def level_for(self, user_id: str) -> PermissionLevel | None:
        """The level of a Matrix user ID or an IRC identity, or None when the bridge must
        refuse them."""
        if user_id.startswith("irc:"):
            level = self._levels.get(user_id.lower(), self._levels.get("irc:*"))
            return level if level is not None else self._levels.get("*")
        if user_id in self._levels:
            return self._levels[user_id]
        _, sep, server = user_id.partition(":")
        if sep and server in self._levels:
            return self._levels[server]
        return self._levels.get("*")
