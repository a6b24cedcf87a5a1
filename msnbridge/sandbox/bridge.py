"""The bridge for the sandbox: bridge.yaml written whole on the first start; later starts keep
the user's edits, fill in keys that are missing and set only the addresses and ports (which
follow the command line). The tokens and secret key `msnbridge -g` generated on the first
start stay, so the registration Synapse has, the stored MSN passwords and the bridge
database stay valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap

from ..config import GENERATE
from ..permissions import PermissionLevel, Permissions
from .http import get_status
from .ports import HOST, Ports
from .process import Service, ServiceError

BOT = "msnbot"
APPSERVICE_ID = "msn-sandbox"
IRC_BOT_NICK = "MSNBot"
KEPT = (("appservice", "as_token"), ("appservice", "hs_token"), ("bridge", "secret_key"))
# Set at every start: where the other services are, which follows the command line.
MANAGED: tuple[tuple[str, ...], ...] = (
    ("homeserver", "address"),
    ("homeserver", "domain"),
    ("appservice", "address"),
    ("appservice", "hostname"),
    ("appservice", "port"),
    ("msn", "dispatch_host"),
    ("msn", "dispatch_port"),
    ("msn", "nexus_url"),
    ("msn", "services_url"),
    ("irc", "enabled"),
    ("irc", "server", "host"),
    ("irc", "server", "port"),
    ("irc", "server", "tls"),
    ("metrics", "listen_address"),
    ("metrics", "port"),
)
# Maps that are the user's whole choice when present: never completed key by key (an entry
# the user removed from bridge.permissions must stay removed).
WHOLE: tuple[tuple[str, ...], ...] = (("bridge", "permissions"), ("logging",))
# Beside bridge.yaml: says the file was written by a sandbox that keeps edits. A bridge.yaml
# without it comes from an older sandbox that rewrote the file at every start: it holds no
# edits worth keeping and is rewritten once (keeping the secrets).
MARKER = ".sandbox-keeps-edits"
HEADER = """\
Written by the msnbridge sandbox on its first start. Edit freely: later starts keep your
edits, add keys that are missing and set only the addresses and ports of the sandbox's
services (homeserver.address/domain, appservice.address/hostname/port,
msn.dispatch_host/dispatch_port/nexus_url/services_url, irc.enabled and irc.server host/port/tls,
metrics.listen_address/port). Delete this file to get the sandbox's defaults back (with a
new secret key: stored MSN logins must then be made again)."""


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
                # IRC users may log in (the printed IRC hint needs it): the sandbox's
                # ngIRCd listens on loopback only, so they are people on this machine.
                "permissions": {
                    "*": "relay",
                    "irc:*": "user",
                    self.domain: "user",
                    admin: "admin",
                },
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
        """Writes bridge.yaml (whole on the first start, else only what is missing and the
        addresses) and runs `msnbridge -g`, which generates the tokens once and (re)writes
        the registration Synapse loads."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        defaults = self.config(**config)  # reads the kept secrets: before truncating the file
        yaml = YAML()  # round-trip: the user's comments and order stay
        yaml.default_flow_style = False  # block style: `msnbridge -g` saves back in it
        marker = self.workdir / MARKER
        if self.config_path.exists() and marker.exists():
            content = yaml.load(self.config_path.read_text(encoding="utf-8"))
            if not isinstance(content, CommentedMap):
                raise ServiceError(
                    f"{self.config_path} is not a YAML mapping; fix it or delete it to get "
                    "the sandbox's defaults back"
                )
            _fill_missing(content, defaults, ())
            for path in MANAGED:
                _set(content, path, _get(defaults, path))
        else:
            content = CommentedMap(defaults)
            content.yaml_set_start_comment(HEADER)
        tmp = self.config_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as stream:
            yaml.dump(content, stream)
        tmp.chmod(0o600)  # it holds the tokens and the secret key
        tmp.replace(self.config_path)
        marker.touch()
        generate = [
            sys.executable, "-m", "msnbridge", "-g",
            "-c", str(self.config_path), "-r", str(self.registration_path),
        ]  # fmt: skip
        done = subprocess.run(generate, cwd=self.workdir, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"msnbridge -g failed:\n{done.stderr[-1500:]}")

    def _current(self, *path: str) -> Any:
        """A value of bridge.yaml as it stands (None if absent or unreadable)."""
        try:
            data = YAML(typ="safe").load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, YAMLError):
            return None
        for key in path:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data

    def irc_login_allowed(self) -> bool:
        """Whether bridge.yaml as it stands lets an IRC user (any nick) log in to MSN."""
        raw = self._current("bridge", "permissions")
        try:
            # A nick no entry can name (entries have no spaces): what irc:* and * give.
            anyone = "irc:nick:any nick"
            level = Permissions(raw if isinstance(raw, dict) else {}).level_for(anyone)
        except ValueError:
            return False  # the bridge will refuse to start and say why
        return level is not None and level >= PermissionLevel.USER

    def contact_list_channel(self, passport: str) -> str:
        template = self._current("irc", "channels", "contact_list")
        template = template if isinstance(template, str) else "#msn-{user}"
        try:
            return template.format(user=passport.partition("@")[0])
        except (KeyError, IndexError, ValueError):
            return template

    def start(self, timeout: float = 60.0) -> None:
        self.service.start()
        self.service.wait_ready(timeout, ready=self.ready)

    def ready(self) -> bool:
        """mautrix's readiness probe: 200 once the bot is set up on the homeserver."""
        try:
            return get_status(f"{self.appservice_url}/_matrix/mau/ready", timeout=2)[0] == 200
        except OSError:
            return False


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Sets a managed key; skipped when absent from the defaults (irc.server with --no-irc)
    or when the user replaced a section by something that is not a map."""
    if value is None:
        return
    for key in path[:-1]:
        child = data.get(key)
        if child is None:
            child = data[key] = CommentedMap()
        if not isinstance(child, dict):
            return
        data = child
    data[path[-1]] = value


def _fill_missing(data: dict[str, Any], defaults: dict[str, Any], at: tuple[str, ...]) -> None:
    for key, value in defaults.items():
        path = (*at, key)
        if key not in data:
            data[key] = value
        elif isinstance(value, dict) and isinstance(data[key], dict) and path not in WHOLE:
            _fill_missing(data[key], value, path)
