"""GhostIntent (msnbridge/matrix/ghost_intent.py): mautrix's IntentAPI with its "register
first" / "join first" wrappers on the class instead of on each instance. Unit test of that
one piece: the same calls on a stock IntentAPI and on a GhostIntent make the same HTTP
requests in the same order (the client-server API is replaced by a recorder), and a
GhostIntent keeps every attribute a stock one has except the per-instance wrappers."""

from __future__ import annotations

import gc
import logging
import re
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from mautrix.appservice import IntentAPI
from mautrix.appservice.api import AppServiceAPI
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import (
    EventType,
    PowerLevelStateEventContent,
    RoomID,
    TextMessageEventContent,
    UserID,
)

from msnbridge.matrix.ghost_intent import WRAPPED, GhostIntent, ghost_intent

GHOST = UserID("@msn_bob:x")
ROOM = RoomID("!room:x")


class MemoryStore(ASStateStore, MemoryStateStore):
    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


class Recorder:
    """Stands in for the homeserver: records each request, answers what mautrix reads."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    async def request(self, method: Any, path: Any, content: Any = None, **kwargs: Any) -> Any:
        # Transaction IDs carry a clock reading: only their counter is compared.
        where = re.sub(r"mautrix-python_\d+_", "txn_", str(path))
        self.requests.append((str(method), where, content, kwargs.get("query_params")))
        if "m.room.create" in str(path):
            return {
                "type": "m.room.create",
                "room_id": ROOM,
                "event_id": "$c",
                "sender": "@bot:x",
                "origin_server_ts": 0,
                "state_key": "",
                "content": {"creator": "@bot:x", "room_version": "10"},
            }
        return {"room_id": ROOM, "event_id": "$e", "content_uri": "mxc://x/y", "joined": {}}


@pytest.fixture
async def roots() -> AsyncIterator[list[AppServiceAPI]]:
    made = [
        AppServiceAPI(
            "http://hs.invalid",
            bot_mxid=UserID("@bot:x"),
            token="t",
            log=logging.getLogger("test.as"),
            state_store=MemoryStore(),
        )
        for _ in range(2)
    ]
    for api in made:  # known power levels: no state fetched before sending
        await api.state_store.set_power_levels(
            ROOM, PowerLevelStateEventContent(users={GHOST: 100})
        )
    yield made
    for api in made:
        await api.session.close()


def _recorded(api: AppServiceAPI, mxid: UserID) -> Recorder:
    recorder = Recorder()
    api.user(mxid).request = recorder.request  # type: ignore[method-assign]
    api.bot_intent().api.request = recorder.request  # type: ignore[method-assign]
    return recorder


CALLS: list[tuple[str, Callable[[IntentAPI], Any]]] = [
    ("set_displayname", lambda i: i.set_displayname("Bob")),
    ("set_avatar_url", lambda i: i.set_avatar_url("mxc://x/a")),
    (
        "send_message_event",
        lambda i: i.send_message_event(
            ROOM, EventType.ROOM_MESSAGE, TextMessageEventContent(body="hi")
        ),
    ),
    (
        "send_message_event, no join",
        lambda i: i.send_message_event(
            ROOM, EventType.ROOM_MESSAGE, TextMessageEventContent(body="x"), ensure_joined=False
        ),
    ),
    ("redact", lambda i: i.redact(room_id=ROOM, event_id="$e")),
    ("invite_user", lambda i: i.invite_user(ROOM, UserID("@owner:x"))),
    ("send_receipt", lambda i: i.send_receipt(ROOM, "$e")),
    ("leave_room", lambda i: i.leave_room(ROOM)),
    ("join_room_by_id", lambda i: i.join_room_by_id(ROOM)),
]


@pytest.mark.parametrize("name, call", CALLS, ids=[c[0] for c in CALLS])
async def test_a_ghost_intent_makes_the_requests_a_stock_intent_makes(
    roots: list[AppServiceAPI], name: str, call: Callable[[IntentAPI], Any]
) -> None:
    stock_api, light_api = roots
    stock_rec, light_rec = _recorded(stock_api, GHOST), _recorded(light_api, GHOST)
    stock = stock_api.bot_intent().user(GHOST)
    light = ghost_intent(light_api.bot_intent(), GHOST)
    assert type(stock) is IntentAPI and type(light) is GhostIntent
    # Twice: the first call registers and joins, the second finds both done.
    for _ in range(2):
        await call(stock)
        await call(light)
    assert light_rec.requests == stock_rec.requests
    # The case is meaningful: the first call went through the wrappers.
    if name in ("set_displayname", "send_message_event"):
        assert any("register" in path for _, path, _, _ in light_rec.requests)


async def test_a_ghost_intent_has_what_a_stock_one_has_but_the_wrappers(
    roots: list[AppServiceAPI],
) -> None:
    stock_api, light_api = roots
    stock = stock_api.bot_intent().user(GHOST)
    light = ghost_intent(light_api.bot_intent(), GHOST)
    assert set(vars(stock)) - WRAPPED == set(vars(light))  # a new attribute in mautrix shows
    assert WRAPPED <= set(vars(stock))  # mautrix still wraps these per instance
    assert light.mxid == stock.mxid and light.bot is light_api.bot_intent()
    assert light.api is light_api.user(GHOST)


async def test_a_ghost_intent_is_small(roots: list[AppServiceAPI]) -> None:
    _, api = roots
    bot = api.bot_intent()
    for i in range(50):  # child APIs and their loggers made before measuring
        api.user(UserID(f"@g{i}:x"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [ghost_intent(bot, UserID(f"@g{i}:x")) for i in range(50)]
        per_intent = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert per_intent < 2048  # a stock IntentAPI: ~10 KiB of closures
