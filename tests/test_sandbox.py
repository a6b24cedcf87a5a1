"""The one-command sandbox (`python -m msnbridge.sandbox`) run as a real subprocess: a
`--check` start, a second start on the same data directory, a normal run stopped with
SIGINT (no process of the stack may remain; every listening socket on 127.0.0.1), the
printed IRC hint followed by an IRC client, a service dying under the sandbox, and the
clear error for a port already in use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import pytest

from msnbridge.sandbox.ircd import ircd_available
from msnbridge.sandbox.ports import Ports, port_free
from msnbridge.sandbox.synapse import synapse_available
from tests.ircd import RawClient, command_of, message_text

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 150

pytestmark = pytest.mark.timeout(240)

_unavailable = synapse_available() or ircd_available()
if _unavailable:
    pytest.skip(f"sandbox needs Synapse and ngIRCd: {_unavailable}", allow_module_level=True)


def free_ports() -> Ports:
    """Free ports below the kernel's ephemeral range (the MSN server needs four in a row)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    taken: set[int] = set()

    def pick(count: int) -> int:
        while True:
            base = rng.randrange(max(1024, low - 12000), low - count)
            block = set(range(base, base + count))
            if not block & taken and all(port_free(p) for p in block):
                taken.update(block)
                return base

    return Ports(synapse=pick(1), appservice=pick(1), metrics=pick(1), irc=pick(1), msn=pick(4))


def sandbox_argv(data_dir: Path, ports: Ports, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "msnbridge.sandbox", "--data-dir", str(data_dir),
        "--synapse-port", str(ports.synapse), "--appservice-port", str(ports.appservice),
        "--metrics-port", str(ports.metrics), "--irc-port", str(ports.irc),
        "--msn-port", str(ports.msn), *extra,
    ]  # fmt: skip


def run_check(data_dir: Path, ports: Ports, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sandbox_argv(data_dir, ports, "--check", *extra),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def summary(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "sandbox.json").read_text())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def first_run(data_dir: Path) -> Iterator[tuple[subprocess.CompletedProcess[str], dict[str, Any]]]:
    ports = free_ports()
    done = run_check(data_dir, ports, "--auto-login")
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    yield done, summary(data_dir)


def test_check_starts_everything_and_writes_the_summary(
    first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    done, data = first_run
    assert data["first_start"] is True
    assert data["state"] == "stopped"  # --check stops everything before exiting
    ports = data["ports"]
    hs = data["homeserver"]
    assert hs == {
        "url": f"http://127.0.0.1:{ports['synapse']}",
        "server_name": "localhost",
        "host": "127.0.0.1",
        "port": ports["synapse"],
    }
    assert data["matrix"]["user_id"] == "@demo:localhost"
    assert data["matrix"]["username"] == "demo" and len(data["matrix"]["password"]) >= 8
    assert data["matrix"]["bot"] == "@msnbot:localhost"
    assert data["irc"]["address"] == f"127.0.0.1:{ports['irc']}"
    assert data["irc"]["channel"].startswith("#")
    msn = data["msn"]
    assert msn["server"] == f"127.0.0.1:{ports['msn']}"
    assert [a["passport"] for a in msn["accounts"]] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert all(a["password"] for a in msn["accounts"])
    assert data["bridge"]["appservice_url"] == f"http://127.0.0.1:{ports['appservice']}"
    # The demo user was logged in to MSN through the bridge bot.
    assert data["auto_login"].startswith("Logged in to MSN as alice@example.com")
    # Every service answered; every address is loopback.
    checks = {c["name"]: c for c in data["checks"]}
    for name in ("synapse", "matrix_login", "irc", "msn", "appservice"):
        assert checks[name]["ok"], checks[name]
    assert "metrics" in checks
    assert {s["name"] for s in data["services"]} == {"MSN server", "ngIRCd", "Synapse", "bridge"}
    assert all(s["host"] == "127.0.0.1" for s in data["services"])
    # What a person needs is printed, too.
    assert data["matrix"]["password"] in done.stdout
    assert msn["accounts"][1]["password"] in done.stdout
    assert hs["url"] in done.stdout and data["irc"]["address"] in done.stdout
    assert "[FAIL]" not in done.stdout


def test_second_start_reuses_the_data_directory(
    data_dir: Path, first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    _, before = first_run
    token_before = (data_dir / "bridge" / "registration.yaml").read_text()
    signing_key = (data_dir / "synapse" / "localhost.signing.key").read_text()
    done = run_check(data_dir, free_ports(), "--auto-login")  # other ports: still the same state
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    after = summary(data_dir)
    assert after["first_start"] is False
    assert after["matrix"]["password"] == before["matrix"]["password"]
    assert after["msn"]["accounts"] == before["msn"]["accounts"]
    assert (data_dir / "synapse" / "localhost.signing.key").read_text() == signing_key
    registration = (data_dir / "bridge" / "registration.yaml").read_text()
    as_token = next(ln for ln in token_before.splitlines() if ln.startswith("as_token"))
    assert as_token in registration  # the tokens Synapse knows were kept
    assert f":{after['ports']['appservice']}" in registration  # the URL follows the new port
    # The bridge restored the MSN session it stored, so the bot says so.
    assert "alice@example.com" in after["auto_login"]
    assert all(c["ok"] for c in after["checks"] if c["required"])


# --- processes and sockets --------------------------------------------------------------


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening_sockets(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket the processes hold."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            address_hex, port_hex = local.split(":")
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address_hex)[::-1])
            else:
                raw = bytes.fromhex(address_hex)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                address = socket.inet_ntop(socket.AF_INET6, raw)
            found.append((address, int(port_hex, 16), inodes[inode]))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_running(proc: subprocess.Popen[str], data_dir: Path, output: Path) -> dict[str, Any]:
    """The summary once the sandbox started as `proc` says it is running."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        assert proc.poll() is None, output.read_text()
        try:
            data = summary(data_dir)
            if data["state"] == "running" and data["pid"] == proc.pid:
                return data
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "the sandbox did not come up"
        time.sleep(0.2)


def wait_printed(proc: subprocess.Popen[str], output: Path, pattern: str) -> str:
    """The sandbox's output once it holds ``pattern``: the summary says "running" a moment
    before the sandbox prints what it started."""
    deadline = time.monotonic() + 30
    while not re.search(pattern, printed := output.read_text()):
        assert proc.poll() is None, printed
        assert time.monotonic() < deadline, f"{pattern!r} never printed:\n{printed}"
        time.sleep(0.1)
    return printed


def start_sandbox(data_dir: Path, ports: Ports, out: TextIO, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        sandbox_argv(data_dir, ports, *extra),
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_sandbox(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sigint_stops_every_process_and_everything_listens_on_loopback(
    data_dir: Path, first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    ports = free_ports()
    proc = subprocess.Popen(
        sandbox_argv(data_dir, ports),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                data = summary(data_dir)
                if data["state"] == "running" and data["pid"] == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            assert time.monotonic() < deadline, "the sandbox did not come up"
            time.sleep(0.2)
        stack = descendants(proc.pid)
        service_pids = {s["pid"] for s in data["services"]}
        assert service_pids <= stack
        sockets = listening_sockets(stack)
        assert sockets, "no listening sockets found for the stack"
        assert {addr for addr, _, _ in sockets} == {"127.0.0.1"}, sockets
        listed = {ports.synapse, ports.appservice, ports.metrics, ports.irc}
        listed |= {ports.msn, ports.msn_ns, ports.msn_sb, ports.msn_http}
        assert {port for _, port, _ in sockets} >= listed - {ports.metrics}

        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "Sandbox stopped." in output
    survivors = [pid for pid in stack if alive(pid)]
    assert not survivors, f"left running: {survivors}"
    assert summary(data_dir)["state"] == "stopped"
    for port in listed:
        assert port_free(port), f"port {port} still taken"


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    ports = free_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.irc))
        taken.listen()
        done = run_check(tmp_path / "data", ports)
    assert done.returncode == 2
    assert f"127.0.0.1:{ports.irc} is already in use" in done.stderr
    assert "--irc-port" in done.stderr
    assert not (tmp_path / "data" / "synapse").exists()  # nothing was started


# --- the printed IRC hint ---------------------------------------------------------------


async def follow_irc_hint(host: str, port: int, printed: str) -> list[str]:
    """Types the printed `/msg <bot> <text>` the way an IRC client sends it; returns what the
    bot answered, up to the invitation to the contact list channel."""
    match = re.search(r"^\s*log in\s+/msg (\S+) (.+)$", printed, re.MULTILINE)
    assert match, f"no IRC login hint printed:\n{printed}"
    bot, text = match.group(1), match.group(2).strip()
    channel = re.search(r"then join (#[^\s,]+)", printed)
    assert channel, printed
    client = await RawClient.connect(SimpleNamespace(host=host, port=port), "sandboxuser")

    def answer(line: str) -> bool:  # the bot's answer after "Logging in to MSN as …"
        return (
            line.startswith(f":{bot}!")
            and command_of(line) == "NOTICE"
            and not message_text(line).startswith("Logging in")
        )

    def invite(line: str) -> bool:
        return command_of(line) == "INVITE" and line.endswith(channel.group(1))

    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # "Running" means the services are up; the bridge's bot may still be connecting
        # (a person would see it in the channel first): wait until the server knows it.
        while True:
            client.send(f"ISON {bot}")
            ison = await client.expect(lambda line: command_of(line) == "303", 10)
            if bot.lower() in message_text(ison).lower().split():
                break
            if loop.time() > deadline:
                raise AssertionError(f"{bot} never came on the IRC server")
            await asyncio.sleep(1)
        client.send(f"PRIVMSG {bot} :{text}")
        # The invitation may come before or after the answer.
        while not (any(map(answer, client.lines)) and any(map(invite, client.lines))):
            if loop.time() > deadline:
                raise AssertionError(f"no answer and invitation; got {client.lines}")
            with contextlib.suppress(TimeoutError):
                await client.readline(1)
        await client.join(channel.group(1))
        return [next(filter(answer, client.lines)), next(filter(invite, client.lines))]
    finally:
        await client.close()


def test_the_printed_irc_hint_logs_in_as_printed(
    data_dir: Path, first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    ports = free_ports()
    output = data_dir / "hint-run.out"
    with open(output, "w") as out:
        proc = start_sandbox(data_dir, ports, out)
    try:
        data = wait_running(proc, data_dir, output)
        printed = wait_printed(proc, output, r"then join #")
        answer, invite = asyncio.run(follow_irc_hint("127.0.0.1", ports.irc, printed))
    finally:
        stop_sandbox(proc)
    login = data["irc"]["login"]
    passport = login.split()[3]
    # Not the account the demo Matrix user logs in as (they would sign each other out).
    assert passport != "alice@example.com"
    assert f"Logged in to MSN as {passport}" in message_text(answer), answer
    assert data["irc"]["contact_list_channel"] in invite


# --- a service dying under the sandbox --------------------------------------------------


def test_a_dying_service_stops_the_sandbox_and_is_named(
    data_dir: Path, first_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    ports = free_ports()
    output = data_dir / "kill-run.out"
    with open(output, "w") as out:
        proc = start_sandbox(data_dir, ports, out)
    try:
        data = wait_running(proc, data_dir, output)
        services = {s["name"]: s for s in data["services"]}
        others = [s["pid"] for name, s in services.items() if name != "bridge"]
        os.kill(services["bridge"]["pid"], signal.SIGKILL)
        proc.wait(60)
    finally:
        stop_sandbox(proc)
    printed = output.read_text()
    assert proc.returncode not in (0, None), printed
    assert "bridge killed by SIGKILL" in printed
    assert services["bridge"]["log"] in printed
    after = summary(data_dir)
    assert after["state"] == "failed"
    assert after["failed"] == {
        "service": "bridge",
        "status": "killed by SIGKILL",
        "log": services["bridge"]["log"],
    }
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in others) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in others if alive(pid)], "services left running"
