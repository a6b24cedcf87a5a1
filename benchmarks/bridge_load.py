"""The bridge under load, against Synapse and the MSNP test server (each in its own
process, the bridge too).

(a) logins: N bridged users (Matrix users registered with the shared-secret admin API)
    logged in to MSN at once, each with 50 contacts (the test server's --demo N). Logins
    go straight to the core's `Sessions.login` (what the bot's `login` command calls),
    not through a DM with the bot per user. Prints the time until every session is
    online and until the bridge has shown every contact on Matrix (ghost names and
    presence), the bridge's RSS per bridged user and its CPU while idle.
(b) storm: C conversations (a bridged Matrix user and an MSN friend each) sending both
    ways for a while, each sender waiting for its previous message to arrive, then
    `--think` seconds; the same traffic between MSN clients through the test server
    alone beside it. Every text carries a unique id: losses and duplicates are counted
    end to end.

    .venv/bin/python benchmarks/bridge_load.py [--users 200] [--conversations 100]
        [--duration 60] [--think 1.0] [--idle 30] [--part all|logins|storm]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import tempfile
import time
from pathlib import Path

from _stack import (
    BridgeProcess,
    Client,
    Inbox,
    Matrix,
    User,
    bridge_config,
    machine,
    median,
    online_clients,
    pair_accounts,
    password,
    percentile,
    proc_cpu_s,
    start_msn_server,
    start_synapse,
    stop_stack,
)
from _traffic import Tracker

PUTS: list[float] = []  # how long each owner's PUT took (with MSNBRIDGE_BENCH_DEBUG)


async def logins(
    args: argparse.Namespace, bridge: BridgeProcess, matrix: Matrix, synapse_pid: int
) -> None:
    n = args.users
    t0 = time.perf_counter()
    users = await matrix.register_many([f"load{i}" for i in range(n)])
    register_s = time.perf_counter() - t0
    await asyncio.sleep(2)
    if args.tracemalloc:
        await bridge.call("heap_mark")
    rss0, cpu0, hs0 = bridge.rss_kib(), bridge.cpu_s(), proc_cpu_s(synapse_pid)
    smaps0 = (await bridge.call("smaps"))["kib"] if os.environ.get("MSNBRIDGE_BENCH_TRIM") else {}
    if os.environ.get("MSNBRIDGE_BENCH_TRIM"):
        for line in (await bridge.call("pymalloc"))["lines"]:
            print("   ", line)
    batch = [[u.user_id, f"user{i}@example.com", f"password{i}"] for i, u in enumerate(users)]
    answer = await bridge.call("login", users=batch, concurrency=args.concurrency)
    online_s = answer["online_s"]
    if args.tracemalloc:  # what is held while the sides catch up
        heap = await bridge.call("heap", top=12)
        print(f"heap per user when all online  {heap['total'] / n / 1024:.1f} KiB")
        for site, size, count in heap["sites"]:
            print(f"{size / n / 1024:11.2f} {count / n:12.1f}  {site}")
    drain = await bridge.call("drain")
    settled_s = online_s + drain["drain_s"]
    login_cpu, hs_cpu = bridge.cpu_s() - cpu0, proc_cpu_s(synapse_pid) - hs0
    await asyncio.sleep(2)
    rss1 = bridge.rss_kib()
    cpu1, hs1, wall1 = bridge.cpu_s(), proc_cpu_s(synapse_pid), time.perf_counter()
    spy = None
    if args.spy_synapse:  # py-spy samples Synapse while the bridge idles (raw stacks)
        out = f"{args.spy_synapse}-{os.environ.get('MSNBRIDGE_BENCH_PRESENCE', 'new')}.txt"
        spy = await asyncio.create_subprocess_exec(
            "py-spy", "record", "-p", str(synapse_pid), "-d", str(int(args.idle)),
            "-r", "20", "-f", "raw", "-o", out,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    await asyncio.sleep(args.idle)
    wall = time.perf_counter() - wall1
    idle, hs_idle = (bridge.cpu_s() - cpu1) / wall, (proc_cpu_s(synapse_pid) - hs1) / wall
    online = n - len(answer["failed"])
    print()
    print(f"(a) {n} bridged users logging in at once ({args.concurrency} in flight)")
    print(f"Matrix users registered        {n} in {register_s:.1f} s (shared-secret admin API)")
    print(f"sessions online                {online}/{n} (50 contacts each)")
    if answer["failed"]:
        print(f"  failed, e.g.                 {answer['failed'][:3]}")
    print(f"time until all online          {online_s:.2f} s ({online / online_s:.0f} logins/s)")
    print(f"time until Matrix caught up    {settled_s:.2f} s (ghost names and presence sent)")
    print(f"bridge CPU for the logins      {login_cpu:.1f} s ({login_cpu / n * 1000:.1f} ms/user)")
    print(f"Synapse CPU meanwhile          {hs_cpu:.1f} s")
    print(
        f"bridge RSS per bridged user    {(rss1 - rss0) / n:.1f} KiB "
        f"(beyond {rss0 / 1024:.0f} MiB after start-up; {rss1 / 1024:.0f} MiB in all)"
    )
    print(
        f"bridge idle CPU ({args.idle:.0f} s)         {idle * 100:.2f} % of one core "
        f"(Synapse meanwhile {hs_idle * 100:.2f} %)"
    )
    if os.environ.get("MSNBRIDGE_BENCH_TRIM"):
        smaps1 = (await bridge.call("smaps"))["kib"]
        for kind in sorted(smaps1, key=lambda k: smaps0.get(k, 0) - smaps1[k]):
            grown = (smaps1[kind] - smaps0.get(kind, 0)) / n
            print(f"RSS per user in {kind:20} {grown:8.1f} KiB")
        for line in (await bridge.call("pymalloc"))["lines"]:
            print("   ", line)
        await bridge.call("trim")
        rss2 = bridge.rss_kib()
        print(f"after malloc_trim(0)           {(rss2 - rss0) / n:.1f} KiB per bridged user")
    if args.tracemalloc:
        heap = await bridge.call("heap", top=args.tracemalloc)
        print(f"heap gained per bridged user   {heap['total'] / n / 1024:.1f} KiB (tracemalloc)")
        print(f"heap peak per bridged user     {heap['peak'] / n / 1024:.1f} KiB")
        print("   KiB/user  blocks/user  site")
        for site, size, count in heap["sites"]:
            print(f"{size / n / 1024:11.2f} {count / n:12.1f}  {site}")
    if spy is not None:
        await spy.wait()
    ghosts = await bridge.call("ghosts")
    shown = ghosts["shown"]
    per = f", {hs_idle * 1000 / shown:.3f} ms/s per shown ghost" if shown else ""
    print(
        f"ghosts online / shown          {ghosts['online']} / {shown} "
        f"(Synapse idle {hs_idle * 1000:.0f} ms of CPU per s{per})"
    )


async def converse(
    tracker: Tracker,
    send: object,
    prefix: str,
    stop_at: float,
    think: float,
) -> None:
    """One sender: a message, wait for it to arrive (at most 30 s), think, again. Senders
    start spread over one think time, so they do not all write at the same moments."""
    await asyncio.sleep(random.uniform(0, think))
    for seq in itertools.count():
        if time.perf_counter() >= stop_at:
            return
        mid = f"{prefix}.{seq}"
        tracker.mark_sent(mid)
        try:
            await send(tracker.text(mid))  # type: ignore[operator]
        except Exception:
            tracker.failed_sends += 1
        await tracker.wait(mid, 30)
        await asyncio.sleep(think)


def msn_send(client: Client, to: str):  # type: ignore[no-untyped-def]
    conv = client.conversation([to])

    async def send(text: str) -> None:
        result = await conv.send_text(text)
        if not result.ok:
            raise RuntimeError(str(result))

    return send


async def storm(
    args: argparse.Namespace,
    bridge: BridgeProcess,
    matrix: Matrix,
    info: dict,
    couples: list[tuple[str, str]],
    baseline: list[tuple[str, str]],
    synapse_pid: int,
    msn_pid: int,
) -> None:
    c = args.conversations
    owners = await matrix.register_many([f"storm{i}" for i in range(c)])
    for owner in owners:
        owner.start_sync()
    batch = [[o.user_id, a, password(a)] for o, (a, _) in zip(owners, couples, strict=True)]
    answer = await bridge.call("login", users=batch, concurrency=args.concurrency)
    if answer["failed"]:
        raise SystemExit(f"storm logins failed: {answer['failed'][:3]}")
    logins = [(b, password(b)) for _, b in couples]
    logins += [(p, password(p)) for pair in baseline for p in pair]
    clients = await online_clients(info, logins)
    friends, plain = clients[:c], clients[c:]
    to_matrix, to_msn = Tracker("MSN → Matrix"), Tracker("Matrix → MSN")
    base_ab, base_ba = Tracker("MSN → MSN"), Tracker("MSN → MSN back")
    for owner in owners:
        owner.on_text = to_matrix.receive
    for friend in friends:
        Inbox(friend, to_msn.receive)
    for i in range(c):
        Inbox(plain[2 * i], base_ba.receive)
        Inbox(plain[2 * i + 1], base_ab.receive)
    try:
        # Portals: each friend's first message makes the bridge create a DM room and
        # invite the owner, whose sync loop joins it.
        t0 = time.perf_counter()
        await asyncio.gather(
            *(msn_send(f, a)("hello") for f, (a, _) in zip(friends, couples, strict=True))
        )
        await asyncio.wait_for(asyncio.gather(*(o.joined.wait() for o in owners)), 300)
        setup_s = time.perf_counter() - t0

        def owner_send(owner: User):  # type: ignore[no-untyped-def]
            (room,) = owner.rooms

            async def send(text: str) -> None:
                t0 = time.perf_counter()
                await owner.send(room, text)
                PUTS.append(time.perf_counter() - t0)

            return send

        pids = [bridge.pid, synapse_pid, msn_pid, os.getpid()]
        # One untimed round trip each way per conversation first: the storm measures the
        # steady state, not the tail of setting up 100 rooms.
        warm = Tracker("warm-up")
        for owner in owners:
            owner.on_text = warm.receive
        for friend in friends:
            Inbox(friend, warm.receive)
        for i, owner in enumerate(owners):
            for mid, send in ((f"wm{i}", msn_send(friends[i], couples[i][0])),
                              (f"wx{i}", owner_send(owner))):  # fmt: skip
                warm.mark_sent(mid)
                await send(warm.text(mid))
        await warm.settle(120)
        if warm.lost:
            raise SystemExit(f"{warm.lost} warm-up messages did not arrive")
        for owner in owners:
            owner.on_text = to_matrix.receive
        PUTS.clear()
        cpu = [proc_cpu_s(pid) for pid in pids]
        t0 = time.perf_counter()
        stop_at = t0 + args.duration
        senders = []
        for i in range(c):
            pa, pb = plain[2 * i], plain[2 * i + 1]
            for tracker, send, prefix in (
                (to_matrix, msn_send(friends[i], couples[i][0]), f"m{i}"),
                (to_msn, owner_send(owners[i]), f"x{i}"),
                (base_ab, msn_send(pa, baseline[i][1]), f"a{i}"),
                (base_ba, msn_send(pb, baseline[i][0]), f"b{i}"),
            ):
                senders.append(converse(tracker, send, prefix, stop_at, args.think))
        await asyncio.gather(*senders)
        wall = time.perf_counter() - t0
        for t in (to_matrix, to_msn, base_ab, base_ba):
            await t.settle(30)
        used = [proc_cpu_s(pid) - before for pid, before in zip(pids, cpu, strict=True)]
    finally:
        for owner in owners:
            await owner.stop_sync()
        await asyncio.gather(*(cl.stop() for cl in clients), return_exceptions=True)
    gaps = sum(o.gaps for o in owners)
    if os.environ.get("MSNBRIDGE_BENCH_DEBUG"):
        for t in (to_matrix, to_msn):
            print(t.name, "lost:", sorted(set(t.sent) - set(t.latency))[:20])
            first = [v for k, v in t.latency.items() if k.endswith(".0")]
            later = [v for k, v in t.latency.items() if not k.endswith(".0")]
            print(
                f"  first of each conversation: median {median(first) * 1000:.0f} ms, "
                f"p99 {percentile(first, 99) * 1000:.0f} ms; later: median "
                f"{median(later) * 1000:.0f} ms, p99 {percentile(later, 99) * 1000:.0f} ms"
            )
        print(
            f"owners' PUT /send: median {median(PUTS) * 1000:.0f} ms, "
            f"p99 {percentile(PUTS, 99) * 1000:.0f} ms"
        )
    print()
    print(
        f"(b) storm: {c} conversations, both ways, {args.duration:.0f} s, each sender waiting "
        f"for arrival then {args.think:g} s (portals set up in {setup_s:.1f} s)"
    )
    print(f"{'direction':<30}{'sent':>7}{'msg/s':>8}{'median':>9}{'p99':>9}{'lost':>6}{'dup':>5}")
    print(f"{'':<30}{'':>7}{'':>8}{'ms':>9}{'ms':>9}")
    for label, t in (
        ("MSN → Matrix (bridge)", to_matrix),
        ("Matrix → MSN (bridge)", to_msn),
        ("MSN → MSN (server alone)", base_ab),
        ("MSN → MSN back (server alone)", base_ba),
    ):
        print(
            f"{label:<30}{len(t.sent):>7}{len(t.latency) / wall:>8.1f}{t.median_ms():>9.1f}"
            f"{t.p99_ms():>9.1f}{t.lost:>6}{t.duplicates:>5}"
            + (f"  ({t.failed_sends} sends failed)" if t.failed_sends else "")
        )
    both = len(to_matrix.latency) + len(to_msn.latency)
    base = len(base_ab.latency) + len(base_ba.latency)
    print(f"bridge throughput / MSN-only throughput   {both / base:.2f}x")
    print(
        f"CPU per bridged message        bridge {used[0] / max(both, 1) * 1000:.1f} ms, "
        f"Synapse {used[1] / max(both, 1) * 1000:.1f} ms"
    )
    busy = ", ".join(
        f"{name} {u / wall * 100:.0f} %"
        for name, u in zip(("bridge", "Synapse", "MSN server", "this script"), used, strict=True)
    )
    print(f"CPU busy (of one core)         {busy}")
    if gaps:
        print(f"warning: {gaps} limited /sync responses (events may have been skipped)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "logins", "storm"), default="all")
    ap.add_argument("--users", type=int, default=200, help="bridged users for (a)")
    ap.add_argument("--concurrency", type=int, default=100, help="logins in flight at once")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    ap.add_argument("--conversations", type=int, default=100)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of storm")
    ap.add_argument("--think", type=float, default=1.0, help="pause between a sender's messages")
    ap.add_argument(
        "--presence",
        default="new",
        help="how ghost presence is kept up, comma-separated to compare in one run (a fresh "
        "stack each): new, all (new, for every ghost, seen in a room or not), old (before "
        "issue 14: all online ghosts re-sent at once every 60 s)",
    )
    ap.add_argument(
        "--spy-synapse",
        metavar="PREFIX",
        help="py-spy (on PATH) records Synapse during the idle window to PREFIX-<presence>.txt",
    )
    ap.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="N",
        help="trace the bridge's heap (slower) and print the N sites that grew most per user",
    )
    args = ap.parse_args()
    if args.tracemalloc:
        os.environ["MSNBRIDGE_BENCH_TRACEMALLOC"] = "1"  # the bridge process inherits it
    print(f"machine: {machine()}")
    print(f"ran: {vars(args)}")
    for mode in args.presence.split(","):
        os.environ["MSNBRIDGE_BENCH_PRESENCE"] = mode  # the bridge process inherits it
        print(f"\n=== ghost presence: {mode}")
        await run(args)


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="msnbridge-bench-"))
    c = args.conversations
    couples = pair_accounts(work / "storm.json", c, "s")
    pair_accounts(work / "plain.json", c, "b")
    baseline = [(f"b{i}a@example.com", f"b{i}b@example.com") for i in range(c)]
    merged = work / "accounts.json"
    import json

    merged.write_text(
        json.dumps(
            json.loads((work / "storm.json").read_text())
            + json.loads((work / "plain.json").read_text())
        )
    )
    synapse = await asyncio.to_thread(start_synapse)
    server_args = ["--accounts", str(merged)]
    if args.part in ("all", "logins"):
        server_args += ["--demo", str(args.users)]
    msn_proc, info = await start_msn_server(*server_args)
    matrix = Matrix(synapse)
    bridge: BridgeProcess | None = None
    try:
        bridge = await BridgeProcess.start(bridge_config(synapse, info, work))
        if args.part in ("all", "logins"):
            await logins(args, bridge, matrix, synapse.pid)
        if args.part in ("all", "storm"):
            if args.part == "all":
                print(f"\n(the {args.users} sessions of (a) stay logged in during (b))")
            await storm(args, bridge, matrix, info, couples, baseline, synapse.pid, msn_proc.pid)
    finally:
        await stop_stack(bridge, matrix, msn_proc, synapse, work)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
