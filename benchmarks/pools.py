"""Connection pools (issue 13) under load: N MSN sessions held by two `msnbridge pool`
processes for one core, with a real Redis (a `redis-server` started here), PostgreSQL as
the shared database, Synapse and the MSNP test server, each in its own process.

(a) logins: N bridged users logged in at once through the core (`Sessions.login`, what
    the bot's `login` command calls; the core asks a pool, which logs in to MSN). Prints
    logins per second, the sessions each pool took and its RSS per session, the core's
    CPU during the logins and while idle (the pools' beside it).
(b) core restart: with the N sessions held, the core is SIGKILLed and started again; an
    MSN friend of one bridged user sends a numbered text every 0.2 s from the kill on
    (a failed send is sent again) until one reaches the owner's Matrix room. Prints the
    time until the core is up, until the first text arrives and until the core sees all
    N sessions online again, and the sign-ins and sign-outs the MSNP test server counted
    from the kill until then (the friend stays signed in). The same restart without
    pools (`pools.redis_url` empty: the core holds the sessions and every one logs in
    again) runs beside it in a stack of its own, N sessions logged in the same way.

    .venv/bin/python benchmarks/pools.py [--sessions 200] [--pools 2] [--idle 10]
        [--concurrency 100] [--part all|pools|plain]

The bridged users have no MSN contacts (the probe user has one: the friend), so the
figures are the sessions' and the pools' cost, not the ghosts'. Owners other than the
probe's are Matrix IDs that are not registered (nothing here invites them).
PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (a database made and dropped here).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from _stack import (
    ROOT,
    BridgeProcess,
    Client,
    Inbox,
    Matrix,
    bridge_config,
    client_config,
    machine,
    msn_call,
    proc_cpu_s,
    proc_rss_kib,
    start_msn_server,
    start_synapse,
)

from msnbridge.pools.redis_link import key_prefix

FRIEND = "friend@example.com"


def accounts(path: Path, n: int) -> list[str]:
    """n bridged accounts without contacts, but the first, whose contact is the friend."""
    passports = [f"b{i}@example.com" for i in range(n)]
    entries = [
        {"passport": p, "password": p.split("@")[0], "nick": p.split("@")[0],
         "contacts": [FRIEND] if i == 0 else []}
        for i, p in enumerate(passports)
    ]  # fmt: skip
    entries.append({"passport": FRIEND, "password": "friend", "nick": "Friend",
                    "contacts": [passports[0]]})  # fmt: skip
    path.write_text(json.dumps(entries))
    return passports


# --- Redis and PostgreSQL ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_redis(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = aioredis.Redis.from_url(url)
    for _ in range(100):
        try:
            await client.ping()
            break
        except aioredis.ConnectionError:
            await asyncio.sleep(0.05)
    else:
        raise SystemExit("redis-server did not answer")
    await client.aclose()
    return proc, url


class Postgres:
    ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

    def __init__(self) -> None:
        self.name = f"msnbridge_bench_{secrets.token_hex(4)}"
        self.url = f"postgres://postgres@127.0.0.1:5432/{self.name}"

    async def create(self) -> None:
        admin = await asyncpg.connect(self.ADMIN, timeout=5)
        await admin.execute(f'CREATE DATABASE "{self.name}"')
        await admin.close()

    async def drop(self) -> None:
        admin = await asyncpg.connect(self.ADMIN, timeout=5)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.close()


# --- pools ---------------------------------------------------------------------------------


class PoolProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, config: Path, log: Path) -> PoolProcess:
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "msnbridge", "pool", "-c", str(config),
                cwd=ROOT, stdout=out, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)  # hands over; nobody takes: signs out
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def held_per_pool(redis_url: str, prefix: str) -> collections.Counter[str]:
    """Sessions per pool, from the lease keys (value: the holding pool's name)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in client.scan_iter(f"{prefix}:lease:*", count=1000)]
        values = await client.mget(keys) if keys else []
    finally:
        await client.aclose()
    return collections.Counter(v for v in values if v)


async def wait_pools(redis_url: str, prefix: str, count: int) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for _ in range(600):
            if await client.zcard(f"{prefix}:pools") >= count:
                await asyncio.sleep(1)  # the first round done: RSS settled
                return
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    raise SystemExit(f"the {count} pools did not start (see pool*.log with --keep)")


# --- one stack -----------------------------------------------------------------------------


async def wait_online(core: BridgeProcess, n: int, timeout: float) -> float:
    """Seconds until the core sees n sessions ONLINE (nan on timeout)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if (await core.call("sessions")).get("ONLINE", 0) >= n:
            return time.perf_counter() - t0
        await asyncio.sleep(0.2)
    return float("nan")


async def run_stack(args: argparse.Namespace, pooled: bool) -> dict[str, Any]:
    n = args.sessions
    work = Path(tempfile.mkdtemp(prefix="msnbridge-bench-pools-"))
    passports = accounts(work / "accounts.json", n)
    pg = Postgres()
    await pg.create()
    redis_proc, redis_url = await start_redis(work) if pooled else (None, "")
    msn_proc, info = await start_msn_server("--accounts", str(work / "accounts.json"),
                                            "--qng-interval", "50", "--control")  # fmt: skip
    synapse = await asyncio.to_thread(start_synapse)
    matrix = Matrix(synapse)
    core: BridgeProcess | None = None
    pools: list[PoolProcess] = []
    friend: Client | None = None
    out: dict[str, Any] = {"pooled": pooled}
    try:
        path = bridge_config(synapse, info, work)
        config = json.loads(path.read_text())
        config["database"] = pg.url
        if pooled:
            config["pools"] = {"redis_url": redis_url, "lease_ttl": args.lease_ttl,
                               "command_timeout": 120}  # fmt: skip
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        core = await BridgeProcess.start(path)
        for i in range(args.pools if pooled else 0):
            pools.append(await PoolProcess.start(path, work / f"pool{i}.log"))
        if pools:  # every pool started (its heartbeat in), so each may take a share
            await wait_pools(redis_url, key_prefix(config["appservice"]["id"]), len(pools))
        pool_rss0 = {p.pid: proc_rss_kib(p.pid) for p in pools}
        pool_cpu0 = {p.pid: proc_cpu_s(p.pid) for p in pools}

        # (a) logins
        owner = await matrix.register_many(["probe"])
        probe = owner[0]
        owners = [probe.user_id] + [f"@bench{i}:{synapse.domain}" for i in range(1, n)]
        users = [[o, p, p.split("@")[0]] for o, p in zip(owners, passports, strict=True)]
        core_rss0, cpu0 = core.rss_kib(), core.cpu_s()
        answer = await core.call("login", users=users, concurrency=args.concurrency)
        out["login_s"] = answer["online_s"]
        out["failed"] = len(answer["failed"])
        if answer["failed"]:
            print(f"  {len(answer['failed'])} logins failed, e.g. {answer['failed'][:2]}",
                  file=sys.stderr)  # fmt: skip
        out["login_core_cpu_s"] = core.cpu_s() - cpu0
        out["login_pool_cpu_s"] = sum(proc_cpu_s(p.pid) - pool_cpu0[p.pid] for p in pools)
        await asyncio.sleep(2)
        out["core_rss_kib"] = (core.rss_kib() - core_rss0) / n
        if pooled:
            held = await held_per_pool(redis_url, key_prefix(config["appservice"]["id"]))
            out["pools"] = []
            for p in pools:
                count = sum(c for name, c in held.items() if f"-{p.pid}." in name)
                grown = proc_rss_kib(p.pid) - pool_rss0[p.pid]
                out["pools"].append({"sessions": count, "rss_mib": proc_rss_kib(p.pid) / 1024,
                                     "rss_kib_per_session": grown / max(count, 1)})  # fmt: skip
        # idle
        cpu0, wall0 = core.cpu_s(), time.perf_counter()
        pcpu0 = {p.pid: proc_cpu_s(p.pid) for p in pools}
        await asyncio.sleep(args.idle)
        wall = time.perf_counter() - wall0
        out["idle_core_pct"] = (core.cpu_s() - cpu0) / wall * 100
        out["idle_pool_pct"] = [(proc_cpu_s(p.pid) - pcpu0[p.pid]) / wall * 100 for p in pools]

        # (b) the probe conversation up, then the core restart
        friend = Client(client_config(info, FRIEND, "friend"))
        await friend.start()
        await friend.wait_online(timeout=60)
        arrived: dict[str, float] = {}
        probe.on_text = lambda text, at: arrived.setdefault(text, at)
        Inbox(friend, lambda text, at: None)
        probe.start_sync()
        await send_until(friend, passports[0], "hello", arrived, 120)
        out["online_before"] = (await core.call("sessions")).get("ONLINE", 0)

        before = await msn_counts(msn_proc)
        core.proc.kill()
        await core.proc.wait()
        killed = time.perf_counter()
        sender = asyncio.create_task(send_until(friend, passports[0], "probe", arrived, 900))
        core = await BridgeProcess.start(path)
        out["core_up_s"] = time.perf_counter() - killed
        first = await sender
        out["flow_s"] = first - killed
        await wait_online(core, n, 900)
        out["all_online_s"] = time.perf_counter() - killed
        out["online_after"] = (await core.call("sessions")).get("ONLINE", 0)
        after = await msn_counts(msn_proc)
        out["msn_logins"], out["msn_sign_outs"] = after[0] - before[0], after[1] - before[1]
        await probe.stop_sync()
        return out
    finally:
        if friend is not None:
            await friend.stop()
        if core is not None:
            await core.stop()
        await asyncio.gather(*(p.stop() for p in pools))
        await matrix.close()
        for proc in (msn_proc, redis_proc):
            if proc is not None:
                proc.terminate()
                await proc.wait()
        await asyncio.to_thread(synapse.stop)
        await pg.drop()
        shutil.rmtree(synapse.workdir, ignore_errors=True)
        if args.keep:
            print(f"  logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


async def msn_counts(msn_proc: asyncio.subprocess.Process) -> tuple[int, int]:
    """(sign-ins, sign-outs contacts saw) of every account so far, at the test server."""
    stats = await msn_call(msn_proc, "stats")
    return stats["account_logins"], stats["sign_outs"]


async def send_until(
    friend: Client, to: str, tag: str, arrived: dict[str, float], timeout: float
) -> float:
    """Sends `tag k` every 0.2 s (a failed send too) until one reaches Matrix; returns the
    perf_counter time it arrived."""
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < timeout:
        if hits := [at for text, at in arrived.items() if text.startswith(tag + " ")]:
            return min(hits)
        k += 1
        try:
            await asyncio.wait_for(friend.conversation([to]).send_text(f"{tag} {k}"), 5)
        except Exception:  # offline, refused: sent again, as a person would
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"no '{tag}' text reached Matrix within {timeout:.0f} s")


def report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    n = args.sessions
    print(f"{n} MSN sessions (MSNP{os.environ.get('MSNBRIDGE_BENCH_MSNP', '12')}), "
          f"{args.concurrency} logins in flight; {machine()}")  # fmt: skip
    for r in runs:
        label = f"with {args.pools} pools" if r["pooled"] else "without pools (core holds all)"
        print(f"\n{label}")
        print(f"  logins                       {n - r['failed']}/{n} in {r['login_s']:.1f} s "
              f"({n / r['login_s']:.0f}/s)")  # fmt: skip
        print(f"  core CPU during the logins   {r['login_core_cpu_s']:.1f} s "
              f"({r['login_core_cpu_s'] / n * 1000:.2f} ms/session)")  # fmt: skip
        if r["pooled"]:
            print(f"  pools' CPU during the logins {r['login_pool_cpu_s']:.1f} s")
            for i, p in enumerate(r["pools"]):
                print(f"  pool {i}: {p['sessions']} sessions, RSS {p['rss_mib']:.0f} MiB, "
                      f"{p['rss_kib_per_session']:.1f} KiB per session")  # fmt: skip
        print(f"  core RSS growth per session  {r['core_rss_kib']:.1f} KiB")
        idle = f"  core CPU idle                {r['idle_core_pct']:.2f} % of a core"
        if r["pooled"]:
            idle += " (pools: " + ", ".join(f"{c:.2f} %" for c in r["idle_pool_pct"]) + ")"
        print(idle)
        print(f"  core SIGKILL + start: up after {r['core_up_s']:.1f} s, first MSN text on "
              f"Matrix after {r['flow_s']:.1f} s, all {r['online_after']}/{n} sessions "
              f"online after {r['all_online_s']:.1f} s")  # fmt: skip
        print(f"  MSN meanwhile (test server)  {r['msn_logins']} sign-ins, "
              f"{r['msn_sign_outs']} sign-outs")  # fmt: skip


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--pools", type=int, default=2)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    ap.add_argument("--concurrency", type=int, default=100, help="logins in flight at once")
    ap.add_argument("--lease-ttl", type=int, default=15)
    ap.add_argument("--part", choices=("all", "pools", "plain"), default="all")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    runs = []
    if args.part in ("all", "pools"):
        runs.append(await run_stack(args, pooled=True))
    if args.part in ("all", "plain"):
        runs.append(await run_stack(args, pooled=False))
    report(args, runs)


if __name__ == "__main__":
    asyncio.run(main())
