"""One bridged user's MSN session flooded with strangers' presence while another bridged
user talks: does the flood stall anyone else? (issue 9, item 1)

The MSNP test server (started with `--control`) pushes `--flood` NLN lines for passports
on none of owner A's lists down A's notification connection, each `--flood-seconds`,
again and again while owner B exchanges `--messages` messages each way with an MSN friend
(both directions at once, each message sent when the previous one arrived). The same
exchange without the flood comes first, in the same run, as the baseline. Printed: B's
messages delivered, median and p99 of each direction unflooded and flooded, the bridge's
RSS and CPU, and how many stranger lines the bridge read and dropped.

    .venv/bin/python benchmarks/bridge_flood.py [--messages 100] [--flood 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    msn_call,
    online_clients,
    pair_accounts,
    password,
    start_msn_server,
    start_synapse,
    stop_stack,
)
from _traffic import Send, Tracker, matrix_sender, msn_sender, sequential


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.to_matrix = Tracker(f"{name} msn→matrix")
        self.to_msn = Tracker(f"{name} matrix→msn")
        self.cpu_s = 0.0
        self.seconds = 0.0
        self.rss_peak_kib = 0
        self.flood_lines = 0


async def exchange(
    phase: Phase,
    inbox_matrix: list[Tracker],
    inbox_msn: list[Tracker],
    to_matrix: Send,
    to_msn: Send,
    n: int,
) -> None:
    inbox_matrix[0], inbox_msn[0] = phase.to_matrix, phase.to_msn
    await asyncio.gather(
        sequential(phase.to_matrix, to_matrix, n, f"{phase.name}m", timeout=60),
        sequential(phase.to_msn, to_msn, n, f"{phase.name}s", timeout=60),
    )


async def run_phase(phase: Phase, bridge: BridgeProcess, body: asyncio.Task[None]) -> None:
    """Samples the bridge's RSS and CPU while `body` runs."""
    cpu0, t0 = bridge.cpu_s(), time.perf_counter()
    while not body.done():
        phase.rss_peak_kib = max(phase.rss_peak_kib, bridge.rss_kib())
        await asyncio.wait({body}, timeout=0.2)
    await body
    phase.cpu_s = bridge.cpu_s() - cpu0
    phase.seconds = time.perf_counter() - t0


def row(label: str, t: Tracker, n: int) -> str:
    return f"{label:<36}{len(t.latency):>5}/{n:<5}{t.median_ms():>9.1f}{t.p99_ms():>9.1f}"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100, help="messages each way")
    ap.add_argument("--flood", type=int, default=30_000, help="NLN lines per flood")
    ap.add_argument("--flood-seconds", type=float, default=3.0, help="seconds per flood")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="msnbridge-bench-"))
    (flooded_pp, _), (calm_pp, friend_pp) = pair_accounts(work / "accounts.json", 2)
    synapse = await asyncio.to_thread(start_synapse)
    msn_proc, info = await start_msn_server("--accounts", str(work / "accounts.json"), "--control")
    matrix = Matrix(synapse)
    bridge: BridgeProcess | None = None
    clients: list[Client] = []
    users: list[User] = []
    try:
        bridge = await BridgeProcess.start(bridge_config(synapse, info, work))
        owner_a, owner_b = await matrix.register_many(["flooded", "calm"])
        users = [owner_a, owner_b]
        owner_b.start_sync()
        answer = await bridge.call(
            "login",
            users=[
                [owner_a.user_id, flooded_pp, password(flooded_pp)],
                [owner_b.user_id, calm_pp, password(calm_pp)],
            ],
        )
        if answer["failed"]:
            raise SystemExit(f"bridge login failed: {answer['failed']}")
        clients = await online_clients(info, [(friend_pp, password(friend_pp))])
        (friend,) = clients
        inbox_matrix: list[Tracker] = [Tracker("-")]
        inbox_msn: list[Tracker] = [Tracker("-")]
        owner_b.on_text = lambda text, at: inbox_matrix[0].receive(text, at)
        Inbox(friend, lambda text, at: inbox_msn[0].receive(text, at))
        to_matrix = msn_sender(friend, calm_pp)
        await to_matrix("hello")
        await asyncio.wait_for(owner_b.joined.wait(), 60)
        (room,) = owner_b.rooms
        to_msn = matrix_sender(owner_b, room)
        rss_start = bridge.rss_kib()

        warm = Phase("warm")
        await exchange(warm, inbox_matrix, inbox_msn, to_matrix, to_msn, 5)

        calm = Phase("calm")
        body = asyncio.create_task(
            exchange(calm, inbox_matrix, inbox_msn, to_matrix, to_msn, args.messages)
        )
        await run_phase(calm, bridge, body)
        print("  measured the unflooded exchange", flush=True)

        flooded = Phase("flood")
        first_flood = asyncio.Event()
        done = asyncio.Event()

        async def flood_loop() -> None:
            while not done.is_set():
                reply = await msn_call(
                    msn_proc,
                    "flood_presence",
                    passport=flooded_pp,
                    count=args.flood,
                    seconds=args.flood_seconds,
                )
                if "error" in reply:
                    raise SystemExit(f"flood failed: {reply['error']}")
                flooded.flood_lines += reply["sent"]
                first_flood.set()

        async def flooded_exchange() -> None:
            await asyncio.sleep(0.5)  # the flood is under way before the first message
            await exchange(flooded, inbox_matrix, inbox_msn, to_matrix, to_msn, args.messages)
            await first_flood.wait()  # at least one whole flood during the exchange

        flood = asyncio.create_task(flood_loop())
        body = asyncio.create_task(flooded_exchange())
        await run_phase(flooded, bridge, body)
        done.set()
        await flood  # the flood in progress is written to the end
        await asyncio.sleep(1.0)  # and read by the bridge
        print("  measured the flooded exchange", flush=True)
        stats = await bridge.call("stats")
        rss_end = bridge.rss_kib()

        n = args.messages
        delivered = (
            sum(len(t.latency) for t in (calm.to_matrix, calm.to_msn)),
            sum(len(t.latency) for t in (flooded.to_matrix, flooded.to_msn)),
        )
        print()
        print(
            f"owner B: {n} messages each way (sequential, both ways at once); owner A: "
            f"{args.flood:,} strangers' NLN per {args.flood_seconds:g} s, repeated"
        )
        print(f"{'path (owner B)':<36}{'delivered':>11}{'median':>9}{'p99':>9}")
        print(f"{'':<36}{'':>11}{'ms':>9}{'ms':>9}")
        print(row("MSN → Matrix, unflooded", calm.to_matrix, n))
        print(row("MSN → Matrix, A flooded", flooded.to_matrix, n))
        print(row("Matrix → MSN, unflooded", calm.to_msn, n))
        print(row("Matrix → MSN, A flooded", flooded.to_msn, n))
        print(f"delivered                          {delivered[0]}/{2 * n} unflooded, "
              f"{delivered[1]}/{2 * n} flooded")  # fmt: skip
        for label, a, b in (
            ("MSN → Matrix", flooded.to_matrix, calm.to_matrix),
            ("Matrix → MSN", flooded.to_msn, calm.to_msn),
        ):
            print(
                f"flooded / unflooded, {label:<14}median {a.median_ms() / b.median_ms():.2f}x"
                f"   p99 {a.p99_ms() / b.p99_ms():.2f}x"
            )
        print(
            f"flood lines written by the server  {flooded.flood_lines:,} (the exchange took "
            f"{flooded.seconds:.1f} s); dropped by the bridge {stats['stranger_presence']:,}"
        )
        print(
            f"bridge CPU                         unflooded {calm.cpu_s:.2f} s in "
            f"{calm.seconds:.1f} s, flooded {flooded.cpu_s:.2f} s in {flooded.seconds:.1f} s"
        )
        print(
            f"bridge RSS                         {rss_start / 1024:.1f} MiB before, peak "
            f"{calm.rss_peak_kib / 1024:.1f} unflooded, {flooded.rss_peak_kib / 1024:.1f} "
            f"flooded, {rss_end / 1024:.1f} MiB after"
        )
        if owner_b.gaps:
            print(f"warning: {owner_b.gaps} limited /sync responses (events may be skipped)")
    finally:
        for user in users:
            await user.stop_sync()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        await stop_stack(bridge, matrix, msn_proc, synapse, work)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
