"""Message latency and throughput through the whole bridge, beside the same traffic
without it, in one run.

Bridge path: an MSN friend (`puppets.Client` here) ↔ the MSNP test server ↔ the bridge
(its own process) ↔ Synapse ↔ a Matrix user (client-server API here). MSN→Matrix is
timed from the friend's `send_text` to the event arriving in the Matrix user's /sync
long-poll; Matrix→MSN from the Matrix user's PUT to the friend's MessageReceived.
Baselines in the same run: MSN client to MSN client through the test server alone, and
Matrix user to Matrix user through Synapse alone (what the homeserver costs by itself).

    .venv/bin/python benchmarks/bridge_latency.py [--messages 200] [--burst 500]

With `--conversations 1,4,8` it measures instead the burst of one owner across N MSN
contacts writing at once (N portals), beside Synapse alone with N senders and rooms
(`_owner_burst.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from _owner_burst import owner_burst
from _stack import (
    BridgeProcess,
    Client,
    Inbox,
    Matrix,
    User,
    bridge_config,
    machine,
    online_clients,
    pair_accounts,
    password,
    proc_cpu_s,
    start_msn_server,
    start_synapse,
    stop_stack,
)
from _traffic import Send, Tracker, burst, matrix_sender, msn_sender, sequential


async def warm_up(tracker: Tracker, send: Send, rounds: int = 5) -> None:
    """A few round trips first: rooms, switchboards and ghosts exist before timing."""
    for i in range(rounds):
        mid = f"warm{i}"
        tracker.mark_sent(mid)
        await send(tracker.text(mid))
        if not await tracker.wait(mid, 60):
            raise SystemExit(f"warm-up message did not arrive ({tracker.name})")


async def measure(
    name: str,
    send: Send,
    inbox: list[Tracker],
    args: argparse.Namespace,
    in_flight: int,
    bridge_cpu: list[float],
    bridge_pid: int,
) -> tuple[Tracker, Tracker, float]:
    """(sequential tracker, burst tracker, burst msg/s); `inbox` is where the receiving
    end reports to (the tracker in it is swapped per phase). The bridge's CPU ms per
    message of the sequential phase and of the burst are appended to `bridge_cpu`: one
    message at a time pays every wake-up and request alone, a burst shares them."""
    warm = Tracker(name)
    inbox[0] = warm
    await warm_up(warm, send)
    seq = Tracker(name)
    inbox[0] = seq
    before = proc_cpu_s(bridge_pid)
    await sequential(seq, send, args.messages, "seq", timeout=30)
    middle = proc_cpu_s(bridge_pid)
    bur = Tracker(name)
    inbox[0] = bur
    rate = await burst(bur, send, args.burst, "bur", in_flight, timeout=120)
    after = proc_cpu_s(bridge_pid)
    bridge_cpu += [
        (middle - before) / max(1, args.messages) * 1000,
        (after - middle) / max(1, args.burst) * 1000,
    ]
    return seq, bur, rate


def row(label: str, seq: Tracker, bur: Tracker, rate: float) -> str:
    lost = seq.lost + bur.lost
    dup = seq.duplicates + bur.duplicates
    return (
        f"{label:<34}{seq.median_ms():>9.1f}{seq.p99_ms():>9.1f}{rate:>11.0f}"
        f"{bur.median_ms():>11.0f}{lost:>6}{dup:>5}"
    )


def ratio(label: str, a: tuple[Tracker, Tracker, float], b: tuple[Tracker, Tracker, float]) -> str:
    return (
        f"{label:<34}{a[0].median_ms() / b[0].median_ms():>8.1f}x"
        f"{a[0].p99_ms() / b[0].p99_ms():>8.1f}x{a[2] / b[2]:>10.2f}x"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200, help="sequential messages per path")
    ap.add_argument("--burst", type=int, default=500, help="messages in the throughput burst")
    ap.add_argument("--in-flight", type=int, default=8, help="Matrix PUTs at once in a burst")
    ap.add_argument(
        "--conversations",
        help="comma-separated N: only the burst of one owner over N conversations at once",
    )
    ap.add_argument("--rounds", type=int, default=1, help="with --conversations: repeats")
    args = ap.parse_args()
    if args.conversations:
        await owner_burst(args)
        return
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="msnbridge-bench-"))
    couples = pair_accounts(work / "accounts.json", 2)
    (bridged, friend_pp), (msn_a, msn_b) = couples
    synapse = await asyncio.to_thread(start_synapse)
    msn_proc, info = await start_msn_server("--accounts", str(work / "accounts.json"))
    matrix = Matrix(synapse)
    bridge: BridgeProcess | None = None
    clients: list[Client] = []
    users: list[User] = []
    try:
        bridge = await BridgeProcess.start(bridge_config(synapse, info, work))
        owner, peer_a, peer_b = await matrix.register_many(["owner", "peer_a", "peer_b"])
        users = [owner, peer_a, peer_b]
        for user in users:
            user.start_sync()
        answer = await bridge.call("login", users=[[owner.user_id, bridged, password(bridged)]])
        if answer["failed"]:
            raise SystemExit(f"bridge login failed: {answer['failed']}")
        clients = await online_clients(info, [(p, password(p)) for p in (friend_pp, msn_a, msn_b)])
        friend, a, b = clients

        # Receiving ends report to whichever tracker inbox[0] holds at the time.
        to_matrix: list[Tracker] = [Tracker("-")]
        to_friend: list[Tracker] = [Tracker("-")]
        to_b: list[Tracker] = [Tracker("-")]
        to_a: list[Tracker] = [Tracker("-")]
        to_peer_b: list[Tracker] = [Tracker("-")]
        owner.on_text = lambda text, at: to_matrix[0].receive(text, at)
        peer_b.on_text = lambda text, at: to_peer_b[0].receive(text, at)
        Inbox(friend, lambda text, at: to_friend[0].receive(text, at))
        Inbox(b, lambda text, at: to_b[0].receive(text, at))
        Inbox(a, lambda text, at: to_a[0].receive(text, at))

        # The portal: the friend's first message makes the bridge create the DM room and
        # invite the owner, whose sync loop joins it.
        hello = msn_sender(friend, bridged)
        await hello("hello")
        await asyncio.wait_for(owner.joined.wait(), 60)
        (room,) = owner.rooms
        # Synapse alone: peer_a and peer_b in a room of their own.
        plain = await matrix.request(
            "POST", "/_matrix/client/v3/createRoom",
            {"invite": [peer_b.user_id], "preset": "trusted_private_chat"}, peer_a.token,
        )  # fmt: skip
        await asyncio.wait_for(peer_b.joined.wait(), 60)

        results = {}
        # CPU per message of each process: where the time of a path goes.
        pids = [bridge.pid, synapse.pid, msn_proc.pid, os.getpid()]
        cpu: dict[str, list[float]] = {}
        phases: dict[str, list[float]] = {}
        for key, send, inbox, in_flight in (
            ("msn_to_matrix", hello, to_matrix, 1_000_000),
            ("msn_to_msn", msn_sender(a, msn_b), to_b, 1_000_000),
            ("matrix_to_msn", matrix_sender(owner, room), to_friend, args.in_flight),
            ("msn_to_msn_back", msn_sender(b, msn_a), to_a, 1_000_000),
            ("matrix_to_matrix", matrix_sender(peer_a, plain["room_id"]), to_peer_b,
             args.in_flight),
        ):  # fmt: skip
            before = [proc_cpu_s(pid) for pid in pids]
            phases[key] = []
            results[key] = await measure(key, send, inbox, args, in_flight, phases[key], bridge.pid)
            used = [proc_cpu_s(pid) - b for pid, b in zip(pids, before, strict=True)]
            count = args.messages + args.burst + 5
            cpu[key] = [u / count * 1000 for u in used]
            print(f"  measured {key}", flush=True)

        gaps = sum(u.gaps for u in users)
        print()
        print(f"{args.messages} sequential messages per path, then a burst of {args.burst}")
        print(
            f"{'path':<34}{'median':>9}{'p99':>9}{'burst':>11}{'burst med':>11}"
            f"{'lost':>6}{'dup':>5}"
        )
        print(f"{'':<34}{'ms':>9}{'ms':>9}{'msg/s':>11}{'ms':>11}")
        print(row("MSN → Matrix (bridge + Synapse)", *results["msn_to_matrix"]))
        print(row("Matrix → MSN (bridge + Synapse)", *results["matrix_to_msn"]))
        print(row("MSN → MSN (test server alone)", *results["msn_to_msn"]))
        print(row("MSN → MSN, other way", *results["msn_to_msn_back"]))
        print(row("Matrix → Matrix (Synapse alone)", *results["matrix_to_matrix"]))
        print("bridge path / MSN-only path        median     p99  throughput")
        print(ratio("  MSN → Matrix", results["msn_to_matrix"], results["msn_to_msn"]))
        print(ratio("  Matrix → MSN", results["matrix_to_msn"], results["msn_to_msn_back"]))
        print("bridge path / Synapse-only path")
        print(ratio("  MSN → Matrix", results["msn_to_matrix"], results["matrix_to_matrix"]))
        print(ratio("  Matrix → MSN", results["matrix_to_msn"], results["matrix_to_matrix"]))
        print("CPU ms per message              bridge  Synapse  MSN server  this script")
        for key, label in (
            ("msn_to_matrix", "MSN → Matrix"),
            ("matrix_to_msn", "Matrix → MSN"),
            ("msn_to_msn", "MSN → MSN"),
            ("matrix_to_matrix", "Matrix → Matrix"),
        ):
            print(f"  {label:<28}" + "".join(f"{v:>9.2f}" for v in cpu[key]))
        print("bridge CPU ms per message     sequential    burst")
        for key, label in (("msn_to_matrix", "MSN → Matrix"), ("matrix_to_msn", "Matrix → MSN")):
            print(f"  {label:<28}" + "".join(f"{v:>9.2f}" for v in phases[key]))
        if gaps:
            print(f"warning: {gaps} limited /sync responses (events may have been skipped)")
    finally:
        for user in users:
            await user.stop_sync()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        await stop_stack(bridge, matrix, msn_proc, synapse, work)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
