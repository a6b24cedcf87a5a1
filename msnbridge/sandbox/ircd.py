"""ngIRCd for the sandbox: a generated configuration on a loopback port, run in the
foreground. No connection limits per address: the bridge connects once per bridged user."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .ports import HOST
from .process import Service

CHANNEL = "#msn"

NGIRCD_CONF = """\
[Global]
Name = irc.sandbox.local
Info = msnbridge sandbox
Listen = {host}
Ports = {port}
MotdPhrase = "msnbridge sandbox: try {channel}"
[Limits]
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 120
PongTimeout = 20
[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = {include}
"""


def ngircd_binary() -> str | None:
    return shutil.which("ngircd") or shutil.which("ngircd", path="/usr/sbin:/sbin")


def ircd_available() -> str | None:
    """None when ngIRCd can run, else why not."""
    if ngircd_binary() is None:
        return "ngircd not found; install it (apt-get install ngircd) or pass --no-irc"
    return None


class IRCd:
    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.channel = CHANNEL
        self.conf = workdir / "ngircd.conf"
        binary = ngircd_binary() or "ngircd"
        self.service = Service(
            "ngIRCd",
            [binary, "-n", "-f", str(self.conf)],
            cwd=workdir,
            log_path=workdir / "ngircd.log",
            host=HOST,
            port=port,
        )

    def prepare(self) -> None:
        include = self.workdir / "conf.d"
        include.mkdir(parents=True, exist_ok=True)
        # ngIRCd started as root drops to "nobody", which must still read its files.
        os.chmod(self.workdir, 0o755)
        os.chmod(include, 0o755)
        self.conf.write_text(
            NGIRCD_CONF.format(host=HOST, port=self.port, channel=self.channel, include=include)
        )
        self.conf.chmod(0o644)

    def start(self, timeout: float = 15.0) -> None:
        self.service.start()
        self.service.wait_ready(timeout)
