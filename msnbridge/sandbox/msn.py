"""The MSNP test server (tests/msnp_server) as a child process, with demo accounts that have
each other as contacts (forward and allow lists, one group), so presence and messages flow at
once. Passwords are generated on the first start and kept in the data directory."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import HOST, Ports
from .process import Service, accepting

REPO = Path(__file__).resolve().parents[2]
DEMO_ACCOUNTS = (
    ("alice@example.com", "Alice"),
    ("bob@example.com", "Bob"),
    ("carol@example.com", "Carol"),
)
GROUP = "Friends"


@dataclass(frozen=True)
class MSNAccount:
    passport: str
    password: str
    nick: str


def demo_accounts(path: Path) -> list[MSNAccount]:
    """Reads the accounts file, writing it first on the first start."""
    if not path.exists():
        passports = [p for p, _ in DEMO_ACCOUNTS]
        entries = [
            {
                "passport": passport,
                "password": secrets.token_urlsafe(6),
                "nick": nick,
                "groups": [GROUP],
                "contacts": [
                    {"passport": other, "lists": ["FL", "AL"], "groups": [GROUP]}
                    for other in passports
                    if other != passport
                ],
            }
            for passport, nick in DEMO_ACCOUNTS
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries, indent=2))
        path.chmod(0o600)
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [
        MSNAccount(e["passport"], e["password"], e.get("nick") or e["passport"]) for e in entries
    ]


class MSNServer:
    def __init__(self, workdir: Path, ports: Ports) -> None:
        self.workdir = workdir
        self.ports = ports
        self.accounts_path = workdir / "accounts.json"
        self.accounts: list[MSNAccount] = []
        env = dict(os.environ)
        # tests/ ships in the repository but is not an installed package.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        self.service = Service(
            "MSN server",
            [sys.executable, "-m", "tests.msnp_server", "--host", HOST,
             "--accounts", str(self.accounts_path),
             "--dispatch-port", str(ports.msn), "--ns-port", str(ports.msn_ns),
             "--sb-port", str(ports.msn_sb), "--http-port", str(ports.msn_http)],
            cwd=REPO,
            log_path=workdir / "server.log",
            host=HOST,
            port=ports.msn,
            env=env,
        )  # fmt: skip

    @property
    def nexus_url(self) -> str:
        return f"http://{HOST}:{self.ports.msn_http}/rdr/pprdr.asp"

    @property
    def login_url(self) -> str:
        return f"http://{HOST}:{self.ports.msn_http}/login2.srf"

    def prepare(self) -> None:
        self.accounts = demo_accounts(self.accounts_path)

    def start(self, timeout: float = 20.0) -> None:
        self.service.start()
        # The HTTP (Nexus/login) listener is bound last.
        self.service.wait_ready(timeout, ready=lambda: accepting(HOST, self.ports.msn_http))

    def summary(self) -> dict[str, Any]:
        return {
            "host": HOST,
            "dispatch_port": self.ports.msn,
            "server": f"{HOST}:{self.ports.msn}",
            "ns_port": self.ports.msn_ns,
            "sb_port": self.ports.msn_sb,
            "http_port": self.ports.msn_http,
            "nexus_url": self.nexus_url,
            "login_url": self.login_url,
            "services_url": f"http://{HOST}:{self.ports.msn_http}",
            "accounts": [
                {"passport": a.passport, "password": a.password, "nick": a.nick}
                for a in self.accounts
            ],
            "note": "accounts and lists are held in memory: changes last until the sandbox stops",
        }
