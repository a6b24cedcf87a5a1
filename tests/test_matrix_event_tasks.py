"""BridgeAppService.handle_matrix_event (msnbridge/matrix/appservice.py): mautrix starts a
task per event for each handler, the state store's included, which does nothing with a
message. Unit test of that piece: a message gets one task (the bridge's handler), a
membership event two, and the state store still records the membership."""

from __future__ import annotations

import asyncio

from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import Event, RoomID, UserID
from mautrix.util import background_task

from msnbridge.matrix.appservice import BridgeAppService

ROOM = RoomID("!room:x")


class MemoryStore(ASStateStore, MemoryStateStore):
    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


def _event(**fields: object) -> Event:
    base = {"room_id": ROOM, "sender": "@alice:x", "origin_server_ts": 1, "event_id": "$e"}
    return Event.deserialize({**base, **fields})


async def test_one_task_per_message_two_per_membership() -> None:
    store = MemoryStore()
    az = BridgeAppService(
        server="http://127.0.0.1:1",
        domain="x",
        as_token="a",
        hs_token="h",
        bot_localpart="bot",
        id="msn",
        state_store=store,
        db=None,  # type: ignore[arg-type]
    )
    seen: list[str] = []

    async def handler(event: Event) -> None:
        seen.append(event.type.t)

    az.matrix_event_handler(handler)
    message = _event(type="m.room.message", content={"msgtype": "m.text", "body": "hi"})
    member = _event(type="m.room.member", state_key="@alice:x", content={"membership": "join"})
    before = len(background_task._tasks)
    await az.handle_matrix_event(message)
    assert len(background_task._tasks) - before == 1
    await az.handle_matrix_event(member)
    assert len(background_task._tasks) - before == 3
    await asyncio.gather(*list(background_task._tasks))
    assert seen == ["m.room.message", "m.room.member"]
    assert await store.is_joined(ROOM, UserID("@alice:x"))
