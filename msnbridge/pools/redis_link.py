"""The core ↔ pool link over Redis Streams (see docs/deployment.md for the keys).

- Events, pool → core: one stream ``{p}:events`` read by the consumer group ``core`` with
  the fixed consumer name ``core``: after a restart the core first reads what it had taken
  but not acknowledged (id "0"), then new entries (">"). An entry is acknowledged only after
  its handler returned, so an event is handled at least once; the handler dedupes by the
  envelope id. Entries older than ``max_core_downtime`` are trimmed (XADD MINID ~).
- Commands, core → pool: ``{p}:commands:{pool}`` for the pool holding the owner's lease,
  ``{p}:commands`` (group ``pools``: one pool takes each) for a session nobody holds.
  While waiting for the reply the core watches the lease: when it moves to another pool
  (the holder died or handed over) the command is sent again, with the same id, to the new
  holder, which answers a command it (or any pool) carried out already from ``{p}:done``.
- Replies: one stream ``{p}:replies`` the core reads from where it started (a reply for a
  core that was killed is not needed: the command comes again with the same id).
- Heartbeats: ``{p}:core`` (the core is up), renewed every lease_ttl/3 with a TTL of
  lease_ttl. A pool that finds it missing for longer than ``max_core_downtime`` stops
  publishing (the events are counted as dropped) and tells each owner once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .executor import NotHeld
from .link import CommandFailed, CommandHandler, Envelope, EventHandler
from .transfers import RedisTransfers, binary_client

log = logging.getLogger("msnbridge.pools")

CORE = "core"  # the events stream's group and its one consumer
POOLS = "pools"  # the command streams' group
REPLIES_KEPT = 10_000  # replies stream length (approximate): only live waiters read it
BLOCK_MS = 2000  # how long one blocking read waits before looking around again
SNAPSHOT = "SessionSnapshot"  # never dropped: it rebuilds the core's mirror
EVENTS_DROPPED = "EventsDropped"


def key_prefix(appservice_id: str) -> str:
    """Two bridges (two appservice ids) can share one Redis."""
    return f"msnbridge:{appservice_id}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def shared_commands(self) -> str:
        return f"{self.prefix}:commands"

    def commands(self, pool: str) -> str:
        return f"{self.prefix}:commands:{pool}"

    @property
    def replies(self) -> str:
        return f"{self.prefix}:replies"

    @property
    def core(self) -> str:
        return f"{self.prefix}:core"

    def lease(self, owner: str) -> str:
        return f"{self.prefix}:lease:{owner}"

    @property
    def pools(self) -> str:
        return f"{self.prefix}:pools"

    def done(self, command_id: str) -> str:
        return f"{self.prefix}:done:{command_id}"

    def handover(self, owner: str) -> str:
        return f"{self.prefix}:handover:{owner}"

    def holds(self, pool: str) -> str:
        """The owners whose leases a pool took (a set; entries may be stale)."""
        return f"{self.prefix}:holds:{pool}"

    @property
    def unheld(self) -> str:
        """Owners whose lease was given up, for another pool to take (a set)."""
        return f"{self.prefix}:unheld"

    @property
    def logins(self) -> str:
        """A counter the core increments whenever a stored login changes."""
        return f"{self.prefix}:logins"


def encode(envelope: Envelope) -> dict[str, str]:
    return {
        "id": envelope.id,
        "owner": envelope.owner,
        "kind": envelope.kind,
        "data": json.dumps(envelope.data, separators=(",", ":")),
    }


def decode(fields: dict[str, str]) -> Envelope:
    return Envelope(fields["id"], fields["owner"], fields["kind"], json.loads(fields["data"]))


def connect(url: str) -> aioredis.Redis:
    """A client whose replies are str (the keys and fields are text)."""
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


async def ensure_group(redis: aioredis.Redis, stream: str, group: str, start: str) -> None:
    try:
        await redis.xgroup_create(stream, group, id=start, mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def _idle(seconds: float) -> Awaitable[None]:
    return asyncio.sleep(seconds)


class _Loops:
    """Background loops that survive a lost Redis connection (logged, retried)."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        async def loop() -> None:
            failing = False
            while True:
                try:
                    await step()
                    failing = False
                except RedisError as e:
                    if not failing:
                        log.warning("Redis: %s failed: %s; retrying", name, e)
                    failing = True
                    await _idle(1.0)

        self._tasks.append(asyncio.get_running_loop().create_task(loop(), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


class RedisCoreLink:
    """The core's end (one core per appservice id)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        lease_ttl: float,
        watch_interval: float | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.lease_ttl = lease_ttl
        # How often a waiting command looks whether its owner's lease moved.
        self.watch_interval = watch_interval or max(0.2, min(1.0, lease_ttl / 5))
        self._handler: EventHandler | None = None
        self._waiting: dict[str, list[asyncio.Future[dict[str, str]]]] = {}
        self._replies_from = "0-0"
        self._events_from = "0"  # pending first (taken before a kill), then ">"
        self._loops = _Loops()
        self.events_handled = 0
        self.commands_resent = 0
        self.transfers = RedisTransfers(binary_client(redis), keys.prefix)

    def on_event(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        await ensure_group(self.redis, self.keys.events, CORE, "0")
        # Before any command goes out: a login sent before the first pool starts waits.
        await ensure_group(self.redis, self.keys.shared_commands, POOLS, "$")
        last = await self.redis.xrevrange(self.keys.replies, count=1)
        self._replies_from = last[0][0] if last else "0-0"
        await self._beat()
        self._loops.spawn("pools-core-heartbeat", self._heartbeat)
        self._loops.spawn("pools-core-replies", self._read_replies)
        self._loops.spawn("pools-core-events", self._read_events)

    async def stop(self) -> None:
        await self._loops.stop()
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.cancel()
        self._waiting.clear()
        await self.transfers.redis.aclose()

    # --- heartbeat ---

    async def _beat(self) -> None:
        await self.redis.set(self.keys.core, str(time.time()), px=int(self.lease_ttl * 1000))

    async def _heartbeat(self) -> None:
        await self._beat()
        await _idle(self.lease_ttl / 3)

    # --- events ---

    async def _read_events(self) -> None:
        reply = await self.redis.xreadgroup(
            CORE, CORE, {self.keys.events: self._events_from}, count=100, block=BLOCK_MS
        )
        entries = reply[0][1] if reply else []
        if self._events_from != ">" and not entries:
            self._events_from = ">"  # the pending ones are done
            return
        for entry_id, fields in entries:
            if fields:  # None: trimmed while pending (past max_core_downtime)
                await self._handle(decode(fields))
            await self.redis.xack(self.keys.events, CORE, entry_id)
            if self._events_from != ">":
                self._events_from = entry_id

    async def _handle(self, envelope: Envelope) -> None:
        if self._handler is None:
            return
        try:
            await self._handler(envelope)
        except (RedisError, asyncio.CancelledError):
            raise  # not acknowledged: read again
        except Exception:
            # Acknowledged all the same: an event whose handler fails would fail again.
            log.exception("Handling %s for %s failed", envelope.kind, envelope.owner)
        self.events_handled += 1

    # --- commands ---

    async def holder(self, owner: str) -> str | None:
        value = await self.redis.get(self.keys.lease(owner))
        return value or None

    async def pool_holds(self, owner: str, pool: str) -> bool:
        """Whether ``pool`` still holds the owner's session (a transfer with it goes on)."""
        return await self.holder(owner) == pool

    async def live_pools(self) -> list[str]:
        cutoff = time.time() - 3 * self.lease_ttl
        return list(await self.redis.zrangebyscore(self.keys.pools, cutoff, "+inf"))

    async def _send(self, envelope: Envelope, holder: str | None) -> None:
        stream = self.keys.commands(holder) if holder else self.keys.shared_commands
        await self.redis.xadd(stream, {**encode(envelope), "reply_to": self.keys.replies})

    async def command(self, envelope: Envelope, *, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self._command_once(envelope, deadline)
            if reply.get("moved") != "1":
                break
            # The pool it reached does not hold the session (it is moving): again, to
            # wherever the lease is by then.
            self.commands_resent += 1
            await asyncio.sleep(min(self.watch_interval, max(0.0, deadline - loop.time())))
        if reply.get("ok") != "1":
            raise CommandFailed(reply.get("error") or "the connection pool failed")
        return json.loads(reply.get("data") or "{}")

    async def _command_once(self, envelope: Envelope, deadline: float) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, str]] = loop.create_future()
        self._waiting.setdefault(envelope.id, []).append(future)
        try:
            holder = await self.holder(envelope.owner)
            await self._send(envelope, holder)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"no connection pool answered {envelope.kind} in time")
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(
                        asyncio.shield(future), min(left, self.watch_interval)
                    )
                now = await self.holder(envelope.owner)
                if now is not None and now != holder:
                    # Moved to another pool: the same id again, done there at most once.
                    holder = now
                    self.commands_resent += 1
                    await self._send(envelope, holder)
        finally:
            futures = self._waiting.get(envelope.id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(envelope.id, None)

    async def broadcast(self, envelope: Envelope) -> int:
        """Sends a command to every live pool without waiting (``resync_all``), each with
        an id of its own; returns to how many."""
        pools = await self.live_pools()
        for pool in pools:
            mine = Envelope(f"{envelope.id}:{pool}", envelope.owner, envelope.kind, envelope.data)
            await self._send(mine, pool)
        return len(pools)

    async def _read_replies(self) -> None:
        reply = await self.redis.xread(
            {self.keys.replies: self._replies_from}, count=500, block=BLOCK_MS
        )
        for entry_id, fields in reply[0][1] if reply else []:
            self._replies_from = entry_id
            for future in self._waiting.get(fields.get("id", ""), []):
                if not future.done():
                    future.set_result(fields)


class RedisPoolLink:
    """A pool's end. Commands for one owner are carried out one at a time, in order;
    different owners' at the same time."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        name: str,
        *,
        lease_ttl: float,
        max_core_downtime: float,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.name = name
        self.lease_ttl = lease_ttl
        self.max_core_downtime = max_core_downtime
        self._handler: CommandHandler | None = None
        self._queues: dict[str, asyncio.Queue[tuple[str, str, dict[str, str]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._loops = _Loops()
        self._core_missing_since: float | None = None
        self.dropped: Counter[str] = Counter()  # events not published, by owner (core gone)
        self.dropped_total = 0
        self.published = 0
        self.commands_done = 0
        self.transfers = RedisTransfers(binary_client(redis), keys.prefix)

    def on_command(self, handler: CommandHandler) -> None:
        self._handler = handler

    @property
    def own_commands(self) -> str:
        return self.keys.commands(self.name)

    async def start(self) -> None:
        await ensure_group(self.redis, self.own_commands, POOLS, "0")
        await ensure_group(self.redis, self.keys.shared_commands, POOLS, "$")
        self._loops.spawn(f"pool-commands:{self.name}", self._read_commands)
        self._loops.spawn(f"pool-core-watch:{self.name}", self._watch_core)

    async def stop(self) -> None:
        await self._loops.stop()
        workers, self._workers = list(self._workers.values()), {}
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.transfers.redis.aclose()

    async def core_up(self) -> bool:
        """The core's heartbeat is there (a transfer with it goes on)."""
        return bool(await self.redis.exists(self.keys.core))

    async def forget(self) -> None:
        """Removes this pool's command stream (it stops for good)."""
        await self.redis.delete(self.own_commands)

    # --- events ---

    @property
    def core_gone(self) -> bool:
        """The core has been away longer than events are kept for it."""
        since = self._core_missing_since
        return since is not None and time.monotonic() - since > self.max_core_downtime

    async def publish(self, envelope: Envelope) -> None:
        if self.core_gone and envelope.kind != SNAPSHOT:
            self.dropped[envelope.owner] += 1
            self.dropped_total += 1
            return
        oldest_ms = int((time.time() - self.max_core_downtime) * 1000)
        await self.redis.xadd(
            self.keys.events, encode(envelope), minid=str(oldest_ms), approximate=True
        )
        self.published += 1

    async def _watch_core(self) -> None:
        if await self.redis.exists(self.keys.core):
            gone = self.core_gone
            self._core_missing_since = None
            if gone or self.dropped:
                await self._report_dropped()
        elif self._core_missing_since is None:
            self._core_missing_since = time.monotonic()
        await _idle(self.lease_ttl / 3)

    async def _report_dropped(self) -> None:
        dropped, self.dropped = self.dropped, Counter()
        for owner, count in dropped.items():
            envelope = Envelope(
                f"{self.name}:dropped:{owner}:{time.time_ns()}",
                owner,
                EVENTS_DROPPED,
                {"count": count},
            )
            await self.publish(envelope)

    # --- commands ---

    async def _read_commands(self) -> None:
        reply = await self.redis.xreadgroup(
            POOLS,
            self.name,
            {self.own_commands: ">", self.keys.shared_commands: ">"},
            count=100,
            block=BLOCK_MS,
        )
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                if not fields:
                    await self.redis.xack(stream, POOLS, entry_id)
                    continue
                owner = fields.get("owner", "")
                queue = self._queues.get(owner)
                if queue is None:
                    queue = self._queues[owner] = asyncio.Queue()
                queue.put_nowait((stream, entry_id, fields))
                if owner not in self._workers:
                    self._workers[owner] = asyncio.get_running_loop().create_task(
                        self._work(owner, queue), name=f"pool-owner:{owner}"
                    )

    async def _work(
        self, owner: str, queue: asyncio.Queue[tuple[str, str, dict[str, str]]]
    ) -> None:
        try:
            while not queue.empty():
                stream, entry_id, fields = queue.get_nowait()
                await self._carry_out(stream, entry_id, fields)
        finally:
            if self._workers.get(owner) is asyncio.current_task():
                del self._workers[owner]
                if queue.empty():
                    self._queues.pop(owner, None)

    async def _carry_out(self, stream: str, entry_id: str, fields: dict[str, str]) -> None:
        envelope = decode(fields)
        reply: dict[str, str] = {"id": envelope.id}
        try:
            if self._handler is None:
                raise CommandFailed("this connection pool is not ready yet")
            data = await self._handler(envelope)
            reply |= {"ok": "1", "data": json.dumps(data, separators=(",", ":"))}
        except NotHeld as e:
            # Not (or no longer) here: the core sends it again where the lease is.
            reply |= {"ok": "0", "moved": "1", "error": str(e)}
        except CommandFailed as e:
            reply |= {"ok": "0", "error": str(e)}
        except asyncio.CancelledError:
            raise  # not acknowledged: the core sends it again to whoever holds the lease
        except Exception as e:
            log.exception("Command %s for %s failed", envelope.kind, envelope.owner)
            reply |= {"ok": "0", "error": f"the connection pool failed ({type(e).__name__})"}
        self.commands_done += 1
        reply_to = fields.get("reply_to") or self.keys.replies
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(reply_to, reply, maxlen=REPLIES_KEPT, approximate=True)
            pipe.xack(stream, POOLS, entry_id)
            await pipe.execute()


async def events_backlog(redis: aioredis.Redis, keys: Keys) -> tuple[int, int]:
    """(unread, pending) events of the core's group: not yet read by the core, and read
    but not acknowledged. Redis leaves the lag unknown (nil) after some deletions or
    trims; then the entries after the last one delivered are counted (up to 10,000: a
    gauge past that says "a lot" well enough, and a round stays cheap)."""
    try:
        groups = await redis.xinfo_groups(keys.events)
    except ResponseError:
        return 0, 0  # no stream yet
    for group in groups:
        if group.get("name") != CORE:
            continue
        pending = int(group.get("pending") or 0)
        lag = group.get("lag")
        if lag is None:
            after = await redis.xrange(
                keys.events, f"({group.get('last-delivered-id', '0-0')}", "+", count=10_000
            )
            lag = len(after)
        return int(lag), pending
    return await redis.xlen(keys.events), 0  # the core never started: all unread
