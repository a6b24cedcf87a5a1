"""File throughput through the switchboard (MSNSLP over the MSNP test server), beside the
same bytes relayed as plain text messages, and the peak RSS of the two puppets.

    .venv/bin/python benchmarks/p2p_transfer.py [--size-mb 20] [--version 12] [--window 16]

The server runs in its own process; sender and receiver puppets share this one. The file
goes from a file on disk to a file on disk; the baseline sends 1664-byte text payloads
(MSG A) with the same number of them unconfirmed at a time, and stops when the receiver
has counted every byte. Rounds alternate the two; the best of each is printed. MSG/s
compares the work per message: a P2P chunk carries 1202 bytes, a text payload ~1546.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from puppets import Client, ClientConfig  # noqa: E402
from puppets.event.conversation import MessageReceived  # noqa: E402
from puppets.event.transfer import FileOffered  # noqa: E402
from puppets.message import MAX_PAYLOAD, build_text  # noqa: E402
from puppets.p2p.transport import chunk_size  # noqa: E402

A, B = "sender@example.com", "receiver@example.com"


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakRSS:
    """Samples VmRSS every 20 ms (VmHWM cannot be reset between phases)."""

    def __init__(self) -> None:
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, status_kib("VmRSS"))
            await asyncio.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self.peak = status_kib("VmRSS")
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def start_server(accounts: Path) -> tuple[asyncio.subprocess.Process, dict]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.msnp_server",
        "--accounts",
        str(accounts),
        "--no-chl",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise SystemExit("the test server did not start")
    return proc, json.loads(line)


def config(info: dict, passport: str, version: int) -> ClientConfig:
    return ClientConfig(
        passport=passport,
        password="pw",
        dispatch_host=info["host"],
        dispatch_port=info["dispatch_port"],
        nexus_url=info["nexus_url"],
        min_version=version,
        max_version=version,
        change_spacing=0.0,
        timeout=60,
    )


async def file_transfer(sender: Client, receiver: Client, src: Path, dest: Path) -> float:
    offered: asyncio.Future[FileOffered] = asyncio.get_running_loop().create_future()

    def on_event(ev: object) -> None:
        if isinstance(ev, FileOffered) and not offered.done():
            offered.set_result(ev)

    receiver.add_listener(on_event)
    start = time.perf_counter()
    transfer = sender.p2p.manager.send_file(B, src)
    offer = await offered
    offer.transfer.accept(dest)
    status = await transfer.wait()
    elapsed = time.perf_counter() - start
    receiver.remove_listener(on_event)
    if status != "completed":
        raise SystemExit(f"the transfer ended {status}: {transfer.reason}")
    return elapsed


async def plain_messages(sender: Client, receiver: Client, total: int, window: int) -> float:
    payload = build_text("x" * (MAX_PAYLOAD - len(build_text(""))))
    body = len(payload) - len(build_text(""))
    count = -(-total // body)
    got = 0
    done = asyncio.Event()

    def on_event(ev: object) -> None:
        nonlocal got
        if isinstance(ev, MessageReceived):
            got += len(ev.message.text)
            if got >= count * body:
                done.set()

    receiver.add_listener(on_event)
    conv = sender.conversation([B])
    assert (await conv.send_text("warm-up")).ok  # open the switchboard first, as the file did
    got = 0
    start = time.perf_counter()
    inflight: list[asyncio.Future] = []
    for _ in range(count):
        if len(inflight) >= window:
            result = await inflight.pop(0)
            assert result.ok, result
        inflight.append(asyncio.ensure_future(conv.submit([payload], "A")))
    for fut in inflight:
        assert (await fut).ok
    await done.wait()
    elapsed = time.perf_counter() - start
    receiver.remove_listener(on_event)
    return elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=20.0)
    ap.add_argument("--version", type=int, default=12)
    ap.add_argument("--window", type=int, default=16, help="chunks unconfirmed at a time")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = int(args.size_mb * 1024 * 1024)

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        accounts = tmpdir / "accounts.json"
        accounts.write_text(
            json.dumps(
                [
                    {"passport": A, "password": "pw", "contacts": [B]},
                    {"passport": B, "password": "pw", "contacts": [A]},
                ]
            )
        )
        src = tmpdir / "random.bin"
        with src.open("wb") as f:
            for _ in range(0, size, 1 << 20):
                f.write(os.urandom(min(1 << 20, size - f.tell())))
        proc, info = await start_server(accounts)
        sender = Client(config(info, A, args.version))
        receiver = Client(config(info, B, args.version))
        sender.p2p.manager.window = args.window
        try:
            for c in (sender, receiver):
                await c.start()
                await c.wait_online(30)
            base_kib = status_kib("VmRSS")
            file_s = plain_s = float("inf")
            with PeakRSS() as peak:
                for _ in range(args.rounds):  # interleaved, best of each: a busy machine
                    got = tmpdir / "got.bin"
                    got.unlink(missing_ok=True)
                    file_s = min(file_s, await file_transfer(sender, receiver, src, got))
                    if got.stat().st_size != size:
                        raise SystemExit("the received file has the wrong size")
                    plain = await plain_messages(sender, receiver, size, args.window)
                    plain_s = min(plain_s, plain)
        finally:
            await sender.stop()
            await receiver.stop()
            proc.terminate()
            await proc.wait()

    mib = size / (1 << 20)
    plain_msgs = -(-size // (MAX_PAYLOAD - len(build_text(""))))
    file_msgs = -(-size // chunk_size(B))
    print(f"{'what':<34}{'MiB/s':>8}{'vs baseline':>13}{'MSG/s':>9}{'data/MSG':>10}")
    print(
        f"{'plain text MSGs (baseline)':<34}{mib / plain_s:>8.2f}{1.0:>12.2f}x"
        f"{plain_msgs / plain_s:>9.0f}{size // plain_msgs:>10}"
    )
    print(
        f"{'file over MSNSLP (P2P chunks)':<34}{mib / file_s:>8.2f}{plain_s / file_s:>12.2f}x"
        f"{file_msgs / file_s:>9.0f}{chunk_size(B):>10}"
    )
    print(
        f"{size / (1 << 20):.0f} MiB at MSNP{args.version}, window {args.window}: "
        f"best of {args.rounds} rounds; RSS {base_kib / 1024:.1f} MiB before, peak "
        f"{peak.peak / 1024:.1f} MiB during the rounds (+{(peak.peak - base_kib) / 1024:.1f} MiB,"
        " both puppets)"
    )


if __name__ == "__main__":
    asyncio.run(main())
