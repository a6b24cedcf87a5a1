"""Which pool holds which session: a lease per owner in Redis, with a TTL, renewed.

``{p}:lease:{owner}`` holds the pool's name; it is taken with SET NX PX and renewed (or
given up) only by the pool holding it, through compare-and-set scripts, so a pool that
lost its lease (it stalled past the TTL and another pool took over) cannot take it back.
``{p}:pools`` is a sorted set of pools by their last heartbeat: the live ones share the
sessions, each up to ceil(sessions / live pools).
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


class Leases:
    def __init__(self, redis: aioredis.Redis, keys: Keys, pool: str, ttl: float) -> None:
        self.redis = redis
        self.keys = keys
        self.pool = pool
        self.ttl = ttl
        self.held: set[str] = set()
        self.moves = 0  # leases taken over from another (dead or leaving) pool
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def acquire(self, owner: str) -> bool:
        """Takes the owner's lease if nobody holds it."""
        taken = await self.redis.set(self.keys.lease(owner), self.pool, nx=True, px=self.ttl_ms)
        if taken or await self.holder(owner) == self.pool:
            self.held.add(owner)
            return True
        return False

    async def holder(self, owner: str) -> str | None:
        return await self.redis.get(self.keys.lease(owner)) or None

    async def holders(self, owners: list[str]) -> dict[str, str | None]:
        if not owners:
            return {}
        values = await self.redis.mget([self.keys.lease(o) for o in owners])
        return {o: v or None for o, v in zip(owners, values, strict=True)}

    async def renew(self) -> set[str]:
        """Renews every held lease; returns (and forgets) those that are no longer ours."""
        owners = sorted(self.held)
        lost: set[str] = set()
        for start in range(0, len(owners), 500):
            chunk = owners[start : start + 500]
            kept = await self._renew(
                keys=[self.keys.lease(o) for o in chunk], args=[self.pool, self.ttl_ms]
            )
            lost.update(o for o, k in zip(chunk, kept, strict=True) if not k)
        self.held -= lost
        return lost

    async def release(self, owner: str) -> bool:
        self.held.discard(owner)
        return bool(await self._release(keys=[self.keys.lease(owner)], args=[self.pool]))

    # --- live pools ---

    async def heartbeat(self) -> None:
        await self.redis.zadd(self.keys.pools, {self.pool: time.time()})

    async def leave(self) -> None:
        await self.redis.zrem(self.keys.pools, self.pool)

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
