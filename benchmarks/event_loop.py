"""The event loop under MSNP-like traffic: asyncio's own loop beside uvloop (when installed).

Each round runs in a fresh child process: a loopback server answering every request line
with its echo (as a notification server answers CHG or PNG), and C puppet `Connection`s
each sending requests one after another for a while (`Connection.request`: framing,
trids, a future per reply). Prints round trips per second and CPU per 1,000 round trips,
rounds interleaved, best of each.

    .venv/bin/python benchmarks/event_loop.py [--clients 200] [--seconds 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from puppets.command import CLIENT_NO_TRID, CLIENT_PAYLOAD_COMMANDS, CommandReader
from puppets.connection import Connection


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    codec = CommandReader(payload_commands=CLIENT_PAYLOAD_COMMANDS, no_trid=CLIENT_NO_TRID)
    while data := await reader.read(16384):
        writer.write(b"".join(cmd.encode() for cmd in codec.feed(data)))
    writer.close()


async def _client(conn: Connection, until: float) -> int:
    n = 0
    while time.monotonic() < until:
        await conn.request("CHG", "NLN", "0")
        n += 1
    return n


async def _round(clients: int, seconds: float) -> dict[str, float]:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conns = [
        await Connection.open("127.0.0.1", port, on_command=lambda cmd: None)
        for _ in range(clients)
    ]
    for conn in conns:
        conn.start()
    cpu0, t0 = time.process_time(), time.monotonic()
    counts = await asyncio.gather(*(_client(conn, t0 + seconds) for conn in conns))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    for conn in conns:
        await conn.close(notify=False, linger=0)
    server.close()
    total = sum(counts)
    return {"rate": total / wall, "cpu_ms_per_1000": cpu * 1e6 / total}


def _child(loop: str, clients: int, seconds: float) -> None:
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(_round(clients, seconds))
    else:
        result = asyncio.run(_round(clients, seconds))
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=3.0, help="per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.clients, args.seconds)
        return
    loops = ["asyncio"]
    try:
        import uvloop

        loops.append("uvloop")
        print(f"uvloop {uvloop.__version__}")
    except ImportError:
        print("uvloop is not installed: asyncio's loop only")
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for loop in loops:
            out = subprocess.run(
                [sys.executable, __file__, "--child", loop, "--clients", str(args.clients),
                 "--seconds", str(args.seconds)],
                capture_output=True, text=True, check=True, env=os.environ,
            ).stdout  # fmt: skip
            result = json.loads(out)
            if loop not in best or result["rate"] > best[loop]["rate"]:
                best[loop] = result
    print(f"{args.clients} connections, request/reply over loopback, best of {args.rounds}")
    print(f"{'loop':10} {'round trips/s':>14} {'CPU ms/1000':>12} {'vs asyncio':>11}")
    for loop, r in best.items():
        ratio = r["rate"] / best["asyncio"]["rate"]
        print(f"{loop:10} {r['rate']:14,.0f} {r['cpu_ms_per_1000']:12.1f} {ratio:10.2f}x")


if __name__ == "__main__":
    main()
