"""`--check`: does each service answer the way a client needs it to?"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from .http import HTTPError, get_status, request


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True


def check_synapse(url: str) -> CheckResult:
    try:
        versions = request("GET", f"{url}/_matrix/client/versions", timeout=5)["versions"]
    except (OSError, HTTPError, KeyError, ValueError) as e:
        return CheckResult("synapse", False, f"/_matrix/client/versions: {e}")
    return CheckResult("synapse", True, f"client API versions up to {versions[-1]}")


def check_matrix_login(url: str, localpart: str, password: str) -> CheckResult:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
    }
    try:
        reply = request("POST", f"{url}/_matrix/client/v3/login", body, timeout=10)
        request("POST", f"{url}/_matrix/client/v3/logout", {}, token=reply["access_token"])
    except (OSError, HTTPError, KeyError, ValueError) as e:
        return CheckResult("matrix_login", False, f"password login failed: {e}")
    return CheckResult("matrix_login", True, f"{reply['user_id']} logs in with its password")


def _recv_until(sock: socket.socket, wanted: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while wanted not in data and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def check_irc(host: str, port: int, bot: str | None = None) -> CheckResult:
    """Registers a client (NICK/USER), waits for the welcome numeric 001 and, given the
    bridge bot's nick, asks the server whether the bot is connected (ISON)."""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"NICK sbcheck\r\nUSER sbcheck 0 * :sandbox check\r\n")
            data = _recv_until(sock, b" 001 ", 10)
            ison = b""
            if bot and b" 001 " in data:
                # The bridge connects at start-up; give it a moment on a slow machine.
                for _ in range(20):
                    sock.sendall(f"ISON {bot}\r\n".encode())
                    ison = _recv_until(sock, b" 303 ", 5)
                    if bot.lower().encode() in ison.lower().split(b" 303 ", 1)[-1]:
                        break
                    time.sleep(0.5)
            sock.sendall(b"QUIT :check done\r\n")
    except OSError as e:
        return CheckResult("irc", False, f"{host}:{port}: {e}")
    if b" 001 " not in data:
        return CheckResult("irc", False, f"no welcome (001) from {host}:{port}: {data[-200:]!r}")
    if bot and bot.lower().encode() not in ison.lower().split(b" 303 ", 1)[-1]:
        return CheckResult("irc", False, f"the bridge's bot {bot} is not on {host}:{port}")
    found = f", the bridge's bot {bot} is connected" if bot else ""
    return CheckResult("irc", True, f"{host}:{port} registered a client{found}")


def check_msn(host: str, port: int) -> CheckResult:
    """The dispatch server must answer VER with the version it picked."""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"VER 1 MSNP12 MSNP8 CVR0\r\n")
            data = _recv_until(sock, b"\r\n", 10)
    except OSError as e:
        return CheckResult("msn", False, f"{host}:{port}: {e}")
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    if not line.startswith("VER 1 MSNP"):
        return CheckResult("msn", False, f"dispatch answered {line!r} to VER")
    return CheckResult("msn", True, f"dispatch answered {line!r}")


def check_appservice(url: str) -> CheckResult:
    try:
        status, _ = get_status(f"{url}/_matrix/mau/ready")
    except OSError as e:
        return CheckResult("appservice", False, f"{url}: {e}")
    return CheckResult("appservice", status == 200, f"{url}/_matrix/mau/ready: HTTP {status}")


def check_metrics(url: str) -> CheckResult:
    # Not required while msnbridge/bridge.py does not start the metrics listener
    # (msnbridge/metrics.py exists; wiring it is the bridge's job, not the sandbox's).
    try:
        status, body = get_status(url)
    except OSError as e:
        return CheckResult("metrics", False, f"{url}: not served ({e})", required=False)
    ok = status == 200 and "# TYPE" in body
    return CheckResult("metrics", ok, f"{url}: HTTP {status}", required=False)
