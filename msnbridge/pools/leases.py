"""Which pool holds which session: a lease per owner in Redis, with a TTL, renewed.

``{p}:lease:{owner}`` holds the pool's name; it is taken with SET NX PX and renewed (or
given up) only by the pool holding it, through compare-and-set scripts, so a pool that
lost its lease (it stalled past the TTL and another pool took over) cannot take it back.
``{p}:pools`` is a sorted set of pools by their last heartbeat: the live ones share the
sessions, each up to ceil(sessions / live pools).

So that a pool need not look at every lease to find the ones nobody holds, it keeps
``{p}:holds:{pool}``, the owners whose leases it took (added with the lease, removed when
it gives one up or finds it lost), and a lease given up for another pool to take is put in
``{p}:unheld``: the leases of a pool whose heartbeat stopped are in its holds set, the
others' in the unheld set.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis

from .redis_link import Keys

# KEYS: leases; ARGV: pool, ttl ms. 1 per lease still ours (its TTL renewed), else 0.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
# KEYS: lease; ARGV: pool. Deletes the lease only if it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS: lease, the pool's holds set, the unheld set; ARGV: pool, ttl ms, owner. Takes the
# lease if nobody holds it (1), or says it is ours already (1), else 0.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('SREM', KEYS[3], ARGV[3])
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
return 0
"""
# KEYS: lease, the pool's holds set, the unheld set; ARGV: pool, owner, "1" to leave it
# for another pool to take. Gives the lease up only if it is ours.
_GIVE_UP = """
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] == '1' then
    redis.call('SADD', KEYS[3], ARGV[2])
  end
  return 1
end
return 0
"""
RENEW_CHUNK = 500  # leases per script call: Redis runs one script at a time


class Leases:
    """A pool's leases. With ``tracked`` (MSN sessions, which other pools take over) the
    holds and unheld sets are kept; IRC connections are reopened by the core instead."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, pool: str, ttl: float, *, tracked: bool = False
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.pool = pool
        self.ttl = ttl
        self.tracked = tracked
        self.held: set[str] = set()
        self.moves = 0  # leases taken over from another (dead or leaving) pool
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._give_up = redis.register_script(_GIVE_UP)

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def acquire(self, owner: str) -> bool:
        """Takes the owner's lease if nobody holds it."""
        lease = self.keys.lease(owner)
        if self.tracked:
            keys = [lease, self.keys.holds(self.pool), self.keys.unheld]
            taken = await self._acquire(keys=keys, args=[self.pool, self.ttl_ms, owner])
        else:
            taken = await self.redis.set(lease, self.pool, nx=True, px=self.ttl_ms)
            taken = taken or await self.holder(owner) == self.pool
        if taken:
            self.held.add(owner)
        return bool(taken)

    async def holder(self, owner: str) -> str | None:
        return await self.redis.get(self.keys.lease(owner)) or None

    async def holders(self, owners: list[str]) -> dict[str, str | None]:
        if not owners:
            return {}
        values = await self.redis.mget([self.keys.lease(o) for o in owners])
        return {o: v or None for o, v in zip(owners, values, strict=True)}

    async def renew(self) -> set[str]:
        """Renews every held lease (one round trip); returns (and forgets) those that are
        no longer ours."""
        owners = list(self.held)
        if not owners:
            return set()
        lease = self.keys.lease
        args = [self.pool, self.ttl_ms]
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(owners), RENEW_CHUNK):
                chunk = owners[start : start + RENEW_CHUNK]
                await self._renew(keys=[lease(o) for o in chunk], args=args, client=pipe)
            replies = await pipe.execute()
        kept = [k for reply in replies for k in reply]
        lost = {o for o, k in zip(owners, kept, strict=True) if not k}
        if lost:
            self.held -= lost
            if self.tracked:
                # Lost by expiring (this pool stalled) rather than taken: nobody holds it
                # now, so it goes where the others look (the ones taken are settled there).
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.srem(self.keys.holds(self.pool), *lost)
                    pipe.sadd(self.keys.unheld, *lost)
                    await pipe.execute()
        return lost

    async def release(self, owner: str, *, hand_on: bool = True) -> bool:
        """Gives the lease up; a tracked one is left for another pool to take unless
        ``hand_on`` is false (the owner logged out)."""
        self.held.discard(owner)
        if self.tracked:
            keys = [self.keys.lease(owner), self.keys.holds(self.pool), self.keys.unheld]
            args = [self.pool, owner, "1" if hand_on else "0"]
            return bool(await self._give_up(keys=keys, args=args))
        return bool(await self._release(keys=[self.keys.lease(owner)], args=[self.pool]))

    # --- finding leases nobody holds, without looking at every one ---

    async def given_up(self) -> set[str]:
        """Owners whose lease a pool gave up (handed over, or it could not start it)."""
        return set(await self.redis.smembers(self.keys.unheld))

    async def taken_by(self, pool: str) -> set[str]:
        """Owners whose leases `pool` took (some may have expired or moved since)."""
        return set(await self.redis.smembers(self.keys.holds(pool)))

    async def for_others(self, owners: set[str]) -> None:
        """Leases nobody holds that this pool does not take (it has its share): in the
        unheld set, another pool takes them in its next round."""
        if owners:
            await self.redis.sadd(self.keys.unheld, *owners)

    async def settled(self, pool: str | None, owners: set[str]) -> None:
        """Forgets owners that need no taking any more: from the unheld set (None) or
        from `pool`'s holds set."""
        if owners:
            key = self.keys.unheld if pool is None else self.keys.holds(pool)
            await self.redis.srem(key, *owners)

    async def counts(self, pools: list[str]) -> dict[str, int]:
        """How many leases each pool took (its holds set's size)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for pool in pools:
                pipe.scard(self.keys.holds(pool))
            sizes = await pipe.execute()
        return dict(zip(pools, sizes, strict=True))

    async def forget_pool(self, pool: str) -> None:
        """A dead pool's holds set joins the unheld set (its leases have expired)."""
        holds = self.keys.holds(pool)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sunionstore(self.keys.unheld, [self.keys.unheld, holds])
            pipe.delete(holds)
            await pipe.execute()

    # --- live pools ---

    async def heartbeat(self) -> None:
        await self.redis.zadd(self.keys.pools, {self.pool: time.time()})

    async def leave(self) -> None:
        await self.redis.zrem(self.keys.pools, self.pool)

    async def beat_times(self) -> dict[str, float]:
        """Every pool in the sorted set with its last heartbeat."""
        return dict(await self.redis.zrange(self.keys.pools, 0, -1, withscores=True))

    async def live_pools(self) -> list[str]:
        cutoff = time.time() - 3 * self.ttl
        return list(await self.redis.zrangebyscore(self.keys.pools, cutoff, "+inf"))

    async def fresh_pools(self) -> list[str]:
        """Pools that beat within the last TTL: surely alive (one that just died still
        counts as live for 3 TTLs, and must not be handed sessions)."""
        cutoff = time.time() - self.ttl
        return list(await self.redis.zrangebyscore(self.keys.pools, cutoff, "+inf"))

    async def dead_pools(self) -> list[str]:
        cutoff = time.time() - 3 * self.ttl
        return list(await self.redis.zrangebyscore(self.keys.pools, "-inf", f"({cutoff}"))

    async def share(self, total: int) -> int:
        """How many sessions this pool should hold at most."""
        live = set(await self.live_pools()) | {self.pool}
        return math.ceil(total / len(live)) if total else 0
