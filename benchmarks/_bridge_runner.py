"""The bridge in a process of its own, for the benchmarks: `Bridge(config)` as
`python -m msnbridge -c` runs it, plus JSON-lines commands on stdin (answers on stdout):

    {"command": "login", "users": [[owner, passport, password], ...], "concurrency": 100}
        -> {"online_s": seconds until every Sessions.login returned, "failed": [reasons]}
    {"command": "ghosts"} -> {"online": ghosts online on MSN, "shown": ... on Matrix}
    {"command": "drain"}  -> {"drain_s": seconds until the MSN event queues were empty}
    {"command": "stats"}  -> {"stranger_presence": n, "invitations_failed": n} (ClientStats)
    {"command": "sessions"} -> {"ONLINE": n, ...} the core's sessions by state
    {"command": "stop"}   -> {} and the bridge stops
    {"command": "heap_mark"} -> {} a tracemalloc snapshot to compare with (with
        MSNBRIDGE_BENCH_TRACEMALLOC set)
    {"command": "heap", "top": N} -> {"sites": [[site, bytes, blocks], ...]} what the heap
        gained since the mark, by allocating line, largest first, and {"total": bytes}

MSNBRIDGE_BENCH_PRESENCE picks how ghost presence is kept up, to compare in one run:
``new`` (what the bridge does), ``all`` (the same for every ghost, seen in a room or not)
or ``old`` (before issue 14: every online ghost's presence re-sent at once each 60 s,
whether anyone could see it or not).

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
from msnbridge.event_loop import chosen as chosen_loop
from msnbridge.event_loop import run as run_on_loop
from msnbridge.matrix.ghosts import Ghosts


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


def presence_mode(mode: str) -> None:
    if mode == "new":
        return

    async def every_ghost_visible(self: Ghosts) -> None:
        self._visible = None

    Ghosts.load_visible = every_ghost_visible  # type: ignore[method-assign]
    if mode == "all":
        return
    assert mode == "old", mode

    async def old_refresh(self: Ghosts) -> None:  # the loop as it was before issue 14
        while True:
            await asyncio.sleep(60)
            for passport, (state, message) in list(self._presence.items()):
                try:
                    await self.intent(passport).set_presence(state, message, ignore_cache=True)
                except Exception:
                    pass

    Ghosts._refresh = old_refresh  # type: ignore[method-assign]


_MARK: list[Any] = []


def heap_growth(top: int) -> dict[str, Any]:
    import gc
    import tracemalloc

    gc.collect()
    now = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = now.compare_to(_MARK[0], "lineno")
    sites = [
        [f"{s.traceback[0].filename.split('site-packages/')[-1]}:{s.traceback[0].lineno}",
         s.size_diff, s.count_diff]
        for s in stats[:top]
    ]  # fmt: skip
    peak = tracemalloc.get_traced_memory()[1]
    return {"sites": sites, "total": sum(s.size_diff for s in stats), "peak": peak - _MARK[1]}


def count_statements() -> None:
    """MSNBRIDGE_BENCH_SQL: every database statement counted by its text, printed at exit."""
    import atexit
    from collections import Counter

    from mautrix.util.async_db import Database

    from msnbridge.db.loop_sqlite import LoopSQLiteDatabase

    seen: Counter[str] = Counter()
    # The in-loop SQLite driver has its own methods (a statement that finds the
    # connection busy or held goes on to Database's and is counted twice: rare).
    for cls in (Database, LoopSQLiteDatabase):
        for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            if name not in vars(cls):
                continue
            real = vars(cls)[name]

            async def counted(self, query, *args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
                seen[" ".join(query.split())[:70]] += 1
                return await _real(self, query, *args, **kwargs)

            setattr(cls, name, counted)
    atexit.register(lambda: print(json.dumps(seen.most_common(30)), file=sys.stderr))


def time_collections() -> None:
    """MSNBRIDGE_BENCH_GC: the cyclic garbage collector's runs and CPU time by generation,
    printed at exit (cProfile charges them to whatever call happened to trigger one)."""
    import atexit
    import gc

    spent = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.thread_time()]
        elif started:
            entry = spent[info["generation"]]
            entry[0] += 1
            entry[1] += time.thread_time() - started[0]

    gc.callbacks.append(callback)

    def report() -> None:
        runs = {gen: [n, round(s, 3)] for gen, (n, s) in spent.items()}
        print(json.dumps({"gc": runs}), file=sys.stderr)

    atexit.register(report)


def count_loop_work() -> None:
    """MSNBRIDGE_BENCH_LOOP: tasks created (by coroutine), callbacks scheduled (by what
    they run) and loop iterations (wake-ups), printed at exit; asyncio's loop only."""
    import atexit
    from asyncio import base_events
    from collections import Counter

    tasks: Counter[str] = Counter()
    callbacks: Counter[str] = Counter()
    iterations = [0]
    cls = base_events.BaseEventLoop
    real_create_task, real_call_soon, real_run_once = (
        cls.create_task,
        cls.call_soon,
        cls._run_once,  # type: ignore[attr-defined]
    )

    def create_task(self, coro, **kwargs):  # type: ignore[no-untyped-def]
        tasks[getattr(coro, "__qualname__", type(coro).__name__)] += 1
        return real_create_task(self, coro, **kwargs)

    def call_soon(self, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        what = getattr(callback, "__qualname__", None) or type(callback).__name__
        owner = getattr(callback, "__self__", None)
        if owner is not None and hasattr(owner, "get_coro"):  # a task's step or wake-up
            coro = owner.get_coro()
            what = f"{what}[{getattr(coro, '__qualname__', '?')}]"
        callbacks[what] += 1
        return real_call_soon(self, callback, *args, **kwargs)

    def run_once(self):  # type: ignore[no-untyped-def]
        iterations[0] += 1
        return real_run_once(self)

    cls.create_task = create_task  # type: ignore[method-assign]
    cls.call_soon = call_soon  # type: ignore[method-assign]
    cls._run_once = run_once  # type: ignore[attr-defined]

    def report() -> None:
        print(
            json.dumps(
                {
                    "loop_iterations": iterations[0],
                    "tasks_total": sum(tasks.values()),
                    "tasks": tasks.most_common(25),
                    "call_soon_total": sum(callbacks.values()),
                    "call_soon": callbacks.most_common(40),
                }
            ),
            file=sys.stderr,
        )

    atexit.register(report)


async def main(config_path: str) -> None:
    if os.environ.get("MSNBRIDGE_BENCH_LOOP"):
        count_loop_work()
    if os.environ.get("MSNBRIDGE_BENCH_GC"):
        time_collections()
    if os.environ.get("MSNBRIDGE_BENCH_SQL"):
        count_statements()
    if os.environ.get("MSNBRIDGE_BENCH_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start(1)
    presence_mode(os.environ.get("MSNBRIDGE_BENCH_PRESENCE", "new"))
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
            elif command == "sessions":
                assert bridge.sessions is not None
                answer = {}
                for client in bridge.sessions.all().values():
                    answer[client.state.name] = answer.get(client.state.name, 0) + 1
            elif command == "ghosts":
                assert bridge.matrix is not None
                ghosts = bridge.matrix.ghost_users
                shown = sum(1 for state, _ in ghosts._sent.values() if state != "offline")
                answer = {"online": len(ghosts._presence), "shown": shown}
            elif command == "heap_mark":
                import gc
                import tracemalloc

                gc.collect()
                _MARK[:] = [tracemalloc.take_snapshot(), tracemalloc.get_traced_memory()[0]]
                tracemalloc.reset_peak()
                answer = {}
            elif command == "heap":
                answer = heap_growth(request.get("top", 25))
            elif command == "pymalloc":  # sys._debugmallocstats() summary lines
                import tempfile

                with tempfile.TemporaryFile("w+") as f:
                    saved = os.dup(2)
                    os.dup2(f.fileno(), 2)
                    try:
                        sys._debugmallocstats()
                    finally:
                        os.dup2(saved, 2)
                        os.close(saved)
                    f.seek(0)
                    lines = [
                        ln
                        for ln in f.read().splitlines()
                        if ln.strip()[:1].isdigit() or ln.startswith("#")
                    ]
                answer = {"lines": lines}
            elif command == "smaps":  # RSS by mapping: [heap], anonymous, files
                sizes: dict[str, int] = {}
                name = ""
                with open(f"/proc/{os.getpid()}/smaps") as f:  # noqa: ASYNC230
                    for ln in f:
                        parts = ln.split()
                        if not ln[0].isupper() or ":" not in parts[0]:
                            name = parts[5] if len(parts) > 5 else "[anon]"
                            if name.startswith("/"):
                                name = "files"
                        elif parts[0] == "Rss:":
                            sizes[name] = sizes.get(name, 0) + int(parts[1])
                answer = {"kib": sizes}
            elif command == "trim":  # experiment: what glibc holds freed but not returned
                import ctypes
                import gc

                gc.collect()
                answer = {"trimmed": ctypes.CDLL("libc.so.6").malloc_trim(0)}
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
    # The loop the daemon would run on: uvloop when installed (MSNBRIDGE_EVENT_LOOP).
    print(f"bridge event loop: {chosen_loop()}", file=sys.stderr)
    if profile := os.environ.get("MSNBRIDGE_BENCH_PROFILE"):  # a cProfile dump of the run
        import cProfile

        # MSNBRIDGE_BENCH_PROFILE_CPU: the main thread's CPU time, not the wall clock (on
        # a busy box the wall clock charges a call with the time others ran meanwhile).
        timer = [time.thread_time] if os.environ.get("MSNBRIDGE_BENCH_PROFILE_CPU") else []
        profiler = cProfile.Profile(*timer)
        profiler.runcall(run_on_loop, main(sys.argv[1]))
        profiler.dump_stats(profile)
    else:
        run_on_loop(main(sys.argv[1]))
