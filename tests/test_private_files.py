"""Files holding secrets or users' data are the bridge's own (0600) whatever the umask, and
a token sent in the query string (``?access_token=``) never reaches the log."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer
from tests.test_config import EXAMPLE
from tests.test_faults_process import REPO, daemon, daemon_logging
from tests.test_matrix_portals import log_in, msn, settings  # noqa: F401 (fixture)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(*paths: Path) -> dict[str, str]:
    """Each file's permission bits in octal ("missing" when it does not exist)."""
    return {p.name: oct(mode(p)) if p.exists() else "missing" for p in paths}


def test_generated_registration_is_private_whatever_the_umask(tmp_path: Path) -> None:
    config, registration = tmp_path / "bridge.yaml", tmp_path / "registration.yaml"
    config.write_text(EXAMPLE.read_text())
    registration.write_text("old\n")
    registration.chmod(0o644)  # left by an older version: tightened when rewritten
    for path in (config, registration):
        path.chmod(0o666)
    result = subprocess.run(
        [sys.executable, "-m", "msnbridge", "-g", "-c", str(config), "-r", str(registration)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, umask=0,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hs_token" in registration.read_text()
    assert mode(registration) == 0o600
    assert mode(config) == 0o600


async def test_database_log_and_access_log_keep_secrets_private(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    database, log_file = tmp_path / "private.db", tmp_path / "bridge.log"
    config = bridge_config(
        **settings(msn), database=f"sqlite:{database}", logging=daemon_logging(log_file)
    )
    owner = await synapse.register_user()
    async with daemon(synapse, config, tmp_path, umask=0):
        await log_in(synapse, owner)  # the database holds a login and the log names it
        # The homeserver's token in the query string, as older homeservers send it.
        token = synapse.appservice.hs_token
        url = f"{synapse.appservice.url}/_matrix/app/v1/transactions/q1?access_token={token}"
        async with aiohttp.ClientSession() as session, session.put(url, json={"events": []}) as r:
            assert r.status == 200
        files = (database, Path(f"{database}-wal"), Path(f"{database}-shm"), log_file)
        assert set(modes(*files).values()) == {"0o600"}, modes(*files)
        await asyncio.sleep(0.3)  # the access log line is written after the response
        log = log_file.read_text()
    assert "/_matrix/app/v1/transactions/q1?access_token=<redacted>" in log
    assert token not in log
    assert synapse.appservice.as_token not in log
