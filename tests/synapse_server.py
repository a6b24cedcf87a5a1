"""A real Synapse homeserver for the integration tests.

Synapse comes from PyPI (`matrix-synapse`) in its own virtualenv `.venv-synapse` (installed by
scripts/test.sh), because its pinned dependencies must not mix with ours. One server runs per
test session (under pytest-xdist, one per worker process): `--generate-config` writes the base
config into a temporary directory and an overlay (loaded after it, so its top-level keys win)
sets a loopback listener, SQLite, presence, raised rate limits and one appservice registration
whose tokens and port are chosen here, before Synapse starts, because Synapse reads
registrations only at start-up; with `double_puppet` also a second registration (the bridge's
double-puppet one) whose token is `synapse.double_puppet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import pytest

from msnbridge.bridge import Bridge
from msnbridge.config import load_config
from msnbridge.matrix.registration import build_double_puppet_registration
from msnbridge.sandbox.synapse import local_overlay

if TYPE_CHECKING:
    from tests.msnp_server import MSNPTestServer

REPO = Path(__file__).resolve().parent.parent
SYNAPSE_PYTHON = REPO / ".venv-synapse" / "bin" / "python"
SERVER_NAME = "localhost"
START_TIMEOUT = 60.0


class SynapseUnavailable(Exception):
    """Synapse is not installed or did not start; the message says why (used as skip reason)."""


def free_port() -> int:
    """A free port below the kernel's ephemeral range. The appservice port stays unbound while
    the bridge under test is stopped, and a port from the ephemeral range could meanwhile be
    handed to some outgoing connection; ports below it never are."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SynapseUnavailable("no free TCP port found below the ephemeral range")


@dataclass(frozen=True)
class AppserviceSlot:
    """The one appservice registration Synapse was started with; a bridge under test must
    listen on `port` with these tokens and this id."""

    id: str
    as_token: str
    hs_token: str
    port: int
    bot_localpart: str
    user_prefix: str
    registration_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class MatrixUser:
    user_id: str
    access_token: str
    password: str


@dataclass(frozen=True)
class DoublePuppetSlot:
    """A second registration (written by msnbridge's own builder) that lets a bridge act
    as the server's real users: put `secret` in bridge.double_puppet.secrets."""

    as_token: str
    registration_path: Path

    @property
    def secret(self) -> str:
        return f"as_token:{self.as_token}"


class SynapseServer:
    def __init__(
        self,
        workdir: Path,
        extra_config: dict[str, Any] | None = None,
        *,
        double_puppet: bool = False,
    ) -> None:
        """``extra_config``: top-level homeserver.yaml sections that replace the overlay's
        (e.g. ``{"presence": {"enabled": True, "sync_online_timeout": "3s"}}``)."""
        self.workdir = workdir
        self.extra_config = extra_config or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.domain = SERVER_NAME
        self.shared_secret = secrets.token_hex(16)
        self.appservice = AppserviceSlot(
            id="msnbridge-test",
            as_token=secrets.token_hex(16),
            hs_token=secrets.token_hex(16),
            port=free_port(),
            bot_localpart="msnbot",
            user_prefix="msn_",
            registration_path=workdir / "registration.yaml",
        )
        self.double_puppet = (
            DoublePuppetSlot(secrets.token_hex(16), workdir / "doublepuppet.yaml")
            if double_puppet
            else None
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._user_counter = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "homeserver.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no homeserver.log)"

    def start(self) -> None:
        if not SYNAPSE_PYTHON.exists():
            raise SynapseUnavailable(
                f"{SYNAPSE_PYTHON} not found; run scripts/test.sh to install matrix-synapse"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = self.workdir / "homeserver.yaml"
        if not base.exists():  # a restart after stop() keeps the config, keys and database
            self._generate(base)
        overlay = self.workdir / "overlay.yaml"
        run = [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver"]
        run += ["--config-path", str(base), "--config-path", str(overlay)]
        with open(self.workdir / "stderr.log", "ab") as stderr:  # the child keeps its own fd
            self._proc = subprocess.Popen(
                run,
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self._wait_ready()

    def _generate(self, base: Path) -> None:
        generate = [
            str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver",
            "--server-name", SERVER_NAME, "--config-path", str(base),
            "--generate-config", "--report-stats=no", "--data-directory", str(self.workdir),
        ]  # fmt: skip
        result = subprocess.run(
            generate, cwd=self.workdir, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise SynapseUnavailable(f"synapse --generate-config failed: {result.stderr[-800:]}")
        self._write_registration()
        overlay = self.workdir / "overlay.yaml"
        overlay.write_text(json.dumps(self._overlay(), indent=2))  # JSON is YAML

    def _write_registration(self) -> None:
        slot = self.appservice
        registration = {
            "id": slot.id,
            "url": slot.url,
            "as_token": slot.as_token,
            "hs_token": slot.hs_token,
            "sender_localpart": slot.bot_localpart,
            "rate_limited": False,
            "receive_ephemeral": True,
            "de.sorunome.msc2409.push_ephemeral": True,
            "namespaces": {
                "users": [
                    {"regex": f"@{slot.user_prefix}.*:{SERVER_NAME}", "exclusive": True},
                    {"regex": f"@{slot.bot_localpart}:{SERVER_NAME}", "exclusive": True},
                ],
                "aliases": [],
                "rooms": [],
            },
        }
        slot.registration_path.write_text(json.dumps(registration, indent=2))  # JSON is YAML
        if self.double_puppet is not None:
            extra = build_double_puppet_registration(SERVER_NAME, self.double_puppet.as_token)
            self.double_puppet.registration_path.write_text(json.dumps(extra, indent=2))

    def _overlay(self) -> dict[str, Any]:
        overlay = local_overlay(
            self.port,
            self.workdir / "homeserver.db",
            self.appservice.registration_path,
            self.shared_secret,
        )
        if self.double_puppet is not None:
            overlay["app_service_config_files"].append(str(self.double_puppet.registration_path))
        return {**overlay, **self.extra_config}

    def _wait_ready(self) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise SynapseUnavailable(
                    f"synapse exited with status {self._proc.returncode}:\n{self._stderr_tail()}"
                    f"\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise SynapseUnavailable(f"synapse not ready after {START_TIMEOUT}s:\n{self.log_tail()}")

    def _stderr_tail(self) -> str:
        try:
            return (self.workdir / "stderr.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    # --- helpers for tests -------------------------------------------------------------

    async def register_user(
        self, localpart: str | None = None, *, admin: bool = False, password: str | None = None
    ) -> MatrixUser:
        """Registers a user with the shared-secret admin API; a unique localpart and a
        random password by default."""
        if localpart is None:
            self._user_counter += 1
            localpart = f"user{self._user_counter}_{secrets.token_hex(3)}"
        password = password or secrets.token_hex(8)
        nonce = (await self.request("GET", "/_synapse/admin/v1/register"))["nonce"]
        # HMAC-SHA1 over nonce, user, password and admin flag joined by NUL (Synapse admin API).
        signed = "\x00".join((nonce, localpart, password, "admin" if admin else "notadmin"))
        mac = hmac.new(self.shared_secret.encode(), signed.encode(), hashlib.sha1).hexdigest()
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        }
        reply = await self.request("POST", "/_synapse/admin/v1/register", body)
        return MatrixUser(reply["user_id"], reply["access_token"], password)

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> dict[str, Any]:
        """One client-server API call; raises MatrixHTTPError carrying the JSON error."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}{path}", json=body, headers=headers) as resp,
        ):
            text = await resp.text()
            if resp.status >= 400:
                raise MatrixHTTPError(resp.status, text)
            return json.loads(text or "{}")


class MatrixHTTPError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


# --- Matrix client helpers for tests ---------------------------------------------------------


async def create_dm(synapse: SynapseServer, user: MatrixUser, invitee: str) -> str:
    reply = await synapse.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"invite": [invitee], "is_direct": True, "preset": "trusted_private_chat"},
        token=user.access_token,
    )
    return reply["room_id"]


async def send_text(synapse: SynapseServer, user: MatrixUser, room_id: str, body: str) -> str:
    txn = secrets.token_hex(8)
    reply = await synapse.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": body},
        token=user.access_token,
    )
    return reply["event_id"]


async def room_events(
    synapse: SynapseServer, user: MatrixUser, room_id: str
) -> list[dict[str, Any]]:
    """The room's latest events, oldest first."""
    reply = await synapse.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=100",
        token=user.access_token,
    )
    return list(reversed(reply["chunk"]))


async def wait_for_event(
    synapse: SynapseServer,
    user: MatrixUser,
    room_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Polls the room until an event matches; fails the test with what was seen instead."""
    deadline = asyncio.get_running_loop().time() + timeout
    events: list[dict[str, Any]] = []
    while asyncio.get_running_loop().time() < deadline:
        events = await room_events(synapse, user, room_id)
        for event in events:
            if predicate(event):
                return event
        await asyncio.sleep(0.1)
    seen = "\n".join(f"  {e['type']} {e['sender']}: {e.get('content')}" for e in events)
    raise AssertionError(f"no matching event in {room_id} within {timeout}s; saw:\n{seen}")


def is_membership(user_id: str, membership: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["type"] == "m.room.member"
        and e.get("state_key") == user_id
        and e["content"].get("membership") == membership
    )


def is_notice_from(sender: str, contains: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["type"] == "m.room.message"
        and e["sender"] == sender
        and contains in e["content"].get("body", "")
    )


def bot_id(synapse: SynapseServer) -> str:
    """The bridge bot's Matrix ID on this server."""
    return f"@{synapse.appservice.bot_localpart}:{synapse.domain}"


async def matrix_login(
    synapse: SynapseServer, user: MatrixUser, passport: str, password: str
) -> str:
    """``user``'s management room with the bot, after ``login`` succeeded there."""
    bot = bot_id(synapse)
    room = await create_dm(synapse, user, bot)
    await wait_for_event(synapse, user, room, is_membership(bot, "join"))
    await send_text(synapse, user, room, f"login {passport} {password}")
    await wait_for_event(synapse, user, room, is_notice_from(bot, "Logged in to MSN"))
    return room


# --- bridge configuration and lifetime for tests ---------------------------------------------


def write_bridge_config(
    path: Path, synapse: SynapseServer, database: str, **overrides: Any
) -> Path:
    """A bridge.yaml wired to the session's Synapse and appservice slot. `overrides` replace
    top-level sections or dotted keys, e.g. {"bridge.permissions": {...}}."""
    slot = synapse.appservice
    config: dict[str, Any] = {
        "homeserver": {"address": synapse.url, "domain": synapse.domain, "verify_ssl": True},
        "appservice": {
            "address": slot.url,
            "hostname": "127.0.0.1",
            "port": slot.port,
            "id": slot.id,
            "bot_username": slot.bot_localpart,
            "bot_displayname": "MSN bridge bot",
            "as_token": slot.as_token,
            "hs_token": slot.hs_token,
            "ephemeral_events": True,
            "username_template": slot.user_prefix + "{passport}",
            "displayname_template": "{nick} (MSN)",
        },
        "bridge": {
            "permissions": {synapse.domain: "user"},
            "relay": {"enabled": False, "format": "<{displayname}> {message}"},
            "secret_key": secrets.token_urlsafe(32),
        },
        "database": database,
        "msn": {"dispatch_host": "127.0.0.1", "dispatch_port": 1863},
        "irc": {"enabled": False},
        "metrics": {"enabled": False},
        "logging": {"version": 1, "disable_existing_loggers": False},
    }
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def msn_settings(server: MSNPTestServer, *, services: bool = False, **extra: Any) -> dict[str, Any]:
    """Overrides for write_bridge_config: the bridge's `msn` section pointed at the MSNP
    test server (with `services`, at its SOAP services too, for MSNP13+), and `extra`."""
    section: dict[str, Any] = {
        "dispatch_host": server.host,
        "dispatch_port": server.dispatch_port,
        "nexus_url": server.nexus_url,
        "verify_tls": False,
    }
    if services:
        section["services_url"] = server.services_url
    return {"msn": section, **extra}


@contextlib.contextmanager
def serving(server: SynapseServer) -> Iterator[SynapseServer]:
    """``server`` started, and stopped after; for fixtures of a Synapse of their own, so
    they skip (saying why) when Synapse is not installed or does not start."""
    try:
        server.start()
    except SynapseUnavailable as e:
        pytest.skip(f"real Synapse unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A real Synapse for the whole session, with the appservice registration of
    `synapse.appservice`. Skips (saying why) when Synapse is not installed or does not start."""
    # The double-puppet registration is inert (no URL, not exclusive) until a bridge is
    # configured with its token.
    with serving(SynapseServer(tmp_path_factory.mktemp("synapse"), double_puppet=True)) as server:
        yield server


@pytest.fixture
def bridge_config(tmp_path: Path, synapse: SynapseServer) -> Callable[..., Path]:
    """Factory: bridge_config(**overrides) -> path of a bridge.yaml for the session's Synapse,
    with a fresh SQLite database in tmp_path."""

    def make(**overrides: Any) -> Path:
        database = overrides.pop("database", f"sqlite:{tmp_path / 'msnbridge.db'}")
        return write_bridge_config(tmp_path / "bridge.yaml", synapse, database, **overrides)

    return make


@contextlib.asynccontextmanager
async def running_bridge(config_path: Path) -> AsyncIterator[Bridge]:
    """Runs the bridge in this event loop for the duration of the block."""
    bridge = Bridge(load_config(str(config_path)))
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


@pytest.fixture
async def bridge(bridge_config: Callable[..., Path]) -> AsyncIterator[Bridge]:
    """The bridge running in-process with the default test config (the Synapse's own
    server has `user` permission)."""
    async with running_bridge(bridge_config()) as running:
        yield running
