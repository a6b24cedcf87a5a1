"""The real parts the bridge benchmarks drive, each in its own process: Synapse (the test
suite's launcher), the MSNP test server (`python -m tests.msnp_server`) and the bridge
(`benchmarks/_bridge_runner.py`: `Bridge(config)` plus a JSON-lines control channel on
stdin/stdout for logins and its own RSS/CPU). Matrix users are driven over the
client-server API with one aiohttp session; MSN friends are `puppets.Client`s here."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from puppets import Client, ClientConfig  # noqa: E402
from puppets.event.conversation import MessageReceived  # noqa: E402
from tests.synapse_server import SynapseServer, write_bridge_config  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The highest MSNP version the bridge offers (the test server speaks 2-18): 12 unless set,
# the version every bridge figure in benchmarks/README.md was measured at.
MSNP = int(os.environ.get("MSNBRIDGE_BENCH_MSNP", "12"))


# --- figures -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} at the start"


# --- Synapse ---------------------------------------------------------------------------------


class BenchSynapse(SynapseServer):
    """The test suite's Synapse with cheap password hashing, so registering a thousand
    users through the shared-secret API takes seconds, not minutes (bcrypt cost is not
    what is measured)."""

    def _overlay(self) -> dict[str, Any]:
        overlay = super()._overlay()
        overlay["bcrypt_rounds"] = 4
        return overlay

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid


def start_synapse() -> BenchSynapse:
    workdir = Path(tempfile.mkdtemp(prefix="msnbridge-bench-synapse-"))
    server = BenchSynapse(workdir)
    server.start()
    return server


# --- MSNP test server -----------------------------------------------------------------------


async def start_msn_server(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.msnp_server", "--no-chl", *args,
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise SystemExit("the MSNP test server did not start")
    return proc, json.loads(line)


async def msn_call(proc: asyncio.subprocess.Process, command: str, **args: Any) -> dict[str, Any]:
    """One fault-injection command to a test server started with `--control`."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"command": command, **args}).encode() + b"\n")
    await proc.stdin.drain()
    line = await proc.stdout.readline()
    if not line:
        raise SystemExit(f"the MSNP test server exited during {command!r}")
    return json.loads(line)


async def stop_stack(
    bridge: Any,
    matrix: Any,
    msn_proc: asyncio.subprocess.Process,
    synapse: BenchSynapse,
    work: Path,
) -> None:
    """Stop what a bridge benchmark started, in reverse order, and remove its files."""
    if bridge is not None:
        await bridge.stop()
    await matrix.close()
    msn_proc.terminate()
    await msn_proc.wait()
    await asyncio.to_thread(synapse.stop)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(synapse.workdir, ignore_errors=True)


def pair_accounts(path: Path, pairs: int, prefix: str = "p") -> list[tuple[str, str]]:
    """An accounts file of `pairs` couples who have each other as contacts (FL+AL both
    ways); returns the couples' passports. Password = the passport's local part."""
    entries, couples = [], []
    for i in range(pairs):
        a, b = f"{prefix}{i}a@example.com", f"{prefix}{i}b@example.com"
        couples.append((a, b))
        entries.append({"passport": a, "password": a.split("@")[0], "nick": f"A{i}",
                        "contacts": [b]})  # fmt: skip
        entries.append({"passport": b, "password": b.split("@")[0], "nick": f"B{i}",
                        "contacts": [a]})  # fmt: skip
    path.write_text(json.dumps(entries))
    return couples


def password(passport: str) -> str:
    """The password `pair_accounts` gave an account."""
    return passport.split("@")[0]


def client_config(info: dict[str, Any], passport: str, password: str) -> ClientConfig:
    return ClientConfig(
        passport=passport,
        password=password,
        dispatch_host=info["host"],
        dispatch_port=info["dispatch_port"],
        nexus_url=info["nexus_url"],
        services_url=info["services_url"],
        max_version=MSNP,
        timeout=60,
        sync_timeout=120,
    )


async def online_clients(
    info: dict[str, Any], logins: list[tuple[str, str]], concurrency: int = 50
) -> list[Client]:
    sem = asyncio.Semaphore(concurrency)

    async def one(passport: str, password: str) -> Client:
        async with sem:
            client = Client(client_config(info, passport, password))
            await client.start()
            await client.wait_online(timeout=120)
            return client

    return list(await asyncio.gather(*(one(p, pw) for p, pw in logins)))


class Inbox:
    """Texts a puppet Client receives, by the message id they carry (their first word)."""

    def __init__(self, client: Client, on_text: Callable[[str, float], None]) -> None:
        def listener(event: object) -> None:
            if isinstance(event, MessageReceived):
                on_text(event.message.text, time.perf_counter())

        client.add_listener(listener)


# --- the bridge in its own process ----------------------------------------------------------


class BridgeProcess:
    """`benchmarks/_bridge_runner.py` in a child process; `call` sends one JSON command and
    returns its JSON answer."""

    def __init__(self, proc: asyncio.subprocess.Process, pid: int) -> None:
        self.proc = proc
        self.pid = pid

    @classmethod
    async def start(cls, config_path: Path) -> BridgeProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "benchmarks" / "_bridge_runner.py"), str(config_path),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            raise SystemExit("the bridge did not start (see its stderr above)")
        return cls(proc, json.loads(line)["pid"])

    async def call(self, command: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"command": command, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the bridge exited during {command!r}")
        return json.loads(line)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.call("stop"), 30)
            except (TimeoutError, SystemExit):
                self.proc.kill()
            await self.proc.wait()


def bridge_config(synapse: SynapseServer, info: dict[str, Any], workdir: Path) -> Path:
    return write_bridge_config(
        workdir / "bridge.yaml",
        synapse,
        f"sqlite:{workdir / 'msnbridge.db'}",
        msn={
            "dispatch_host": info["host"],
            "dispatch_port": info["dispatch_port"],
            "nexus_url": info["nexus_url"],
            "services_url": info["services_url"],  # MSNP13+: the test server's SOAP services
            "max_version": MSNP,
            "verify_tls": False,
        },
        logging={
            "version": 1,
            "disable_existing_loggers": False,
            "root": {"level": "WARNING", "handlers": ["stderr"]},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
            },
        },
    )


# --- Matrix users ---------------------------------------------------------------------------


class Matrix:
    """Client-server API calls over one shared aiohttp session."""

    def __init__(self, synapse: SynapseServer) -> None:
        self.synapse = synapse
        self.url = synapse.url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
        )

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {text[:300]}")
            return json.loads(text or "{}")

    async def register(self, localpart: str) -> tuple[str, str]:
        """(user id, access token) via the shared-secret admin API."""
        import hashlib
        import hmac

        password = secrets.token_hex(8)
        nonce = (await self.request("GET", "/_synapse/admin/v1/register"))["nonce"]
        signed = "\x00".join((nonce, localpart, password, "notadmin"))
        mac = hmac.new(
            self.synapse.shared_secret.encode(), signed.encode(), hashlib.sha1
        ).hexdigest()
        body = {"nonce": nonce, "username": localpart, "password": password, "admin": False,
                "mac": mac}  # fmt: skip
        reply = await self.request("POST", "/_synapse/admin/v1/register", body)
        return reply["user_id"], reply["access_token"]

    async def register_many(self, localparts: list[str], concurrency: int = 16) -> list[User]:
        sem = asyncio.Semaphore(concurrency)

        async def one(localpart: str) -> User:
            async with sem:
                user_id, token = await self.register(localpart)
                return User(self, user_id, token)

        return list(await asyncio.gather(*(one(lp) for lp in localparts)))


class User:
    """One Matrix user: sends texts, joins rooms it is invited to, and long-polls /sync,
    passing each message body with its arrival time to `on_text`."""

    def __init__(self, matrix: Matrix, user_id: str, token: str) -> None:
        self.matrix = matrix
        self.user_id = user_id
        self.token = token
        self.rooms: set[str] = set()
        self.joined = asyncio.Event()
        self.on_text: Callable[[str, float], None] = lambda text, at: None
        self.gaps = 0  # syncs that said "limited" (events skipped); should stay 0
        self._task: asyncio.Task[None] | None = None

    async def send(self, room: str, body: str) -> None:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(8)}"
        await self.matrix.request("PUT", path, {"msgtype": "m.text", "body": body}, self.token)

    def start_sync(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sync())

    async def stop_sync(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sync(self) -> None:
        flt = {
            "room": {"timeline": {"limit": 500, "types": ["m.room.message"]},
                     "state": {"lazy_load_members": True, "types": []},
                     "ephemeral": {"types": []}, "account_data": {"types": []}},
            "presence": {"types": []},
            "account_data": {"types": []},
        }  # fmt: skip
        query = f"filter={quote(json.dumps(flt))}"
        reply = await self.matrix.request(
            "GET", f"/_matrix/client/v3/sync?timeout=0&{query}", token=self.token
        )
        since = reply["next_batch"]
        while True:
            try:
                reply = await self.matrix.request(
                    "GET",
                    f"/_matrix/client/v3/sync?timeout=30000&since={since}&{query}",
                    token=self.token,
                )
            except (aiohttp.ClientError, TimeoutError, RuntimeError):
                await asyncio.sleep(0.5)
                continue
            now = time.perf_counter()
            since = reply["next_batch"]
            rooms = reply.get("rooms", {})
            for room_id, room in rooms.get("join", {}).items():
                timeline = room.get("timeline", {})
                self.gaps += bool(timeline.get("limited")) and room_id in self.rooms
                if room_id not in self.rooms:
                    self.rooms.add(room_id)
                    self.joined.set()
                for event in timeline.get("events", []):
                    body = event.get("content", {}).get("body")
                    if event.get("sender") != self.user_id and isinstance(body, str):
                        self.on_text(body, now)
            for room_id in rooms.get("invite", {}):
                asyncio.get_running_loop().create_task(self._join(room_id))

    async def _join(self, room_id: str) -> None:
        await self.matrix.request(
            "POST", f"/_matrix/client/v3/join/{quote(room_id)}", {}, self.token
        )
