"""`bridge_latency.py --conversations N[,N...]`: the burst of ONE owner's MSN contacts
writing at once (N conversations, so N portals of the same owner), beside Synapse alone
with the same shape (N Matrix users, each in a room of its own with one receiving user),
in the same run.

Both sides get the same messages: `--burst` in all, message i in conversation i mod N, sent
in that order. The MSN friends send as fast as MSN takes them (as the one-conversation
burst does); the Synapse-alone senders keep `--in-flight` PUTs at once in all (as the
one-room baseline does). Every text carries its conversation and sequence number: lost and
duplicated are counted per message id, and the order of first arrivals is checked per
conversation (a message arriving after a later one of its conversation is "out of order";
the bridge promises order within a conversation, Synapse alone with several PUTs in flight
for one room does not). With `--rounds R` each N is measured R times, bridge and Synapse
alone taking turns, and the medians are printed with every round's rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from _stack import (
    BridgeProcess,
    Client,
    Matrix,
    User,
    bridge_config,
    machine,
    median,
    online_clients,
    password,
    proc_cpu_s,
    start_msn_server,
    start_synapse,
    stop_stack,
)
from _traffic import Send, Tracker, matrix_sender, msn_sender

OWNER = "owner@example.com"


def friend(k: int) -> str:
    return f"friend{k}@example.com"


def write_accounts(path: Path, friends: int) -> None:
    """The bridged owner with `friends` contacts, each having the owner as a contact."""
    names = [friend(k) for k in range(friends)]
    entries = [{"passport": OWNER, "password": password(OWNER), "nick": "Owner",
                "contacts": names}]  # fmt: skip
    entries += [{"passport": p, "password": password(p), "nick": f"F{k}", "contacts": [OWNER]}
                for k, p in enumerate(names)]  # fmt: skip
    path.write_text(json.dumps(entries))


class Run:
    """One burst over N conversations: ids, per-conversation order of first arrivals."""

    def __init__(self, name: str, conversations: int, messages: int) -> None:
        self.tracker = Tracker(name)
        self.conversations = conversations
        self.ids = [f"c{i % conversations}n{i}" for i in range(messages)]
        self._last: dict[str, int] = {}  # conversation → highest sequence number arrived
        self.out_of_order = 0
        self.rate = 0.0

    def receive(self, text: str, at: float) -> None:
        mid = text.split(" ", 1)[0]
        fresh = mid in self.tracker.sent and mid not in self.tracker.latency
        self.tracker.receive(text, at)
        if not fresh:
            return
        conv, seq = mid[1:].split("n", 1)
        if int(seq) < self._last.get(conv, -1):
            self.out_of_order += 1
        self._last[conv] = max(int(seq), self._last.get(conv, -1))

    async def send_all(self, send: list[Send], in_flight: int, timeout: float) -> None:
        """Every id, in order, to its conversation's sender; `in_flight` sends at once."""
        sem = asyncio.Semaphore(in_flight)
        tracker = self.tracker

        async def one(i: int, mid: str) -> None:
            async with sem:
                tracker.mark_sent(mid)
                try:
                    await send[i % self.conversations](tracker.text(mid))
                except Exception:
                    tracker.failed_sends += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, mid) for i, mid in enumerate(self.ids)))
        await tracker.settle(timeout)
        arrivals = list(tracker.arrived.values())
        self.rate = len(arrivals) / (max(arrivals) - t0) if arrivals else 0.0


async def wait_rooms(user: User, count: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while len(user.rooms) < count:
        if time.perf_counter() > deadline:
            raise SystemExit(f"{user.user_id} is in {len(user.rooms)} rooms, not {count}")
        await asyncio.sleep(0.1)


async def owner_burst(args: argparse.Namespace) -> None:
    sizes = sorted({int(n) for n in args.conversations.split(",")})
    most = sizes[-1]
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="msnbridge-bench-"))
    write_accounts(work / "accounts.json", most)
    synapse = await asyncio.to_thread(start_synapse)
    msn_proc, info = await start_msn_server("--accounts", str(work / "accounts.json"))
    matrix = Matrix(synapse)
    bridge: BridgeProcess | None = None
    clients: list[Client] = []
    users: list[User] = []
    try:
        bridge = await BridgeProcess.start(bridge_config(synapse, info, work))
        names = ["owner", "receiver"] + [f"sender{k}" for k in range(most)]
        users = await matrix.register_many(names)
        owner, receiver, senders = users[0], users[1], users[2:]
        for user in (owner, receiver):
            user.start_sync()
        answer = await bridge.call("login", users=[[owner.user_id, OWNER, password(OWNER)]])
        if answer["failed"]:
            raise SystemExit(f"bridge login failed: {answer['failed']}")
        friends = [friend(k) for k in range(most)]
        clients = await online_clients(info, [(p, password(p)) for p in friends])

        current: list[Run] = [Run("-", 1, 0)]
        owner.on_text = lambda text, at: current[0].receive(text, at)
        receiver.on_text = lambda text, at: current[0].receive(text, at)

        # The portals: each friend's first message makes the bridge create a DM room and
        # invite the owner. Synapse alone: each sender's room with the receiver.
        to_owner = [msn_sender(c, OWNER) for c in clients]
        for send in to_owner:
            await send("hello")
        rooms = []
        for sender in senders:
            made = await matrix.request(
                "POST", "/_matrix/client/v3/createRoom",
                {"invite": [receiver.user_id], "preset": "trusted_private_chat"}, sender.token,
            )  # fmt: skip
            rooms.append(made["room_id"])
        await wait_rooms(owner, most, 120)
        await wait_rooms(receiver, most, 120)
        to_receiver = [matrix_sender(s, r) for s, r in zip(senders, rooms, strict=True)]

        pids = [bridge.pid, synapse.pid, msn_proc.pid, os.getpid()]
        # Per N: the runs of each path, bridge and Synapse alone taking turns, each run's
        # CPU ms per message of the processes in `pids`.
        results: dict[int, dict[str, list[tuple[Run, list[float]]]]] = {}
        for round_no in range(args.rounds):
            for n in sizes:
                for name, sends, in_flight in (
                    ("bridge", to_owner[:n], 1_000_000),
                    ("synapse", to_receiver[:n], args.in_flight),
                ):
                    warm = current[0] = Run(f"warm {name}", n, 3 * n)
                    await warm.send_all(sends, in_flight, 60)
                    if warm.tracker.lost:
                        raise SystemExit(f"warm-up messages did not arrive ({name} {n})")
                    run = current[0] = Run(name, n, args.burst)
                    before = [proc_cpu_s(pid) for pid in pids]
                    await run.send_all(sends, in_flight, 120)
                    used = [proc_cpu_s(pid) - b for pid, b in zip(pids, before, strict=True)]
                    cpu = [u / args.burst * 1000 for u in used]
                    results.setdefault(n, {}).setdefault(name, []).append((run, cpu))
                    print(f"  round {round_no + 1}, {name} N={n}: {run.rate:.0f} msg/s", flush=True)

        gaps = owner.gaps + receiver.gaps
        print()
        print(
            f"one owner, a burst of {args.burst} messages over N conversations (message i in "
            f"conversation i mod N); Synapse alone: N senders, {args.in_flight} PUTs in flight; "
            f"{args.rounds} round(s), medians"
        )
        print(
            f"{'N':>3}{'bridge':>10}{'Synapse':>10}{'ratio':>8}   lost  dup  order"
            f"   lost  dup  order  CPU ms/msg: bridge  Synapse  Synapse alone"
        )
        print(f"{'':>3}{'msg/s':>10}{'msg/s':>10}{'':>8}   (bridge path)     (Synapse alone)")
        for n, runs in results.items():
            bridge_runs, alone_runs = runs["bridge"], runs["synapse"]
            b_rate = median([r.rate for r, _ in bridge_runs])
            s_rate = median([r.rate for r, _ in alone_runs])

            def total(rs: list[tuple[Run, list[float]]]) -> tuple[int, int, int]:
                return (
                    sum(r.tracker.lost for r, _ in rs),
                    sum(r.tracker.duplicates for r, _ in rs),
                    sum(r.out_of_order for r, _ in rs),
                )

            lost, dup, order = total(bridge_runs)
            s_lost, s_dup, s_order = total(alone_runs)
            b_cpu = [median([c[i] for _, c in bridge_runs]) for i in (0, 1)]
            s_cpu = median([c[1] for _, c in alone_runs])
            print(
                f"{n:>3}{b_rate:>10.0f}{s_rate:>10.0f}{b_rate / s_rate:>7.2f}x"
                f"{lost:>7}{dup:>5}{order:>7}{s_lost:>7}{s_dup:>5}{s_order:>7}"
                f"{b_cpu[0]:>20.2f}{b_cpu[1]:>9.2f}{s_cpu:>15.2f}"
            )
            if args.rounds > 1:
                each = ", ".join(
                    f"{b.rate:.0f}/{a.rate:.0f}"
                    for (b, _), (a, _) in zip(bridge_runs, alone_runs, strict=True)
                )
                print(f"{'':>3}  each round, bridge/Synapse msg/s: {each}")
        if gaps:
            print(f"warning: {gaps} limited /sync responses (events may have been skipped)")
    finally:
        for user in users:
            await user.stop_sync()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        await stop_stack(bridge, matrix, msn_proc, synapse, work)
