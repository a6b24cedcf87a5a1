"""A file from an MSN contact through the whole bridge into Matrix media, and the bridge's
peak RSS while it passes; beside the same file puppet to puppet through the test server.

    .venv/bin/python benchmarks/bridge_files.py [--size-mb 100]

Synapse, the MSNP test server and the bridge each run in their own process. The MSN
friend offers the file to the bridged user; the bridge accepts it into its temp dir,
uploads it and posts it. Measured: the P2P transfer (until the friend's client saw the
last byte acknowledged), then until the bridge removed the temp file (uploaded and
posted), and the bridge process's RSS sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import (
    BenchSynapse,
    BridgeProcess,
    Matrix,
    machine,
    online_clients,
    pair_accounts,
    password,
    start_msn_server,
    stop_stack,
)

from puppets.event.transfer import FileOffered
from tests.synapse_server import write_bridge_config


class BigUploadSynapse(BenchSynapse):
    def _overlay(self) -> dict[str, Any]:
        overlay = super()._overlay()
        overlay["max_upload_size"] = "1G"
        return overlay


async def sample_peak(pid_rss, stop: asyncio.Event) -> int:  # type: ignore[no-untyped-def]
    peak = 0
    while not stop.is_set():
        peak = max(peak, pid_rss())
        await asyncio.sleep(0.02)
    return peak


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=100.0)
    args = ap.parse_args()
    size = int(args.size_mb * 1024 * 1024)
    print(f"machine: {machine()}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="msnbridge-bench-files-"))
    synapse = BigUploadSynapse(Path(tempfile.mkdtemp(prefix="msnbridge-bench-synapse-")))
    await asyncio.to_thread(synapse.start)
    couples = pair_accounts(work / "accounts.json", 2)
    msn_proc, info = await start_msn_server("--accounts", str(work / "accounts.json"))
    matrix = Matrix(synapse)
    bridge: BridgeProcess | None = None
    src = work / "random.bin"
    with src.open("wb") as f:
        for _ in range(0, size, 1 << 20):
            f.write(os.urandom(min(1 << 20, size - f.tell())))
    temp_dir = work / "bridge-tmp"
    try:
        config = write_bridge_config(
            work / "bridge.yaml",
            synapse,
            f"sqlite:{work / 'msnbridge.db'}",
            msn={
                "dispatch_host": info["host"],
                "dispatch_port": info["dispatch_port"],
                "nexus_url": info["nexus_url"],
                "verify_tls": False,
            },
            files={"max_incoming_size": size + 1, "temp_dir": str(temp_dir)},
            logging={"version": 1, "root": {"level": "WARNING"}},
        )
        bridge = await BridgeProcess.start(config)
        (bridged, friend_passport), (c, d) = couples
        owner = (await matrix.register_many(["filebench"]))[0]
        answer = await bridge.call("login", users=[[owner.user_id, bridged, password(bridged)]])
        if answer["failed"]:
            raise SystemExit(f"bridge login failed: {answer['failed']}")
        friend, sender, receiver = await online_clients(
            info, [(friend_passport, password(friend_passport)), (c, password(c)), (d, password(d))]
        )

        # Baseline: puppet to puppet through the test server, disk to disk.
        def accept(event: object) -> None:
            if isinstance(event, FileOffered):
                event.transfer.accept(work / "baseline.bin")

        receiver.add_listener(accept)
        t0 = time.perf_counter()
        status = await sender.p2p.manager.send_file(d, src).wait()
        baseline_s = time.perf_counter() - t0
        assert status == "completed", status

        # Through the bridge.
        base_rss = bridge.rss_kib()
        stop = asyncio.Event()
        sampler = asyncio.get_running_loop().create_task(sample_peak(bridge.rss_kib, stop))
        t0 = time.perf_counter()
        transfer = friend.p2p.manager.send_file(bridged, src)
        status = await transfer.wait()
        p2p_s = time.perf_counter() - t0
        if status != "completed":
            raise SystemExit(f"the transfer to the bridge ended {status}: {transfer.reason}")
        while any(temp_dir.iterdir()):  # noqa: ASYNC110 (another process empties it)
            await asyncio.sleep(0.05)
        posted_s = time.perf_counter() - t0
        stop.set()
        peak = await sampler
        for client in (friend, sender, receiver):
            await client.stop()
    finally:
        await stop_stack(bridge, matrix, msn_proc, synapse, work)

    mib = size / (1 << 20)
    print(f"{mib:.0f} MiB file, MSNP12, window 16")
    print(f"{'what':<52}{'seconds':>9}{'MiB/s':>8}")
    print(f"{'puppet to puppet through the test server (baseline)':<52}{baseline_s:>9.1f}"
          f"{mib / baseline_s:>8.2f}")  # fmt: skip
    print(f"{'MSN friend to the bridge (P2P acknowledged)':<52}{p2p_s:>9.1f}{mib / p2p_s:>8.2f}")
    print(f"{'... and uploaded to Synapse and posted':<52}{posted_s:>9.1f}{mib / posted_s:>8.2f}")
    print(
        f"bridge RSS: {base_rss / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB "
        f"(+{(peak - base_rss) / 1024:.1f} MiB) while the file passed"
    )


if __name__ == "__main__":
    asyncio.run(main())
