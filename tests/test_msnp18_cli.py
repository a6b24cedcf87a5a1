"""``python -m puppets`` on MSNP13-18 as a real subprocess: info, send (an OIM to an
offline contact) and listen (offline messages waiting at login)."""

from __future__ import annotations

import json
import time

import pytest

from tests.msnp_server import MSNPTestServer
from tests.test_cli import run_cli

OWNER = "cli18@example.com"
FRIEND = "friend18@example.com"


@pytest.fixture(scope="module")
async def server():
    srv = MSNPTestServer(versions=(2, 18))
    await srv.start()
    srv.add_account(OWNER, "cli pw", nick="Cli")
    srv.add_account(FRIEND, "pw", nick="Friend")
    srv.add_contact(OWNER, FRIEND)
    srv.add_contact(FRIEND, OWNER)
    srv.add_contact(OWNER, "y@yahoo.example")
    srv.account(OWNER).contacts["y@yahoo.example"].network = 32
    yield srv
    await srv.stop()


def _args(server: MSNPTestServer, version: int) -> list[str]:
    return [
        "--server",
        f"{server.host}:{server.dispatch_port}",
        "--nexus",
        server.nexus_url,
        "--services-url",
        server.services_url,
        "--passport",
        OWNER,
        "--timeout",
        "10",
        "--min-version",
        str(version),
        "--max-version",
        str(version),
    ]


@pytest.mark.parametrize("version", [13, 15, 18])
async def test_info(server: MSNPTestServer, version: int) -> None:
    code, out, err = await run_cli(*_args(server, version), "info", timeout=60)
    assert code == 0, err
    data = json.loads(out)
    assert data["protocol"] == version
    contacts = {c["passport"]: c for c in data["contacts"]}
    assert set(contacts) == {FRIEND, "y@yahoo.example"}
    assert contacts["y@yahoo.example"]["network"] == 32
    assert ("machine_guid" in data) == (version >= 16)


@pytest.mark.parametrize("version", [13, 18])
async def test_send_to_offline_contact_prints_the_oim_result(
    server: MSNPTestServer, version: int
) -> None:
    code, out, err = await run_cli(
        *_args(server, version), "send", FRIEND, f"left for you {version}", timeout=60
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "SENT_AS_OIM"
    assert f"left for you {version}" in [o.text for o in server.oims(FRIEND)]


async def test_listen_prints_waiting_offline_messages(server: MSNPTestServer) -> None:
    server.add_oim(OWNER, FRIEND, "while you were away", time.time() - 600)
    code, out, err = await run_cli(*_args(server, 18), "listen", "--for", "3", timeout=60)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    oims = [e for e in events if e["event"] == "OfflineMessageReceived"]
    assert [(e["sender"], e["text"]) for e in oims] == [(FRIEND, "while you were away")]
    assert abs(oims[0]["sent_at"] - (time.time() - 600)) < 30


async def test_bad_machine_guid_is_a_usage_error(server: MSNPTestServer) -> None:
    code, _out, err = await run_cli(*_args(server, 18), "--machine-guid", "nope", "info")
    assert code == 2 and "machine GUID" in err
