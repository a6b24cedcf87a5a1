"""Many puppet sessions in one process against the MSNP test server in another.

Prints: time to log them all in, RSS per session beyond the process's baseline, and CPU
used while idle with keepalives running.

    .venv/bin/python benchmarks/sessions.py [--sessions 1000] [--idle 20] [--version 12]
    .venv/bin/python benchmarks/sessions.py --version 12 --version 18   # side by side

With several ``--version`` each runs in a fresh process of its own (so one version's
memory does not count against the next) and a table compares them. MSNP13-18 logins
also go through the SOAP services (RST, address book, sharing, offline messages), each
session with its own HTTP client unless ``--shared-http`` (one for all, as the bridge's
``Sessions`` share one).

    .venv/bin/python benchmarks/sessions.py --sessions 3000 --version 12 --version 18 \
        --shared-http --baseline /tmp/old   # old tree: git archive <commit> | tar -x -C /tmp/old
    .venv/bin/python benchmarks/sessions.py --sessions 300 --tracemalloc 25

RSS per session counts everything from before the ``Client`` objects are made to after
all are online. ``--servers K`` splits the accounts over K test server processes (client
i logs in to server i mod K). ``--tracemalloc N`` prints (to stderr) the N allocation
sites that hold the most bytes per session once all are online.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "--code" in sys.argv:  # the puppets under test from another tree (a baseline)
    sys.path.insert(0, sys.argv[sys.argv.index("--code") + 1])

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


async def start_servers(
    n: int, qng: int, count: int
) -> list[tuple[asyncio.subprocess.Process, dict]]:
    """``count`` test servers, each with its share of the accounts (one Python process
    logs in some thousands; 10,000 want several)."""
    per = -(-n // count)
    return list(await asyncio.gather(*(start_server(per, qng) for _ in range(count))))


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


def print_top_sites(base: tracemalloc.Snapshot, top: int, sessions: int) -> None:
    """Bytes still held per session, by the line that allocated them (Python heap only:
    tracemalloc does not see the allocator's slack, so RSS per session is higher)."""
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    keep = (tracemalloc.Filter(False, tracemalloc.__file__),)
    diff = snap.filter_traces(keep).compare_to(base.filter_traces(keep), "lineno")
    total = sum(d.size_diff for d in diff)
    print(
        f"tracemalloc: {total / sessions / 1024:.1f} KiB per session on the Python heap",
        file=sys.stderr,
    )
    print(f"{'KiB/session':>11} {'blocks/session':>14}  site", file=sys.stderr)
    for d in diff[:top]:
        frame = d.traceback[0]
        where = (
            os.path.relpath(frame.filename, ROOT)
            if frame.filename.startswith(str(ROOT))
            else frame.filename
        )
        print(
            f"{d.size_diff / sessions / 1024:11.2f} {d.count_diff / sessions:14.1f}  "
            f"{where}:{frame.lineno}",
            file=sys.stderr,
        )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement")
    ap.add_argument(
        "--version", type=int, action="append", help="MSNP version (repeat to compare; 12)"
    )
    ap.add_argument("--concurrency", type=int, default=100, help="logins in flight at once")
    ap.add_argument("--qng", type=int, default=5, help="keepalive interval the server asks for")
    ap.add_argument("--shared-http", action="store_true", help="one aiohttp session for all")
    ap.add_argument("--servers", type=int, default=1, help="test server processes")
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the puppets of another tree (git archive of the old commit), "
        "each session with its own HTTP client as the bridge ran them",
    )
    ap.add_argument("--code", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument(
        "--tracemalloc",
        type=int,
        nargs="?",
        const=25,
        default=0,
        metavar="N",
        help="print the top N allocation sites (by line) per session after the logins",
    )
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.version = args.version or [12]
    return args


def compare(args: argparse.Namespace) -> None:
    """Each version in a process of its own, then one table."""
    rows = []
    runs = [
        (v, code)
        for v in args.version
        for code in ([args.baseline, None] if args.baseline else [None])
    ]
    for version, code in runs:
        shared = args.shared_http and code is None
        cmd = [
            sys.executable,
            __file__,
            "--sessions",
            str(args.sessions),
            "--idle",
            str(args.idle),
            "--version",
            str(version),
            "--concurrency",
            str(args.concurrency),
            "--qng",
            str(args.qng),
            "--json",
            "--servers",
            str(args.servers),
            *(["--shared-http"] if shared else []),
            *(["--tracemalloc", str(args.tracemalloc)] if args.tracemalloc else []),
            *(["--code", code] if code else []),
        ]
        print(f"MSNP{version} {'baseline' if code else 'this tree'}:", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["label"] = f"MSNP{version}" + (" old" if code else " new" if args.baseline else "")
        rows.append(row)
    print(
        f"{args.sessions} sessions, 50 contacts each, {args.concurrency} logins in flight, "
        f"{args.servers} server process(es)"
    )
    print(f"{'':24}" + "".join(f"{r['label']:>12}" for r in rows))
    for key, label, fmt in (
        ("online", "sessions online", "{:.0f}"),
        ("logins_per_s", "logins per second", "{:.1f}"),
        ("rss_kib", "RSS per session (KiB)", "{:.1f}"),
        ("idle_cpu_pct", "idle CPU (% of a core)", "{:.2f}"),
    ):
        print(f"{label:24}" + "".join(f"{fmt.format(r[key]):>12}" for r in rows))


async def main() -> None:
    args = parse_args()
    if len(args.version) > 1 or args.baseline:
        compare(args)
        return
    version = args.version[0]
    servers = await start_servers(args.sessions, args.qng, args.servers)
    k = len(servers)
    http = None
    if args.shared_http:
        import aiohttp

        # As the bridge's Sessions make theirs.
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
    try:
        import gc

        gc.collect()
        base_rss = rss_kib()
        if args.tracemalloc:
            tracemalloc.start()
            base_snap = tracemalloc.take_snapshot()
        clients = [
            Client(
                ClientConfig(
                    passport=f"user{i // k}@example.com",
                    password=f"password{i // k}",
                    dispatch_host=servers[i % k][1]["host"],
                    dispatch_port=servers[i % k][1]["dispatch_port"],
                    nexus_url=servers[i % k][1]["nexus_url"],
                    services_url=servers[i % k][1]["services_url"],
                    max_version=version,
                    min_version=version,
                    timeout=60,
                    ping_interval=args.qng,
                    sync_timeout=120,
                ),
                http=http,
            )
            for i in range(args.sessions)
        ]
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
        if args.tracemalloc:
            print_top_sites(base_snap, args.tracemalloc, args.sessions)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(args.idle)
        idle_cpu = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        online = sum(1 for c in clients if c.state.name == "ONLINE")
        if args.json:
            result = {
                "version": version,
                "online": online,
                "logins_per_s": args.sessions / login_s,
                "rss_kib": per_session,
                "idle_cpu_pct": idle_cpu * 100,
            }
            print(json.dumps(result))
            await asyncio.gather(*(c.stop() for c in clients))
            return
        print(
            f"sessions online          {online}/{args.sessions} (MSNP{version}, 50 contacts each)"
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
        if http is not None:
            await http.close()
        for proc, _info in servers:
            proc.terminate()
        for proc, _info in servers:
            await proc.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
