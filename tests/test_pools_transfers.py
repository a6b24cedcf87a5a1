"""The transfer channel on its own (msnbridge/pools/transfers.py), over a real Redis and in
memory: the window bounds what waits, a cancel reaches the other end and leaves no keys,
an end whose peer is gone gives up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from msnbridge.pools import transfers as tm
from msnbridge.pools.transfers import (
    CHUNK,
    WINDOW,
    MemoryTransfers,
    RedisTransfers,
    TransferCancelled,
    Transfers,
    binary_client,
)
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(60)
PREFIX = "msnbridge:test"


@pytest.fixture(params=["redis", "memory"])
async def channel(
    request: pytest.FixtureRequest,
    redis_url: str,  # noqa: F811
) -> AsyncIterator[Transfers]:
    if request.param == "memory":
        yield MemoryTransfers()
        return
    text = aioredis.Redis.from_url(redis_url, decode_responses=True)
    redis = binary_client(text)
    try:
        yield RedisTransfers(redis, PREFIX)
    finally:
        await redis.aclose()
        await text.aclose()


async def leftover(channel: Transfers) -> list[str]:
    if isinstance(channel, RedisTransfers):
        return await channel.keys()
    assert isinstance(channel, MemoryTransfers)
    return sorted(channel.channels)


async def waiting(channel: Transfers, tid: str) -> int:
    return (await channel._state(tid))[1]


async def test_bytes_arrive_in_order_and_the_writer_waits_for_room(channel: Transfers) -> None:
    data = [os.urandom(CHUNK) for _ in range(WINDOW * 3)]

    async def write() -> None:
        for chunk in data:
            await channel.put("t1", chunk)
        await channel.end("t1")

    writer = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writer.done() and await waiting(channel, "t1") == WINDOW  # no more than that
    got = [chunk async for chunk in channel.stream("t1")]
    await writer
    assert got == data
    assert await leftover(channel) == []
    with pytest.raises(ValueError):
        await channel.put("t2", b"x" * (CHUNK + 1))


async def test_a_reader_that_cancels_stops_the_writer_and_no_keys_stay(
    channel: Transfers,
) -> None:
    async def write() -> None:
        while True:
            await channel.put("t1", b"data")

    writer = asyncio.create_task(write())
    assert await channel.get("t1") == b"data"
    await channel.cancel("t1", "the owner cancelled")
    with pytest.raises(TransferCancelled) as told:
        await writer
    assert told.value.reason == "the owner cancelled" and told.value.status == "cancelled"
    assert await leftover(channel) == []


async def test_a_writer_that_cancels_reaches_the_reader_with_its_status(
    channel: Transfers,
) -> None:
    await channel.put("t1", b"some")
    await channel.cancel("t1", "the contact cancelled", status="cancelled", by_peer=True)
    with pytest.raises(TransferCancelled) as told:
        await channel.get("t1")
    assert (told.value.reason, told.value.by_peer) == ("the contact cancelled", True)
    assert await leftover(channel) == []


async def test_an_end_whose_peer_is_gone_gives_up(
    channel: Transfers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tm.Transfers, "check", 0.1)

    async def gone() -> bool:
        return False

    with pytest.raises(TransferCancelled) as told:
        await channel.get("t1", alive=gone)
    assert told.value.status == "failed" and "gone" in told.value.reason
    for _ in range(WINDOW):
        await channel.put("t2", b"x")
    with pytest.raises(TransferCancelled):
        await channel.put("t2", b"x", alive=gone)
    # Nobody reading and no word for the stall: the writer gives up too.
    for _ in range(WINDOW):
        await channel.put("t3", b"x")
    with pytest.raises(TransferCancelled) as stalled:
        await channel.put("t3", b"x", stall=0.3)
    assert "nothing was taken" in stalled.value.reason


async def test_redis_keys_have_a_ttl(redis_url: str) -> None:  # noqa: F811
    text = aioredis.Redis.from_url(redis_url, decode_responses=True)
    redis = binary_client(text)
    try:
        channel = RedisTransfers(redis, PREFIX)
        await channel.put("t1", b"x")
        assert 0 < await redis.ttl(f"{PREFIX}:xfer:t1") <= tm.KEY_TTL
        await channel._give_up("t1", "gone")  # the word left for a peer that may be dead
        assert 0 < await redis.ttl(f"{PREFIX}:xfer:t1:cancel") <= tm.KEY_TTL
        assert 0 < await redis.ttl(f"{PREFIX}:xfer:t1") <= tm.KEY_TTL
    finally:
        await redis.aclose()
        await text.aclose()
