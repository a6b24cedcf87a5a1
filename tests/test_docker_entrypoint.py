"""The Docker image's commands without Docker: docker/entrypoint.sh itself run through its
three stages (example config, registration, the bridge) with DATA_DIR and the msnbridge
command pointed at a temporary directory and this virtualenv; and the Dockerfile checked
against the repository (same install command as scripts/test.sh, the paths it copies)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from msnbridge.config import GENERATE, Config, load_config
from tests.synapse_server import SynapseServer

REPO = Path(__file__).resolve().parent.parent
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
DOCKERFILE = REPO / "Dockerfile"
EXAMPLE = REPO / "bridge.yaml.example"
MSNBRIDGE = REPO / ".venv" / "bin" / "msnbridge"

pytestmark = pytest.mark.skipif(
    not MSNBRIDGE.exists(), reason=f"{MSNBRIDGE} missing: run scripts/test.sh to install"
)


def entrypoint(data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATA_DIR=str(data_dir), MSNBRIDGE=str(MSNBRIDGE))
    env["EXAMPLE_CONFIG"] = str(EXAMPLE)
    return subprocess.run(
        ["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=timeout
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_first_start_writes_the_example_config_and_exits(tmp_path: Path) -> None:
    done = entrypoint(tmp_path)
    assert done.returncode == 0, done.stderr
    config = tmp_path / "config.yaml"
    assert config.exists() and not (tmp_path / "registration.yaml").exists()
    assert config.stat().st_mode & 0o777 == 0o600  # it will hold the tokens
    assert "Edit it" in done.stdout and "homeserver.address" in done.stdout
    # The example, with exactly the two container defaults changed.
    written, example = config.read_text().splitlines(), EXAMPLE.read_text().splitlines()
    changed = [(a, b) for a, b in zip(example, written, strict=True) if a != b]
    assert changed == [
        ("    hostname: 127.0.0.1", "    hostname: 0.0.0.0"),
        ("database: sqlite:msnbridge.db", f"database: sqlite:{tmp_path}/msnbridge.db"),
    ]
    loaded = load_config(str(config), allow_generate=True)
    assert loaded["appservice.hostname"] == "0.0.0.0"


def test_second_start_generates_the_registration(tmp_path: Path) -> None:
    assert entrypoint(tmp_path).returncode == 0
    done = entrypoint(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "app_service_config_files" in done.stdout
    config = load_config(str(tmp_path / "config.yaml"))  # no "generate" left: it would raise
    registration = YAML(typ="safe").load((tmp_path / "registration.yaml").read_text())
    assert registration["as_token"] == config["appservice.as_token"] != GENERATE
    assert registration["hs_token"] == config["appservice.hs_token"]
    assert registration["url"] == config["appservice.address"]
    assert not (tmp_path / "msnbridge.db").exists()  # the bridge did not run yet


def test_third_start_runs_the_bridge_in_the_data_dir(tmp_path: Path) -> None:
    """With the homeserver down the bridge refuses to start (status 2, a clear message), but
    only after opening its database in the volume: the run stage execs the real bridge."""
    entrypoint(tmp_path)
    entrypoint(tmp_path)
    config = Config(str(tmp_path / "config.yaml"))
    config.load()
    config["homeserver.address"] = f"http://127.0.0.1:{closed_port()}"
    config["appservice.hostname"] = "127.0.0.1"
    config["appservice.port"] = closed_port()
    config.save()
    done = entrypoint(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "cannot reach the homeserver" in done.stderr
    assert (tmp_path / "msnbridge.db").exists()  # migrations/ found, database in /data


def test_third_start_serves_a_real_synapse(tmp_path: Path, synapse: SynapseServer) -> None:
    """The run stage against a real Synapse: ready, then stopped by SIGTERM (as `docker
    stop` does) with status 0."""
    entrypoint(tmp_path)
    entrypoint(tmp_path)
    slot = synapse.appservice  # the registration this Synapse was started with
    config = Config(str(tmp_path / "config.yaml"))
    config.load()
    for key, value in {
        "homeserver.address": synapse.url,
        "homeserver.domain": synapse.domain,
        "appservice.address": slot.url,
        "appservice.hostname": "127.0.0.1",
        "appservice.port": slot.port,
        "appservice.id": slot.id,
        "appservice.bot_username": slot.bot_localpart,
        "appservice.as_token": slot.as_token,
        "appservice.hs_token": slot.hs_token,
    }.items():
        config[key] = value
    config.save()
    env = dict(os.environ, DATA_DIR=str(tmp_path), MSNBRIDGE=str(MSNBRIDGE))
    env["EXAMPLE_CONFIG"] = str(EXAMPLE)
    proc = subprocess.Popen(
        ["bash", str(ENTRYPOINT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                with urllib.request.urlopen(f"{slot.url}/_matrix/mau/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "the bridge did not become ready"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # reaches msnbridge itself: the script exec'd it
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "msnbridge stopped" in output


# --- the Dockerfile against the repository ----------------------------------------------


def _dockerfile_lines() -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def pip_install(command: str) -> tuple[list[str], str, set[str]]:
    """(options, target, extras) of the first `pip install` in a shell command line."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word.endswith("pip") and words[i + 1 : i + 2] == ["install"]:
            args = []
            for arg in words[i + 2 :]:
                if arg in ("&&", ";", "||"):
                    break
                args.append(arg)
            options = [a for a in args if a.startswith("-")]
            (spec,) = [a for a in args if not a.startswith("-")]
            match = re.fullmatch(r"([^\[]+)(?:\[([^\]]*)\])?", spec)
            assert match, spec
            extras = set(filter(None, (match.group(2) or "").split(",")))
            return options, match.group(1), extras
    raise AssertionError(f"no pip install in {command!r}")


def test_dockerfile_installs_like_the_scripts() -> None:
    run = [ln for ln in _dockerfile_lines() if ln.startswith("RUN") and "pip install" in ln]
    assert len(run) == 1, run
    docker = pip_install(run[0])
    script = next(
        ln
        for ln in (REPO / "scripts" / "test.sh").read_text().splitlines()
        if "pip install -q -e" in ln
    )
    tests = pip_install(script)
    # The same command; the image leaves out only the test tools (the plain install has
    # every dependency of the bridge).
    assert docker[:2] == tests[:2] == (["-q", "-e"], ".")
    assert docker[2] == tests[2] - {"test"} == set()
    sandbox = (REPO / "scripts" / "sandbox.sh").read_text()
    assert script.strip() in sandbox  # the sandbox installs exactly as the tests do


def test_dockerfile_copies_what_the_entrypoint_and_the_bridge_read() -> None:
    lines = _dockerfile_lines()
    workdir = next(ln.split()[1] for ln in lines if ln.startswith("WORKDIR"))
    copied = " ".join(ln for ln in lines if ln.startswith("COPY"))
    for needed in ("pyproject.toml", "setup.py", "bridge.yaml.example", "puppets/", "msnbridge/"):
        assert needed in copied
    # msnbridge/db/upgrade.py reads migrations/ beside the package: an editable install of
    # the copied tree keeps that true (`-e` is checked above).
    assert "COPY migrations/ migrations/" in copied
    entry = next(ln for ln in lines if ln.startswith("ENTRYPOINT"))
    assert f'"{workdir}/docker/entrypoint.sh"' in entry
    assert "docker/entrypoint.sh docker/entrypoint.sh" in copied
    default_example = re.search(r"EXAMPLE_CONFIG:-([^}]+)\}", ENTRYPOINT.read_text())
    assert default_example and default_example.group(1) == f"{workdir}/bridge.yaml.example"
    assert "VOLUME /data" in lines and any(ln.startswith("USER ") for ln in lines)
    assert re.search(r"DATA_DIR=\$\{DATA_DIR:-/data\}", ENTRYPOINT.read_text())
