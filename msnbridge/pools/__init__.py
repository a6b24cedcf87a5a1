"""Connection pools: MSN sessions and IRC puppet connections held by `msnbridge pool`
processes instead of the bridge core, linked to it through Redis Streams (docs/deployment.md).

Without ``pools.redis_url`` the core's own `Sessions` is the (in-process) pool.
"""
