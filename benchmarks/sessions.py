"""Many puppet sessions in one process against the MSNP test server in another.

Prints: time to log them all in, RSS per session beyond the process's baseline, and CPU
used while idle with keepalives running.

    .venv/bin/python benchmarks/sessions.py [--sessions 1000] [--idle 20] [--version 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from puppets import Client, ClientConfig  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def start_server(n: int, qng: int) -> tuple[asyncio.subprocess.Process, dict]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.msnp_server",
        "--demo",
        str(n),
        "--no-chl",
        "--qng-interval",
        str(qng),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise SystemExit("the test server did not start")
    return proc, json.loads(line)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement")
    ap.add_argument("--version", type=int, default=12)
    ap.add_argument("--concurrency", type=int, default=100, help="logins in flight at once")
    ap.add_argument("--qng", type=int, default=5, help="keepalive interval the server asks for")
    args = ap.parse_args()

    proc, info = await start_server(args.sessions, args.qng)
    try:
        clients = [
            Client(
                ClientConfig(
                    passport=f"user{i}@example.com",
                    password=f"password{i}",
                    dispatch_host=info["host"],
                    dispatch_port=info["dispatch_port"],
                    nexus_url=info["nexus_url"],
                    max_version=args.version,
                    min_version=args.version,
                    timeout=60,
                    ping_interval=args.qng,
                    sync_timeout=120,
                )
            )
            for i in range(args.sessions)
        ]
        import gc

        gc.collect()
        base_rss = rss_kib()
        sem = asyncio.Semaphore(args.concurrency)

        async def login(c: Client) -> None:
            async with sem:
                await c.start()
                await c.wait_online(timeout=120)

        t0 = time.perf_counter()
        await asyncio.gather(*(login(c) for c in clients))
        login_s = time.perf_counter() - t0
        gc.collect()
        per_session = (rss_kib() - base_rss) / args.sessions
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(args.idle)
        idle_cpu = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        online = sum(1 for c in clients if c.state.name == "ONLINE")
        print(
            f"sessions online          {online}/{args.sessions} (MSNP{args.version}, "
            f"50 contacts each)"
        )
        print(
            f"time to log all in       {login_s:.2f} s "
            f"({args.sessions / login_s:.0f} logins/s, {args.concurrency} in flight)"
        )
        print(
            f"RSS per session          {per_session:.1f} KiB beyond a {base_rss / 1024:.0f} "
            "MiB baseline"
        )
        print(f"idle CPU (keepalive {args.qng} s) {idle_cpu * 100:.2f} % of one core")
        await asyncio.gather(*(c.stop() for c in clients))
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
