"""The bridge's YAML configuration: loading, checking and saving generated values.

The file is read and written with ruamel (through mautrix's BaseFileConfig) so that `-g`
can store generated tokens without losing the operator's comments. Every key the bridge
reads is declared once in OPTIONS with its type, default and the fix to suggest; `check()`
turns any mistake into a ConfigError naming the key path, before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mautrix.util.config import BaseFileConfig, ConfigUpdateHelper
from ruamel.yaml.error import YAMLError

from .permissions import parse_permissions

GENERATE = "generate"  # placeholder value that `msnbridge -g` replaces with a secret


class ConfigError(Exception):
    """A configuration mistake; the message names the key and the fix (shown without traceback)."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_MISSING: Any = object()

# A checker returns None when the value is fine, or the reason it is not.
Checker = Callable[[Any], str | None]


@dataclass(frozen=True)
class Option:
    path: str  # dotted key path, e.g. "msn.dispatch_port"
    kind: type | tuple[type, ...]
    default: Any = REQUIRED
    check: Checker | None = None
    example: str = ""  # a valid value, quoted in error messages

    def describe_kind(self) -> str:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping"}


def _url(value: str) -> str | None:
    if not re.match(r"^https?://[^/\s]+", value):
        return "expected an http:// or https:// URL"
    return None


def _redis_url(value: str) -> str | None:
    if value and not re.match(r"^(redis|rediss|unix)://", value):
        return "expected redis://host:port/db, rediss://… or unix:///path (empty: no pools)"
    return None


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "expected a port number from 1 to 65535"


def _positive_seconds(value: int) -> str | None:
    return None if value > 0 else "expected a positive number of seconds"


def _positive_size(value: int) -> str | None:
    return None if value > 0 else "expected a positive number"


def _msnp_version(value: int) -> str | None:
    return None if 2 <= value <= 18 else "expected an MSNP version from 2 to 18"


def _localpart(value: str) -> str | None:
    if not re.fullmatch(r"[a-z0-9._=/+-]+", value):
        return "expected a Matrix localpart: lowercase letters, digits and ._=/+-"
    return None


def _username_template(value: str) -> str | None:
    if value.count("{passport}") != 1:
        return "must contain {passport} exactly once"
    prefix, suffix = value.split("{passport}")
    if not prefix:
        return "needs a fixed prefix before {passport} (e.g. msn_{passport})"
    return _localpart(prefix + suffix) if prefix + suffix else None


def _database(value: str) -> str | None:
    if not re.match(r"^(sqlite:|sqlite3:|postgres://|postgresql://)", value):
        return "expected sqlite:<path> or postgres://user:password@host/database"
    return None


def _permissions(value: Mapping[str, Any]) -> str | None:
    try:
        parse_permissions(value)
    except ValueError as e:
        return str(e)
    return None


def _logging(value: Mapping[str, Any]) -> str | None:
    if value.get("version") != 1:
        return "expected a logging.config.dictConfig mapping with 'version: 1'"
    return None


OPTIONS: tuple[Option, ...] = (
    Option("homeserver.address", str, check=_url, example="http://localhost:8008"),
    Option("homeserver.domain", str, example="example.com"),
    Option("homeserver.verify_ssl", bool, True),
    Option("appservice.address", str, "http://localhost:29390", _url, "http://localhost:29390"),
    Option("appservice.hostname", str, "127.0.0.1", example="127.0.0.1"),
    Option("appservice.port", int, 29390, _port, "29390"),
    Option("appservice.id", str, "msn", example="msn"),
    Option("appservice.bot_username", str, "msnbot", _localpart, "msnbot"),
    Option("appservice.bot_displayname", str, "MSN bridge bot"),
    Option("appservice.as_token", str, example="generate (then run msnbridge -g)"),
    Option("appservice.hs_token", str, example="generate (then run msnbridge -g)"),
    Option("appservice.ephemeral_events", bool, True),
    Option("appservice.username_template", str, "msn_{passport}", _username_template),
    Option("appservice.displayname_template", str, "{nick} (MSN)"),
    Option("bridge.permissions", dict, check=_permissions, example="{'example.com': user}"),
    # The switch: false refuses `relay on` and relays nobody. on_in_new_rooms: relaying
    # starts on in new conversation rooms (the owner can still turn it off).
    Option("bridge.relay.enabled", bool, False),
    Option("bridge.relay.on_in_new_rooms", bool, False),
    Option("bridge.relay.format", str, "<{displayname}> {message}"),
    Option("bridge.secret_key", str, example="generate (then run msnbridge -g)"),
    Option("database", str, "sqlite:msnbridge.db", _database, "sqlite:msnbridge.db"),
    Option("msn.dispatch_host", str, "messenger.hotmail.com", example="messenger.hotmail.com"),
    Option("msn.dispatch_port", int, 1863, _port, "1863"),
    Option("msn.nexus_url", str, "https://nexus.passport.com/rdr/pprdr.asp", _url),
    Option("msn.login_url", str, ""),
    Option("msn.verify_tls", bool, True),
    Option("msn.min_version", int, 2, _msnp_version, "2"),
    Option("msn.max_version", int, 18, _msnp_version, "18"),
    # MSNP13-18 SOAP services: one base URL with the standard paths, each overridable.
    Option("msn.services_url", str, ""),
    Option("msn.rst_url", str, ""),
    Option("msn.abch_url", str, ""),
    Option("msn.sharing_url", str, ""),
    Option("msn.oim_url", str, ""),
    Option("msn.rsi_url", str, ""),
    Option("msn.endpoint_name", str, "msnbridge"),  # MSNP18: shown in the owner's Messenger
    # How long a message waits for a dropped MSN session to come back before it is
    # reported to its sender as not delivered.
    Option("msn.offline_send_timeout", int, 60, _positive_seconds, "60"),
    # Tell an owner their MSN session is down once it has been reconnecting this long.
    Option("msn.outage_notice_after", int, 120, _positive_seconds, "120"),
    # Files between MSN and Matrix (docs/pictures-and-files.md): largest file each way,
    # transfers under way per owner, where incoming files wait (system temp dir if empty).
    Option("files", dict, {}),
    Option("files.max_incoming_size", int, 100 * 1024 * 1024, _positive_size, "104857600"),
    Option("files.max_outgoing_size", int, 100 * 1024 * 1024, _positive_size, "104857600"),
    Option("files.max_in_flight", int, 4, _positive_size, "4"),
    Option("files.temp_dir", str, ""),
    Option("irc", dict, {"enabled": False}),
    Option("irc.enabled", bool, False),
    # Connection pools (docs/deployment.md): empty redis_url keeps every MSN session in
    # the bridge process itself; set, the sessions live in `msnbridge pool` processes.
    Option("pools", dict, {}),
    Option("pools.redis_url", str, "", _redis_url, "redis://127.0.0.1:6379/0"),
    # Names this pool process in Redis and in metrics (empty: host name and process id).
    Option("pools.instance", str, ""),
    # A pool that stops renewing loses its sessions after this long; another pool takes them.
    Option("pools.lease_ttl", int, 15, _positive_seconds, "15"),
    # How long events are kept for a core that is down; past it they are dropped (counted,
    # and their owners told when the core is back).
    Option("pools.max_core_downtime", int, 3600, _positive_seconds, "3600"),
    # How long the core waits for a pool to carry out a command before reporting it failed.
    Option("pools.command_timeout", int, 60, _positive_seconds, "60"),
    Option("metrics.enabled", bool, False),
    Option("metrics.listen_address", str, "127.0.0.1"),
    Option("metrics.port", int, 8000, _port, "8000"),
    Option("logging", dict, check=_logging),
)

# Values `msnbridge -g` generates; a run refuses to start while they still say "generate".
GENERATED = ("appservice.as_token", "appservice.hs_token", "bridge.secret_key")


class Config(BaseFileConfig):
    """bridge.yaml. Read values with `config["msn.dispatch_port"]` after `load()` and
    `check()`; an optional key missing from the file reads as its declared default."""

    def __init__(self, path: str) -> None:
        super().__init__(path, base_path="")
        self._defaults: dict[str, Any] = {}

    def load(self) -> None:
        try:
            super().load()
        except FileNotFoundError:
            raise ConfigError(
                f"{self.path}: no such file. Copy bridge.yaml.example to {self.path} and edit it."
            ) from None
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot read: {e.strerror}") from None
        except YAMLError as e:
            raise ConfigError(f"{self.path}: not valid YAML: {e}") from None
        if not isinstance(self._data, Mapping):
            raise ConfigError(f"{self.path}: expected a YAML mapping at the top level.")

    def __getitem__(self, key: str) -> Any:
        value = self._lookup(key)
        return self._defaults.get(key) if value is _MISSING else value

    def _lookup(self, path: str) -> Any:
        node: Any = self._data
        walked: list[str] = []
        for part in path.split("."):
            if node is None:
                return _MISSING
            if not isinstance(node, Mapping):
                # `msn: 5` must not silently fall back to the defaults of msn.*
                parent = ".".join(walked)
                raise ConfigError(
                    f"{parent}: expected a mapping (a section of keys), got {_show(node)}. "
                    f"Fix: write {parent}: as a section, as in bridge.yaml.example."
                )
            if part not in node:
                return _MISSING
            node = node[part]
            walked.append(part)
        return _MISSING if node is None else node

    def check(self, options: Iterable[Option] = OPTIONS, *, allow_generate: bool = False) -> None:
        """Raises ConfigError for the first wrong or missing value. Other parts of the bridge
        (the IRC side) call this with their own options for the keys they own."""
        for option in options:
            self._check_option(option)
            if not allow_generate and option.path in GENERATED and self[option.path] == GENERATE:
                raise ConfigError(
                    f"{option.path}: not generated yet. Fix: run "
                    f"`msnbridge -g -c {self.path} -r registration.yaml` and give the "
                    f"registration file to the homeserver."
                )
        low, high = self["msn.min_version"], self["msn.max_version"]
        if low > high:
            raise ConfigError(
                f"msn.min_version: {low} is above msn.max_version {high}. Fix: make "
                f"min_version ≤ max_version."
            )

    def _check_option(self, option: Option) -> None:
        value = self._lookup(option.path)
        if value is _MISSING:
            if option.default is REQUIRED:
                hint = f" such as {option.example}" if option.example else ""
                raise ConfigError(
                    f"{option.path}: missing. Fix: set {option.path} in {self.path} to "
                    f"{option.describe_kind()}{hint}."
                )
            self._defaults[option.path] = option.default
            return
        kinds = option.kind if isinstance(option.kind, tuple) else (option.kind,)
        # YAML booleans are ints to Python; never let `true` pass as a port number.
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            hint = f" such as {option.example}" if option.example else ""
            raise ConfigError(
                f"{option.path}: expected {option.describe_kind()}, got {_show(value)}. "
                f"Fix: set {option.path} to {option.describe_kind()}{hint}."
            )
        if option.check and (reason := option.check(value)):
            hint = f" (e.g. {option.example})" if option.example else ""
            raise ConfigError(f"{option.path}: {reason}, got {_show(value)}{hint}.")

    def do_update(self, helper: ConfigUpdateHelper) -> None:
        # Required by BaseConfig; the bridge never rewrites the operator's file wholesale
        # (only `-g` sets generated values with `config[path] = value` and `save()`).
        raise NotImplementedError("msnbridge does not migrate config files automatically")


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_config(path: str, *, allow_generate: bool = False) -> Config:
    """Loads and checks bridge.yaml; raises ConfigError with the key and the fix."""
    config = Config(path)
    config.load()
    config.check(allow_generate=allow_generate)
    return config
