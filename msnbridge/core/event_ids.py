"""The stable id of the event being handled, when it has one: an event a connection pool
published carries its own id, so a redelivery (the core was killed before acknowledging
it) records the same inbox entry and Matrix transaction as the first delivery."""

from __future__ import annotations

from contextvars import ContextVar

current_event_id: ContextVar[str | None] = ContextVar("current_event_id", default=None)
