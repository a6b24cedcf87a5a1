"""A contact's file to a bridged user through a connection pool (issue 13), beside the same
file taken by the user's puppet in-process.

    .venv/bin/python benchmarks/pool_files.py [--size-mb 20] [--rounds 3]
        [--redis-url redis://127.0.0.1:6379/15]

The MSNP test server runs in its own process. Baseline: the receiving puppet accepts the
offer into a file (what the single-process bridge does). Pool: the receiving puppet is
held by a `SessionExecutor` on a Redis link, the core's `RemoteClient` accepts the offer
into a file, and the bytes go pool → Redis (chunks, window 4) → core; timed until the
core has the last byte. Rounds alternate; the best of each is printed, with Redis's
memory (INFO used_memory) sampled every 10 ms beyond what it used before, and the peak
RSS of this process (both ends and both puppets) in each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from benchmarks.p2p_transfer import PeakRSS, config, start_server  # noqa: E402
from msnbridge.pools.executor import SessionExecutor  # noqa: E402
from msnbridge.pools.memory_link import MemoryDoneStore  # noqa: E402
from msnbridge.pools.redis_link import Keys, RedisCoreLink, RedisPoolLink, connect  # noqa: E402
from msnbridge.pools.remote_client import RemoteClient  # noqa: E402
from puppets import Client  # noqa: E402
from puppets.event.transfer import FileOffered, TransferFinished  # noqa: E402

A, B = "sender@example.com", "receiver@example.com"
OWNER = "@bench:example.com"


class RedisMemory:
    """Peak of Redis's used_memory beyond its level at the start."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.base = 0
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _used(self) -> int:
        return int((await self.redis.info("memory"))["used_memory"])

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, await self._used() - self.base)
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> RedisMemory:
        self.base, self.peak = await self._used(), 0
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def in_process(sender: Client, receiver: Client, src: Path, dest: Path) -> float:
    offered: asyncio.Future[FileOffered] = asyncio.get_running_loop().create_future()

    def on_event(ev: object) -> None:
        if isinstance(ev, FileOffered) and not offered.done():
            offered.set_result(ev)

    receiver.add_listener(on_event)
    start = time.perf_counter()
    sending = sender.p2p.manager.send_file(B, src)
    offer = await offered
    offer.transfer.accept(dest)
    status = await offer.transfer.wait()
    elapsed = time.perf_counter() - start
    receiver.remove_listener(on_event)
    await sending.wait(30)
    if status != "completed":
        raise SystemExit(f"in-process: the transfer ended {status}")
    return elapsed


async def through_pool(sender: Client, remote: RemoteClient, src: Path, dest: Path) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[TransferFinished] = loop.create_future()

    def on_event(ev: object) -> None:
        if isinstance(ev, FileOffered):
            ev.transfer.accept(dest)
        elif isinstance(ev, TransferFinished) and ev.incoming and not done.done():
            done.set_result(ev)

    remote.add_listener(on_event)
    start = time.perf_counter()
    sending = sender.p2p.manager.send_file(B, src)
    finished = await done
    elapsed = time.perf_counter() - start
    remote.remove_listener(on_event)
    await sending.wait(30)
    if finished.status != "completed":
        raise SystemExit(f"pool: the transfer ended {finished.status}: {finished.reason}")
    return elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = ap.parse_args()
    size = int(args.size_mb * 1024 * 1024)

    redis = connect(args.redis_url)
    keys = Keys(f"msnbridge:bench-{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        accounts = tmpdir / "accounts.json"
        accounts.write_text(json.dumps([
            {"passport": A, "password": "pw", "contacts": [B]},
            {"passport": B, "password": "pw", "contacts": [A]},
        ]))  # fmt: skip
        src = tmpdir / "random.bin"
        with src.open("wb") as f:
            for _ in range(0, size, 1 << 20):
                f.write(os.urandom(min(1 << 20, size - f.tell())))
        proc, info = await start_server(accounts)
        sender = Client(config(info, A, 12))
        receiver = Client(config(info, B, 12))
        pool_link = RedisPoolLink(redis, keys, "bench", lease_ttl=30, max_core_downtime=600)
        core_link = RedisCoreLink(redis, keys, lease_ttl=30)
        executor = SessionExecutor(
            pool_link, MemoryDoneStore(), pool="bench", temp_dir=str(tmpdir / "pool")
        )
        remote = RemoteClient(OWNER, B, core_link, command_timeout=30)

        async def on_envelope(envelope: object) -> None:
            remote.apply(envelope)  # type: ignore[arg-type]

        core_link.on_event(on_envelope)
        await redis.set(keys.lease(OWNER), "bench")
        await core_link.start()
        await pool_link.start()
        plain_s = pool_s = float("inf")
        plain_rss = pool_rss = redis_peak = 0
        try:
            for c in (sender, receiver):
                await c.start()
                await c.wait_online(30)
            for _ in range(args.rounds):  # interleaved, best of each: a busy machine
                got = tmpdir / "got.bin"
                got.unlink(missing_ok=True)
                with PeakRSS() as peak:
                    plain_s = min(plain_s, await in_process(sender, receiver, src, got))
                plain_rss = max(plain_rss, peak.peak)
                if got.stat().st_size != size:
                    raise SystemExit("in-process: the received file has the wrong size")
                got.unlink()
                executor.attach(OWNER, receiver)
                with PeakRSS() as peak:
                    async with RedisMemory(redis) as used:
                        pool_s = min(pool_s, await through_pool(sender, remote, src, got))
                pool_rss, redis_peak = max(pool_rss, peak.peak), max(redis_peak, used.peak)
                executor.detach(OWNER)
                if got.read_bytes() != src.read_bytes():
                    raise SystemExit("pool: the received file differs")
        finally:
            await sender.stop()
            await receiver.stop()
            await executor.close()
            await remote.close()
            await pool_link.stop()
            await core_link.stop()
            async for key in redis.scan_iter(match=f"{keys.prefix}:*"):
                await redis.delete(key)
            await redis.aclose()
            proc.terminate()
            await proc.wait()

    mib = size / (1 << 20)
    print(f"{'what':<40}{'MiB/s':>8}{'vs baseline':>13}{'peak RSS MiB':>14}")
    print(f"{'in-process puppet (baseline)':<40}{mib / plain_s:>8.2f}{1.0:>12.2f}x"
          f"{plain_rss / 1024:>14.1f}")  # fmt: skip
    print(f"{'through a pool over Redis':<40}{mib / pool_s:>8.2f}{plain_s / pool_s:>12.2f}x"
          f"{pool_rss / 1024:>14.1f}")  # fmt: skip
    print(f"{mib:.0f} MiB at MSNP12, best of {args.rounds} rounds; Redis used_memory peaked "
          f"{redis_peak / 1024:.0f} KiB above its level before each pool round")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
