"""``python -m puppets`` file and picture options, run as real subprocesses against the
MSNP test server with an in-process puppet on the other side."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from puppets.event.contact import PresenceChanged
from puppets.event.transfer import FileOffered
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

ROOT = Path(__file__).resolve().parents[1]
CLI = "cli@example.com"
FRIEND = "friend@example.com"


@pytest.fixture(scope="module")
async def server():
    srv = MSNPTestServer(versions=(2, 12))
    await srv.start()
    srv.add_account(CLI, "cli pw")
    srv.add_account(FRIEND, "friend-pw")
    srv.add_contact(CLI, FRIEND)
    srv.add_contact(FRIEND, CLI)
    yield srv
    await srv.stop()


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _args(server: MSNPTestServer, *rest: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "puppets",
        "--server",
        f"{server.host}:{server.dispatch_port}",
        "--nexus",
        server.nexus_url,
        "--passport",
        CLI,
        "--timeout",
        "10",
        *rest,
    ]


async def _spawn(server: MSNPTestServer, *rest: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MSN_PASSWORD="cli pw")
    return await asyncio.create_subprocess_exec(
        *_args(server, *rest),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _line_with(proc: asyncio.subprocess.Process, event: str, timeout: float = 30) -> dict:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"the CLI ended before {event}: {err.decode()}")
            line = json.loads(raw)
            if line.get("event") == event and (
                event != "SessionStateChanged" or line["state"] == "online"
            ):
                return line


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode


async def test_listen_accept_files_prints_name_size_and_sha256(server, tmp_path):
    proc = await _spawn(server, "listen", "--accept-files", str(tmp_path / "in"))
    try:
        await _line_with(proc, "SessionStateChanged")
        friend, _ = await online_client(server, FRIEND, "friend-pw")
        data = os.urandom(300_000)
        src = tmp_path / "report.pdf"
        src.write_bytes(data)
        try:
            for _ in range(2):  # the second copy gets a new name, not an overwrite
                transfer = friend.p2p.manager.send_file(CLI, src)
                assert await transfer.wait(timeout=60) == "completed"
            first = await _line_with(proc, "FileReceived")
            second = await _line_with(proc, "FileReceived")
        finally:
            await friend.stop()
        for line in (first, second):
            assert (line["name"], line["size"], line["from"]) == ("report.pdf", len(data), FRIEND)
            assert line["sha256"] == hashlib.sha256(data).hexdigest()
            assert _read(line["path"]) == data
        assert first["path"] != second["path"]
    finally:
        assert await _stop(proc) == 0


@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_send_file_exit_status(server, tmp_path, answer):
    friend, events = await online_client(server, FRIEND, "friend-pw")
    data = os.urandom(200_000)
    src = tmp_path / "notes.txt"
    src.write_bytes(data)
    dest = tmp_path / "got.txt"
    try:
        proc = await _spawn(server, "send-file", FRIEND, str(src))
        offer = await events.wait_for(FileOffered, timeout=30)
        if answer == "accept":
            offer.transfer.accept(dest)
        else:
            offer.transfer.decline()
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        result = json.loads(out)
        if answer == "accept":
            assert proc.returncode == 0, err
            assert result["status"] == "completed" and dest.read_bytes() == data
        else:
            assert proc.returncode == 3, err
            assert result["status"] == "declined"
    finally:
        await friend.stop()


async def test_display_picture_and_save_pictures(server, tmp_path):
    picture = os.urandom(12_000)
    mine = tmp_path / "me.png"
    mine.write_bytes(picture)
    friend, events = await online_client(server, FRIEND, "friend-pw")
    friend_pic = os.urandom(9_000)
    await friend.set_display_picture(friend_pic)
    proc = await _spawn(
        server,
        "--display-picture",
        str(mine),
        "listen",
        "--save-pictures",
        str(tmp_path / "pics"),
    )
    try:
        saved = await _line_with(proc, "PictureSaved")
        assert saved["passport"] == FRIEND
        assert _read(saved["path"]) == friend_pic
        seen = await events.wait_for(
            PresenceChanged, lambda e: e.passport == CLI and e.msnobject is not None, timeout=30
        )
        got = await friend.p2p.manager.fetch_object(CLI, seen.msnobject, timeout=20)
        assert got == picture and seen.msnobject.matches(got)
    finally:
        await friend.stop()
        assert await _stop(proc) == 0


async def test_send_file_of_a_missing_path_is_a_usage_error(server, tmp_path):
    proc = await _spawn(server, "send-file", FRIEND, str(tmp_path / "nope.bin"))
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"not a readable file" in err
