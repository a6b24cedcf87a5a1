"""Synapse for the sandbox: configuration generated once into the data directory (signing
key, SQLite database and users survive restarts), then an overlay loaded after it on every
start, so its top-level keys win: loopback listener, the bridge's registration, presence,
raised rate limits and a registration shared secret (for registering the demo user)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from .http import HTTPError, request
from .ports import HOST
from .process import Service, ServiceError

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "localhost"


def synapse_python() -> Path:
    """Synapse lives in its own virtualenv (its pinned dependencies are not ours)."""
    return Path(
        os.environ.get("MSNBRIDGE_SYNAPSE_PYTHON", REPO / ".venv-synapse" / "bin" / "python")
    )


def synapse_available() -> str | None:
    """None when Synapse can run, else why not."""
    python = synapse_python()
    if not python.exists():
        return f"{python} not found; scripts/sandbox.sh installs matrix-synapse there"
    return None


def local_overlay(
    port: int, database: Path, registration: Path, shared_secret: str
) -> dict[str, Any]:
    """Synapse settings for a loopback-only homeserver with one appservice: SQLite, presence
    on, registration by shared secret only, no federation keys, rate limits raised (the
    sandbox, the test fixture and the benchmarks all drive it harder than a person)."""
    fast = {"per_second": 1000, "burst_count": 1000}
    return {
        "listeners": [
            {
                "port": port,
                "bind_addresses": [HOST],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(database)}},
        "app_service_config_files": [str(registration)],
        "registration_shared_secret": shared_secret,
        "enable_registration": False,
        "presence": {"enabled": True},
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "report_stats": False,
        "rc_message": fast,
        "rc_registration": fast,
        "rc_login": {"address": fast, "account": fast, "failed_attempts": fast},
        "rc_joins": {"local": fast, "remote": fast},
        "rc_joins_per_room": fast,
        "rc_invites": {"per_room": fast, "per_user": fast, "per_issuer": fast},
        "rc_presence": {"per_user": fast},
        "rc_admin_redaction": fast,
    }


class Synapse:
    def __init__(self, workdir: Path, port: int, registration: Path) -> None:
        self.workdir = workdir
        self.port = port
        self.registration = registration
        self.url = f"http://{HOST}:{self.port}"
        self.server_name = SERVER_NAME
        self.service = Service(
            "Synapse",
            [str(synapse_python()), "-m", "synapse.app.homeserver",
             "--config-path", str(workdir / "homeserver.yaml"),
             "--config-path", str(workdir / "overlay.yaml")],
            cwd=workdir,
            log_path=workdir / "stderr.log",
            host=HOST,
            port=port,
        )  # fmt: skip

    @property
    def shared_secret(self) -> str:
        path = self.workdir / "shared_secret"
        if not path.exists():
            path.write_text(secrets.token_hex(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def prepare(self) -> bool:
        """Generates the base config on the first start; returns whether it did."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = self.workdir / "homeserver.yaml"
        generated = False
        if not base.exists():
            generate = [
                str(synapse_python()), "-m", "synapse.app.homeserver",
                "--server-name", SERVER_NAME, "--config-path", str(base),
                "--generate-config", "--report-stats=no", "--data-directory", str(self.workdir),
            ]  # fmt: skip
            done = subprocess.run(
                generate, cwd=self.workdir, capture_output=True, text=True, timeout=120
            )
            if done.returncode != 0:
                base.unlink(missing_ok=True)
                raise ServiceError(f"synapse --generate-config failed:\n{done.stderr[-1500:]}")
            generated = True
        overlay = self.workdir / "overlay.yaml"
        overlay.write_text(json.dumps(self.overlay(), indent=2))  # JSON is YAML
        return generated

    def overlay(self) -> dict[str, Any]:
        return {
            "public_baseurl": f"{self.url}/",
            **local_overlay(
                self.port, self.workdir / "homeserver.db", self.registration, self.shared_secret
            ),
            "federation_domain_whitelist": [],
        }

    def start(self, timeout: float = 90.0) -> None:
        self.service.start()
        self.service.wait_ready(timeout, ready=self.answers)

    def answers(self) -> bool:
        try:
            return "versions" in request("GET", f"{self.url}/_matrix/client/versions", timeout=2)
        except (OSError, HTTPError, ValueError):
            return False

    def register(self, localpart: str, password: str, *, admin: bool = False) -> bool:
        """Registers with the shared-secret admin API; False when the user exists already."""
        nonce = request("GET", f"{self.url}/_synapse/admin/v1/register")["nonce"]
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
        try:
            request("POST", f"{self.url}/_synapse/admin/v1/register", body)
        except HTTPError as e:
            if e.errcode == "M_USER_IN_USE":
                return False
            raise
        return True

    def login(self, localpart: str, password: str) -> str:
        """A fresh access token for a password login."""
        reply = request(
            "POST",
            f"{self.url}/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
                "initial_device_display_name": "msnbridge sandbox",
            },
        )
        return reply["access_token"]
