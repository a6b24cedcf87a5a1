"""The bridge's own echoes: Synapse hands every event the bridge (a ghost, the bot) puts in
a room back to it in an appservice transaction. Messages, reactions and stickers among
them are never acted on, so they are dropped from the raw JSON before mautrix parses them
(one echo per MSN → Matrix message otherwise costs a parse, a task and a room lock)."""

from __future__ import annotations

from collections.abc import Callable

from mautrix.types import JSON

# Types whose echoes nothing reads (MatrixInbound and the bot skip them by sender).
# Membership and other state events are kept: they keep the state store current.
DROPPED_TYPES = frozenset({"m.room.message", "m.reaction", "m.sticker"})

IsOurs = Callable[[object], bool]


def is_echo(event: JSON, is_ours: IsOurs) -> bool:
    return (
        isinstance(event, dict)
        and event.get("type") in DROPPED_TYPES
        and "state_key" not in event
        and is_ours(event.get("sender"))
    )


def without_echoes(events: list[JSON], is_ours: IsOurs) -> list[JSON]:
    """``events`` without the echoes (the same list when there are none)."""
    kept = [event for event in events if not is_echo(event, is_ours)]
    return events if len(kept) == len(events) else kept
