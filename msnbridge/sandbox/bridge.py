"""The bridge for the sandbox: bridge.yaml written on every start for the current ports,
keeping the tokens and secret key `msnbridge -g` generated on the first start (so the
registration Synapse has, the stored MSN passwords and the bridge database stay valid)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from ..config import GENERATE
from .http import get_status
from .ports import HOST, Ports
from .process import Service, ServiceError

BOT = "msnbot"
APPSERVICE_ID = "msn-sandbox"
IRC_BOT_NICK = "MSNBot"
KEPT = (("appservice", "as_token"), ("appservice", "hs_token"), ("bridge", "secret_key"))


def irc_section(irc_port: int | None) -> dict[str, Any]:
    """The bridge's IRC side on the sandbox's ngIRCd (plain text on loopback)."""
    if irc_port is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "server": {"host": "127.0.0.1", "port": irc_port, "tls": False},
        "bot": {"nick": IRC_BOT_NICK},
        # Loopback-only demo network: small backoff so a restarted ngIRCd is back at once.
        "reconnect": {"initial_backoff": 1, "max_backoff": 10, "concurrency": 3},
    }


class BridgeProcess:
    def __init__(self, workdir: Path, ports: Ports, *, homeserver: str, domain: str) -> None:
        self.workdir = workdir
        self.ports = ports
        self.homeserver = homeserver
        self.domain = domain
        self.config_path = workdir / "bridge.yaml"
        self.registration_path = workdir / "registration.yaml"
        self.service = Service(
            "bridge",
            [sys.executable, "-m", "msnbridge", "-c", str(self.config_path)],
            cwd=workdir,
            log_path=workdir / "bridge.log",
            host=HOST,
            port=ports.appservice,
        )

    @property
    def appservice_url(self) -> str:
        return f"http://{HOST}:{self.ports.appservice}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.ports.metrics}/metrics"

    @property
    def bot_mxid(self) -> str:
        return f"@{BOT}:{self.domain}"

    def _kept_secrets(self) -> dict[tuple[str, str], str]:
        if not self.config_path.exists():
            return {}
        data = YAML().load(self.config_path.read_text(encoding="utf-8")) or {}
        kept = {}
        for section, key in KEPT:
            value = (data.get(section) or {}).get(key)
            if isinstance(value, str) and value != GENERATE:
                kept[(section, key)] = value
        return kept

    def config(
        self, *, msn_host: str, msn_port: int, nexus_url: str, admin: str, irc_port: int | None
    ) -> dict[str, Any]:
        kept = self._kept_secrets()
        return {
            "homeserver": {"address": self.homeserver, "domain": self.domain, "verify_ssl": True},
            "appservice": {
                "address": self.appservice_url,
                "hostname": HOST,
                "port": self.ports.appservice,
                "id": APPSERVICE_ID,
                "bot_username": BOT,
                "bot_displayname": "MSN bridge bot",
                "as_token": kept.get(("appservice", "as_token"), GENERATE),
                "hs_token": kept.get(("appservice", "hs_token"), GENERATE),
                "ephemeral_events": True,
                "username_template": "msn_{passport}",
                "displayname_template": "{nick} (MSN)",
            },
            "bridge": {
                "permissions": {"*": "relay", self.domain: "user", admin: "admin"},
                "relay": {"enabled": False, "format": "<{displayname}> {message}"},
                "secret_key": kept.get(("bridge", "secret_key"), GENERATE),
            },
            "database": f"sqlite:{self.workdir / 'msnbridge.db'}",
            "msn": {
                "dispatch_host": msn_host,
                "dispatch_port": msn_port,
                "nexus_url": nexus_url,
                "login_url": "",
                "verify_tls": False,  # the test server's Nexus is plain HTTP on loopback
                "min_version": 2,
                "max_version": 18,
                # MSNP13-18 SOAP services: the test server serves them on its HTTP port.
                "services_url": nexus_url.split("/rdr/", 1)[0],
            },
            "irc": irc_section(irc_port),
            "metrics": {"enabled": True, "listen_address": HOST, "port": self.ports.metrics},
            "logging": {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {
                    "normal": {"format": "[%(asctime)s] [%(levelname)s@%(name)s] %(message)s"}
                },
                "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "normal"}},
                "root": {"level": "INFO", "handlers": ["console"]},
            },
        }

    def prepare(self, **config: Any) -> None:
        """Writes bridge.yaml and runs `msnbridge -g`, which generates the tokens once and
        (re)writes the registration Synapse loads."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Block style: `msnbridge -g` saves the file back in the style it finds.
        content = self.config(**config)  # reads the kept secrets: before truncating the file
        yaml = YAML()
        yaml.default_flow_style = False
        tmp = self.config_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as stream:
            yaml.dump(content, stream)
        tmp.chmod(0o600)  # it holds the tokens and the secret key
        tmp.replace(self.config_path)
        generate = [
            sys.executable, "-m", "msnbridge", "-g",
            "-c", str(self.config_path), "-r", str(self.registration_path),
        ]  # fmt: skip
        done = subprocess.run(generate, cwd=self.workdir, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"msnbridge -g failed:\n{done.stderr[-1500:]}")

    def start(self, timeout: float = 60.0) -> None:
        self.service.start()
        self.service.wait_ready(timeout, ready=self.ready)

    def ready(self) -> bool:
        """mautrix's readiness probe: 200 once the bot is set up on the homeserver."""
        try:
            return get_status(f"{self.appservice_url}/_matrix/mau/ready", timeout=2)[0] == 200
        except OSError:
            return False
