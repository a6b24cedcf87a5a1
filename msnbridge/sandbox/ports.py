"""The sandbox's fixed loopback ports (so a Matrix or MSN client can be pointed at them) and
the check that none is taken before anything starts."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass

HOST = "127.0.0.1"  # every service listens here only


class PortInUse(Exception):
    """A port the sandbox needs is taken; the message names it and the flag to change it."""


@dataclass(frozen=True)
class Ports:
    synapse: int = 8008
    appservice: int = 29390
    metrics: int = 29391
    # 6667 is taken by the system ngIRCd that `apt-get install ngircd` starts.
    irc: int = 16667
    # MSN clients assume 1863; the notification, switchboard and HTTP (Nexus/login) servers
    # take the next three ports.
    msn: int = 1863

    @property
    def msn_ns(self) -> int:
        return self.msn + 1

    @property
    def msn_sb(self) -> int:
        return self.msn + 2

    @property
    def msn_http(self) -> int:
        return self.msn + 3

    def named(self, *, irc: bool = True) -> dict[str, tuple[int, str]]:
        """Every port with the flag that sets it."""
        ports = {
            "Synapse": (self.synapse, "--synapse-port"),
            "bridge appservice": (self.appservice, "--appservice-port"),
            "bridge metrics": (self.metrics, "--metrics-port"),
            "MSN dispatch": (self.msn, "--msn-port"),
            "MSN notification": (self.msn_ns, "--msn-port (uses it +1)"),
            "MSN switchboard": (self.msn_sb, "--msn-port (uses it +2)"),
            "MSN Nexus/login HTTP": (self.msn_http, "--msn-port (uses it +3)"),
        }
        if irc:
            ports["IRC"] = (self.irc, "--irc-port")
        return ports

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def port_free(port: int, host: str = HOST) -> bool:
    # SO_REUSEADDR as the servers use it: a listener (also one on 0.0.0.0) makes bind fail,
    # connections lingering in TIME_WAIT from a previous run do not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: Ports, *, irc: bool = True) -> None:
    seen: dict[int, str] = {}
    for name, (port, flag) in ports.named(irc=irc).items():
        if not 1024 <= port <= 65535:
            raise PortInUse(f"{name}: port {port} is outside 1024-65535; change it with {flag}")
        if port in seen:
            raise PortInUse(f"{name} and {seen[port]} both use port {port}; change {flag}")
        seen[port] = name
        if not port_free(port):
            raise PortInUse(
                f"{name}: port {HOST}:{port} is already in use (another sandbox, or a "
                f"server of that kind, is running?). Stop it or choose another port with {flag}."
            )
