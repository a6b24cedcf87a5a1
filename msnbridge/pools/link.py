"""What travels between the bridge core and its pools, whatever carries it.

Every command (core → pool) and event (pool → core) is an `Envelope` with an ``id`` that
stays the same when it is delivered again: the receiver applies each id once. The Redis
implementation (`redis_link`) and an in-memory one for unit tests implement these two ends.
Secrets never travel: a pool reads a login's encrypted password from the shared database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str  # unique and stable across redeliveries (the dedupe key)
    owner: str  # the bridged user (Matrix ID or IRC identity) the session belongs to
    kind: str  # a command name ("send_text", …) or an event type ("MessageReceived", …)
    data: dict[str, Any] = field(default_factory=dict)  # JSON-safe values only


class CommandFailed(Exception):
    """A pool carried out a command and it failed; the message is worded for the user."""


# Handles one event; the link acknowledges it only after the handler returns, so an event
# whose handler never finished (the core was killed) is delivered again.
EventHandler = Callable[[Envelope], Awaitable[None]]
# Carries out one command and returns the reply's data (raises CommandFailed).
CommandHandler = Callable[[Envelope], Awaitable[dict[str, Any]]]


class CoreLink(Protocol):
    """The core's end."""

    async def command(self, envelope: Envelope, *, timeout: float) -> dict[str, Any]:
        """Sends a command to the pool holding ``envelope.owner``'s session (any pool for
        a session nobody holds yet) and returns its reply. Raises CommandFailed, or
        TimeoutError when no pool answered in time (it may or may not have been done)."""
        ...

    def on_event(self, handler: EventHandler) -> None:
        """Events arrive in the order their pool published them (per owner at least)."""
        ...

    # Optional (a link without them carries no transfers): ``transfers``, a
    # `transfers.Transfers` shared with the pools, and ``pool_holds(owner, pool)``,
    # whether that pool still holds the owner's session (a transfer with it goes on).


class PoolLink(Protocol):
    """A pool's end."""

    async def publish(self, envelope: Envelope) -> None: ...

    def on_command(self, handler: CommandHandler) -> None: ...

    # Optional: ``transfers`` (as the core's) and ``core_up()``, whether the core is there.
