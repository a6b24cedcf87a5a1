"""msnbridge.keyed_locks: order per key, keys side by side, nothing kept once released."""

from __future__ import annotations

import asyncio

from msnbridge.keyed_locks import KeyedLocks


async def test_one_key_runs_in_order_and_other_keys_run_alongside() -> None:
    locks = KeyedLocks()
    done: list[str] = []
    gate = asyncio.Event()

    async def work(key: str, name: str, wait: bool = False) -> None:
        async with locks.hold(key):
            if wait:
                await gate.wait()
            done.append(name)

    first = asyncio.create_task(work("room-a", "a1", wait=True))
    await asyncio.sleep(0)
    later = [asyncio.create_task(work("room-a", f"a{i}")) for i in (2, 3)]
    other = asyncio.create_task(work("room-b", "b1"))
    await other  # room-b does not wait for room-a's held lock
    assert done == ["b1"]
    assert len(locks) == 1
    gate.set()
    await asyncio.gather(first, *later)
    assert done == ["b1", "a1", "a2", "a3"]
    assert len(locks) == 0


async def test_a_failing_or_cancelled_holder_releases_and_forgets_the_key() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("room"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert len(locks) == 0

    async def hold_forever() -> None:
        async with locks.hold("room"):
            await asyncio.Event().wait()

    task = asyncio.create_task(hold_forever())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold_forever())
    await asyncio.sleep(0)
    waiter.cancel()  # cancelled while waiting for the lock
    task.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)
    assert len(locks) == 0
