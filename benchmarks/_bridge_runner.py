"""The bridge in a process of its own, for the benchmarks: `Bridge(config)` as
`python -m msnbridge -c` runs it, plus JSON-lines commands on stdin (answers on stdout):

    {"command": "login", "users": [[owner, passport, password], ...], "concurrency": 100}
        -> {"online_s": seconds until every Sessions.login returned, "failed": [reasons]}
    {"command": "drain"}  -> {"drain_s": seconds until the MSN event queues were empty}
    {"command": "stats"}  -> {"stranger_presence": n, "invitations_failed": n} (ClientStats)
    {"command": "stop"}   -> {} and the bridge stops

Logins go straight to the core's `Sessions.login`, as the bot's `login` command calls it,
without a management room per user (a thousand DM rooms with the bot would measure
Synapse's room creation, not the bridge).
"""

from __future__ import annotations

import asyncio
import json
import logging.config
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msnbridge.bridge import Bridge
from msnbridge.config import load_config
from msnbridge.core.sessions import LoginFailed


async def login(bridge: Bridge, users: list[list[str]], concurrency: int) -> dict[str, Any]:
    assert bridge.sessions is not None
    sessions = bridge.sessions
    sem = asyncio.Semaphore(concurrency)
    failed: list[str] = []

    async def one(owner: str, passport: str, password: str) -> None:
        async with sem:
            try:
                await sessions.login(owner, "matrix", passport, password)
            except LoginFailed as e:
                failed.append(f"{passport}: {e}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(*u) for u in users))
    return {"online_s": time.perf_counter() - t0, "failed": failed}


async def main(config_path: str) -> None:
    config = load_config(config_path)
    logging.config.dictConfig(dict(config["logging"]))
    bridge = Bridge(config)
    await bridge.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"pid": os.getpid()}), flush=True)
    try:
        while line := await reader.readline():
            request = json.loads(line)
            command = request["command"]
            if command == "login":
                answer = await login(bridge, request["users"], request.get("concurrency", 100))
            elif command == "drain":
                assert bridge.router is not None
                t0 = time.perf_counter()
                await bridge.router.events.drain()
                answer = {"drain_s": time.perf_counter() - t0}
            elif command == "stats":
                stats = bridge.puppet_stats
                answer = {
                    "stranger_presence": stats.stranger_presence,
                    "invitations_failed": stats.invitations_failed,
                }
            elif command == "stop":
                answer = {}
            else:
                answer = {"error": f"unknown command {command}"}
            print(json.dumps(answer), flush=True)
            if command == "stop":
                break
    finally:
        await bridge.stop()


if __name__ == "__main__":
    if profile := os.environ.get("MSNBRIDGE_BENCH_PROFILE"):  # a cProfile dump of the run
        import cProfile

        cProfile.run("asyncio.run(main(sys.argv[1]))", profile)
    else:
        asyncio.run(main(sys.argv[1]))
