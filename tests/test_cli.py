"""``python -m puppets`` run as a real subprocess against the MSNP test server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
async def server():
    srv = MSNPTestServer(versions=(2, 12))
    await srv.start()
    srv.add_account("cli@example.com", "cli pw", nick="Cli User")
    srv.add_account("friend@example.com", "friend-pw", nick="Friend")
    srv.add_group("cli@example.com", "Pals")
    srv.add_contact("cli@example.com", "friend@example.com", groups=("Pals",))
    srv.add_contact("friend@example.com", "cli@example.com")
    yield srv
    await srv.stop()


async def start_cli(*args: str, password: str | None = "cli pw") -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MSN_PASSWORD", None)
    if password is not None:
        env["MSN_PASSWORD"] = password
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "puppets",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(
    *args: str, password: str | None = "cli pw", timeout: float = 30, stdin_lines: int = 0
) -> tuple[int, str, str]:
    proc = await start_cli(*args, password=password)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _common(server: MSNPTestServer, passport: str = "cli@example.com") -> list[str]:
    return [
        "--server",
        f"{server.host}:{server.dispatch_port}",
        "--nexus",
        server.nexus_url,
        "--passport",
        passport,
        "--timeout",
        "5",
    ]


@pytest.mark.parametrize("version", [5, 9, 12])
async def test_info_prints_version_and_contacts_as_json(server, version):
    friend, _ = await online_client(server, "friend@example.com", "friend-pw")
    try:
        code, out, err = await run_cli(*_common(server), "--max-version", str(version), "info")
    finally:
        await friend.stop()
    assert code == 0, err
    data = json.loads(out)
    assert data["protocol"] == version
    assert data["own_nick"] == "Cli User"
    (contact,) = data["contacts"]
    assert contact["passport"] == "friend@example.com"
    assert contact["status"] == "NLN"
    assert "FL" in contact["lists"]
    if version >= 7:
        assert contact["groups"] == ["Pals"]
    assert "cli pw" not in out + err


async def test_send_prints_the_delivery_result(server):
    friend, events = await online_client(server, "friend@example.com", "friend-pw")
    try:
        code, out, err = await run_cli(*_common(server), "send", "friend@example.com", "hi ñ")
        assert code == 0, err
        assert json.loads(out)["status"] == "ACKED"
        got = await events.wait_for(MessageReceived)
        assert got.message.text == "hi ñ" and got.sender == "cli@example.com"
    finally:
        await friend.stop()
    code, out, _ = await run_cli(*_common(server), "send", "friend@example.com", "anyone?")
    assert code == 3
    assert json.loads(out)["status"] == "OFFLINE"


async def test_listen_prints_events_as_json_lines(server):
    friend, _ = await online_client(server, "friend@example.com", "friend-pw")
    try:
        proc = await start_cli(*_common(server), "listen", "--for", "4")
        assert proc.stdout is not None
        printed: list[str] = []
        async with asyncio.timeout(30):  # until the listener says it is online
            while not any('"state": "online"' in line for line in printed):
                line = (await proc.stdout.readline()).decode()
                assert line, "listen ended before it was online"
                printed.append(line)
        result = await friend.conversation(["cli@example.com"]).send_text("ping")
        assert result.ok
    finally:
        await friend.stop()
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    events = [
        json.loads(line) for line in "".join(printed).splitlines() + out.decode().splitlines()
    ]
    kinds = {e["event"] for e in events}
    assert {"SessionStateChanged", "LoggedIn", "MessageReceived"} <= kinds
    msg = next(e for e in events if e["event"] == "MessageReceived")
    assert msg["sender"] == "friend@example.com" and msg["message"]["text"] == "ping"


async def test_refused_login_exits_4(server):
    code, _, err = await run_cli(*_common(server), "info", password="wrong")
    assert code == 4
    assert "refused" in err and "wrong" not in err.replace("wrong passport", "")


async def test_bad_address_exits_5_with_a_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = await run_cli(
        "--server", f"127.0.0.1:{port}", "--passport", "a@b.c", "--timeout", "2", "info"
    )
    assert code == 5
    assert f"127.0.0.1:{port}" in err


async def test_usage_errors():
    code, _, err = await run_cli("--server", "nonsense:port", "--passport", "a@b.c", "info")
    assert code == 2 and "host:port" in err
    code, _, err = await run_cli("--passport", "a@b.c", "info", password=None)
    assert code != 0 and "MSN_PASSWORD" in err
