"""The whole sandbox: starts the MSN server, ngIRCd, Synapse and the bridge (in that order,
each waiting for the previous to answer), writes the summary, and stops them in reverse."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .bridge import IRC_BOT_NICK, BridgeProcess
from .checks import (
    CheckResult,
    check_appservice,
    check_irc,
    check_matrix_login,
    check_metrics,
    check_msn,
    check_synapse,
)
from .demo import DemoUser, auto_login, ensure_demo_user
from .ircd import IRCd, ircd_available
from .msn import DEMO_ACCOUNTS, MSNServer
from .ports import HOST, Ports, check_ports
from .process import Service
from .synapse import Synapse, synapse_available

SUMMARY_NAME = "sandbox.json"


class SandboxError(Exception):
    """The sandbox cannot start; the message says why and what to do."""


@dataclass
class Options:
    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    irc: bool = True
    auto_login: str | None = None  # an MSN demo passport to log the demo Matrix user in as


class Stack:
    def __init__(self, options: Options) -> None:
        self.options = options
        data = options.data_dir.resolve()
        self.data_dir = data
        ports = options.ports
        self.msn = MSNServer(data / "msn", ports)
        self.ircd = IRCd(data / "ircd", ports.irc) if options.irc else None
        self.bridge = BridgeProcess(
            data / "bridge", ports, homeserver=f"http://{HOST}:{ports.synapse}", domain="localhost"
        )
        self.synapse = Synapse(data / "synapse", ports.synapse, self.bridge.registration_path)
        self.demo: DemoUser | None = None
        self.first_start = False
        self.auto_login_answer: str | None = None
        self.checks: list[CheckResult] = []
        self._started: list[Service] = []
        self._lock: TextIO | None = None
        self._summary_written = False
        self.failed: dict[str, Any] | None = None  # the service that died under the sandbox

    @property
    def summary_path(self) -> Path:
        return self.data_dir / SUMMARY_NAME

    # -- lifecycle -------------------------------------------------------------------------

    def preflight(self) -> None:
        """Everything that can be found wrong before a process starts."""
        for reason in (synapse_available(), ircd_available() if self.ircd else None):
            if reason:
                raise SandboxError(reason)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.data_dir / "sandbox.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxError(
                f"another sandbox is running on {self.data_dir}; stop it first"
            ) from None
        check_ports(self.options.ports, irc=self.ircd is not None)
        with contextlib.suppress(FileNotFoundError):
            self.summary_path.unlink()  # a stale summary must not look like a running stack

    def start(self, say: Any = print) -> None:
        self.preflight()
        self.msn.prepare()
        say(f"Starting the MSN test server on {HOST}:{self.options.ports.msn}…")
        self._start(self.msn.service, self.msn.start)
        if self.ircd is not None:
            self.ircd.prepare()
            say(f"Starting ngIRCd on {HOST}:{self.ircd.port}…")
            self._start(self.ircd.service, self.ircd.start)
        assert self.demo is None
        self.bridge.prepare(
            msn_host=HOST,
            msn_port=self.options.ports.msn,
            nexus_url=self.msn.nexus_url,
            admin=f"@demo:{self.synapse.server_name}",
            irc_port=self.ircd.port if self.ircd else None,
        )
        self.first_start = self.synapse.prepare()
        say(
            f"Starting Synapse on {self.synapse.url}"
            + (" (first start: generating its configuration)…" if self.first_start else "…")
        )
        self._start(self.synapse.service, self.synapse.start)
        self.demo = ensure_demo_user(self.synapse, self.data_dir / "demo-matrix.json")
        say(f"Starting the bridge (appservice on {self.bridge.appservice_url})…")
        self._start(self.bridge.service, self.bridge.start)
        if self.options.auto_login:
            account = next(
                (a for a in self.msn.accounts if a.passport == self.options.auto_login), None
            )
            if account is None:
                known = ", ".join(a.passport for a in self.msn.accounts)
                raise SandboxError(f"--auto-login: {self.options.auto_login} is not one of {known}")
            say(f"Logging {self.demo.user_id} in to MSN as {account.passport}…")
            self.auto_login_answer = auto_login(
                self.synapse,
                self.demo,
                self.bridge.bot_mxid,
                account,
                self.data_dir / "demo-matrix.json",
            )
        self.write_summary("running")

    def _start(self, service: Service, start: Any) -> None:
        self._started.append(service)  # stopped even if its start fails half-way
        start()

    def watch(self, interval: float = 0.5) -> Service:
        """Blocks until one of the started services exits by itself; returns it, with the
        reason recorded for the summary (written as "failed" when the rest is stopped)."""
        while True:
            for service in self._started:
                if not service.running():
                    self.failed = {
                        "service": service.name,
                        "status": service.exit_description(),
                        "log": str(service.log_path),
                    }
                    return service
            time.sleep(interval)

    def stop(self) -> bool:
        """Stops what was started, in reverse order; safe to call more than once. Returns
        whether anything had been started."""
        started = bool(self._started)
        while self._started:
            self._started.pop().stop()
        if self._summary_written:  # never touch the summary of another sandbox's run
            self.write_summary("failed" if self.failed else "stopped")
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return started

    def run_checks(self) -> list[CheckResult]:
        ports = self.options.ports
        results = [check_synapse(self.synapse.url)]
        if self.demo is not None:
            results.append(
                check_matrix_login(self.synapse.url, self.demo.localpart, self.demo.password)
            )
        if self.ircd is not None:
            results.append(check_irc(HOST, ports.irc, IRC_BOT_NICK))
        results += [
            check_msn(HOST, ports.msn),
            check_appservice(self.bridge.appservice_url),
            check_metrics(self.bridge.metrics_url),
        ]
        self.checks = results
        return results

    # -- what a person (or a script) needs ---------------------------------------------------

    def summary(self, state: str) -> dict[str, Any]:
        ports = self.options.ports
        assert self.demo is not None
        services = [
            {
                "name": s.name,
                "pid": s.pid,
                "host": s.host,
                "port": s.port,
                "log": str(s.log_path),
            }
            for s in (
                self.msn.service,
                self.ircd.service if self.ircd else None,
                self.synapse.service,
                self.bridge.service,
            )
            if s is not None
        ]
        irc: dict[str, Any] = {"enabled": False}
        if self.ircd is not None:
            irc = {
                "enabled": True,
                "host": HOST,
                "port": self.ircd.port,
                "address": f"{HOST}:{self.ircd.port}",
                "channel": self.ircd.channel,
                "bridged": True,
                "bot": IRC_BOT_NICK,
                **self._irc_hint(),
            }
        return {
            "state": state,
            "pid": os.getpid(),
            "data_dir": str(self.data_dir),
            "first_start": self.first_start,
            "homeserver": {
                "url": self.synapse.url,
                "server_name": self.synapse.server_name,
                "host": HOST,
                "port": ports.synapse,
            },
            "matrix": {
                "user_id": self.demo.user_id,
                "username": self.demo.localpart,
                "password": self.demo.password,
                "bot": self.bridge.bot_mxid,
                "management_room": self.demo.management_room,
            },
            "irc": irc,
            "msn": self.msn.summary(),
            "bridge": {
                "appservice_url": self.bridge.appservice_url,
                "metrics_url": self.bridge.metrics_url,
                "config": str(self.bridge.config_path),
                "registration": str(self.bridge.registration_path),
                "log": str(self.bridge.service.log_path),
            },
            "auto_login": self.auto_login_answer,
            "services": services,
            "ports": ports.as_dict(),
            "checks": [asdict(c) for c in self.checks],
            "failed": self.failed,
        }

    def _irc_hint(self) -> dict[str, Any]:
        """What to type in an IRC client: a login with a demo account the Matrix demo user
        is not logged in as (two sessions of one account would sign each other out)."""
        if not self.bridge.irc_login_allowed():
            return {
                "login": None,
                "note": "bridge.permissions in "
                f"{self.bridge.config_path} gives IRC users relay rights only: "
                "add  'irc:*': user  to log in to MSN from IRC",
            }
        taken = {DEMO_ACCOUNTS[0][0], self.options.auto_login}  # --auto-login's default too
        account = next(
            (a for a in self.msn.accounts if a.passport not in taken), self.msn.accounts[-1]
        )
        command = f"/msg {IRC_BOT_NICK} login {account.passport} {account.password}"
        channel = self.bridge.contact_list_channel(account.passport)
        return {
            "login": command,
            "contact_list_channel": channel,
            "note": f"{command}   then join {channel}, the contact list the bot invites you to",
        }

    def write_summary(self, state: str) -> None:
        # Written whole then renamed: a script polling for the file never reads half of it.
        tmp = self.summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.summary(state), indent=2) + "\n")
        tmp.chmod(0o600)  # it holds the demo passwords
        tmp.replace(self.summary_path)
        self._summary_written = True


def describe(summary: dict[str, Any]) -> str:
    """The summary for a person."""
    hs, mx, msn, irc = summary["homeserver"], summary["matrix"], summary["msn"], summary["irc"]
    lines = [
        "",
        "msnbridge sandbox is running (Ctrl-C stops everything).",
        "",
        "Matrix",
        f"  homeserver URL   {hs['url']}   (server name: {hs['server_name']})",
        f"  demo login       {mx['username']} / {mx['password']}   ({mx['user_id']})",
        f"  bridge bot       {mx['bot']}: start a DM with it and send 'help'",
        "                   or 'login <passport> <password>' with an MSN account below",
    ]
    if summary["auto_login"]:
        lines.append(f"  auto-login       {summary['auto_login']}")
    lines += [
        "",
        "MSN (any MSN client or python -m puppets)",
        f"  server           {msn['server']}   (Nexus {msn['nexus_url']}, MSNP2-18;"
        f" MSNP13+ services {msn['services_url']})",
    ]
    lines += [f"  account          {a['passport']} / {a['password']}" for a in msn["accounts"]]
    lines.append("                   (each has the others as contacts, in group 'Friends')")
    lines.append(
        f"  e.g.  MSN_PASSWORD={msn['accounts'][0]['password']} .venv/bin/python -m puppets "
        f"--server {msn['server']} --nexus {msn['nexus_url']} "
        f"--services-url {msn['services_url']} "
        f"--passport {msn['accounts'][0]['passport']} info"
    )
    lines += ["", "IRC"]
    if irc["enabled"]:
        lines.append(f"  server           {irc['address']}   channel {irc['channel']}")
        if irc["login"]:
            lines.append(f"  log in           {irc['login']}")
            lines.append(
                f"                   then join {irc['contact_list_channel']}, the contact list "
                "the bot invites you to"
            )
        else:
            lines.append(f"  note             {irc['note']}")
    else:
        lines.append("  (not started: --no-irc)")
    lines += [
        "",
        f"Bridge: appservice {summary['bridge']['appservice_url']}, "
        f"metrics {summary['bridge']['metrics_url']}",
        f"Logs and state: {summary['data_dir']}   summary (JSON): "
        f"{Path(summary['data_dir']) / SUMMARY_NAME}",
        "",
    ]
    return "\n".join(lines)
