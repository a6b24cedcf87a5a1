"""mautrix's IntentAPI for ghosts, without its per-instance wrappers.

``IntentAPI.__init__`` wraps 29 methods in closures stored on each instance (so that they
first make sure the user is registered or has joined the room): about 10 KiB and 200 µs
per intent. The bridge keeps an intent per MSN contact, so that was the biggest single
cost per bridged user in the bridge (benchmarks/README.md, "Bridge memory per user").
Here the same wrappers are made once, on the class; what they do is unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.appservice.api.intent import ENSURE_JOINED_METHODS, ENSURE_REGISTERED_METHODS
from mautrix.client import StoreUpdatingAPI

_Method = Callable[..., Awaitable[Any]]


def _registered_first(method: _Method) -> _Method:
    @wraps(method)
    async def wrapper(self: IntentAPI, *args: Any, **kwargs: Any) -> Any:
        await self.ensure_registered()
        return await method(self, *args, **kwargs)

    return wrapper


def _joined_first(method: _Method) -> _Method:
    @wraps(method)
    async def wrapper(self: IntentAPI, *args: Any, **kwargs: Any) -> Any:
        room_id = kwargs.get("room_id", None)
        if not room_id:
            room_id = args[0]
        if kwargs.pop("ensure_joined", True):
            await self.ensure_joined(room_id)
        return await method(self, *args, **kwargs)

    return wrapper


class GhostIntent(IntentAPI):
    """An IntentAPI whose registered/joined checks live on the class (same behaviour)."""

    def __init__(
        self,
        mxid: Any,
        api: Any,
        bot: IntentAPI | None = None,
        state_store: Any = None,
    ) -> None:
        # IntentAPI.__init__ without the loops that wrap methods per instance.
        StoreUpdatingAPI.__init__(self, mxid=mxid, api=api, state_store=state_store)
        self.bot = bot
        if bot is not None:
            self.versions_cache = bot.versions_cache
        self.log = api.base_log.getChild("intent")


# As IntentAPI.__init__ does it: the method the instance would find, wrapped.
for _method in ENSURE_REGISTERED_METHODS:
    setattr(GhostIntent, _method.__name__, _registered_first(getattr(IntentAPI, _method.__name__)))
for _method in ENSURE_JOINED_METHODS:
    setattr(GhostIntent, _method.__name__, _joined_first(getattr(IntentAPI, _method.__name__)))
WRAPPED = frozenset(m.__name__ for m in (*ENSURE_REGISTERED_METHODS, *ENSURE_JOINED_METHODS))


def ghost_intent(bot: IntentAPI, mxid: Any) -> GhostIntent:
    """What ``bot.user(mxid)`` returns for an appservice user, as a GhostIntent."""
    api = bot.api
    return GhostIntent(mxid, api.user(mxid), api.bot_intent(), api.state_store)
