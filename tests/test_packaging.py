"""Installing msnbridge: the wheel built from this checkout, installed without extras into a
fresh virtualenv, gives a working `msnbridge` command (its migrations included) and builds
without setuptools warnings about pyproject.toml; `puppets` imports nothing of the daemon;
scripts/sandbox.sh installs only when pyproject.toml changed."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the wheel is built from (the Dockerfile copies the same).
SOURCES = ("pyproject.toml", "README.md", "puppets", "msnbridge", "migrations")

# What puppets may import besides the standard library: what pyproject.toml declares for it.
# (cryptography: MSNP15+ SSO answers the nonce with HMAC-SHA1 and 3DES.)
PUPPETS_THIRD_PARTY = {"aiohttp", "cryptography"}

pytestmark = pytest.mark.timeout(900)


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A fresh venv with the wheel installed (no extras); yields (venv, build output)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(path, src / name)
    pip = [sys.executable, "-m", "pip"]
    built = run([*pip, "wheel", "--no-deps", "-w", str(tmp / "dist"), str(src)], tmp)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((tmp / "dist").glob("msnbridge-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp)
    assert made.returncode == 0, made.stderr
    done = run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], tmp, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    yield venv, built.stdout + built.stderr


def test_the_wheel_builds_without_warnings_about_pyproject(installed: tuple[Path, str]) -> None:
    _, output = installed
    assert "project.license" not in output, output
    assert "Warning" not in output, output


def test_the_plain_install_gives_a_working_msnbridge_command(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    venv, _ = installed
    helped = run([str(venv / "bin" / "msnbridge"), "--help"], tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "--generate-registration" in helped.stdout

    shutil.copy(REPO / "bridge.yaml.example", tmp_path / "bridge.yaml")
    generated = run(
        [str(venv / "bin" / "msnbridge"), "-g", "-c", "bridge.yaml", "-r", "registration.yaml"],
        tmp_path,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Wrote registration.yaml" in generated.stdout
    registration = (tmp_path / "registration.yaml").read_text()
    assert "as_token:" in registration and "generate" not in registration
    assert "as_token: generate" not in (tmp_path / "bridge.yaml").read_text()


def test_the_plain_install_imports_every_module_and_finds_its_migrations(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    venv, _ = installed
    script = (
        "import importlib, pkgutil, msnbridge, puppets\n"
        "for pkg in (msnbridge, puppets):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "from msnbridge.db.upgrade import MIGRATIONS_DIR, read_migrations\n"
        "print(MIGRATIONS_DIR, len(read_migrations()))\n"
    )
    done = run([str(venv / "bin" / "python"), "-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    directory, count = done.stdout.split()
    assert Path(directory).is_relative_to(venv)  # not this checkout's migrations/
    assert int(count) == len(list((REPO / "migrations").glob("[0-9][0-9][0-9]_*.sql")))


# --- puppets on its own -----------------------------------------------------------------


def imported_top_level(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_puppets_imports_only_the_standard_library_and_what_it_declares() -> None:
    third_party = imported_top_level(REPO / "puppets") - set(sys.stdlib_module_names)
    assert third_party - {"__future__"} == PUPPETS_THIRD_PARTY


def test_puppets_imports_with_the_daemon_and_its_dependencies_unavailable() -> None:
    # A finder that refuses msnbridge and the daemon's own dependencies, then every module
    # of puppets imported.
    script = (
        "import importlib, pkgutil, sys\n"
        "BLOCKED = {'msnbridge', 'mautrix', 'irc', 'aiosqlite', 'asyncpg', 'ruamel',\n"
        "           'prometheus_client', 'PIL', 'tests'}\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'puppets imported {name}')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import puppets\n"
        "for m in pkgutil.walk_packages(puppets.__path__, 'puppets.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# --- scripts/sandbox.sh installs only when something changed ----------------------------


def fake_checkout(root: Path, log: Path) -> dict[str, str]:
    """A copy of scripts/sandbox.sh and pyproject.toml beside a .venv whose pip and python
    only write down how they were called (and stand-ins for Synapse and ngIRCd)."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "sandbox.sh", root / "scripts" / "sandbox.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    recorder = f'#!/bin/sh\necho "$(basename "$0") $*" >> {log}\n'
    for path in (root / ".venv/bin/pip", root / ".venv/bin/python", root / "fakebin/ngircd"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(recorder)
        path.chmod(0o755)
    synapse = root / ".venv-synapse/bin/python"
    synapse.parent.mkdir(parents=True)
    synapse.write_text("#!/bin/sh\nexit 0\n")
    synapse.chmod(0o755)
    return {**os.environ, "PATH": f"{root / 'fakebin'}:{os.environ['PATH']}"}


def test_sandbox_sh_installs_only_when_pyproject_changed(tmp_path: Path) -> None:
    root, log = tmp_path / "checkout", tmp_path / "calls.log"
    env = fake_checkout(root, log)

    def start() -> list[str]:
        log.write_text("")
        done = subprocess.run(
            ["bash", "scripts/sandbox.sh", "--check"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        calls = log.read_text().splitlines()
        assert calls[-1] == "python -m msnbridge.sandbox --check"
        return [c for c in calls if c.startswith("pip install") and "-e" in c]

    assert start() == ["pip install -q -e .[test]"]
    assert start() == []  # nothing changed: no pip at all
    with open(root / "pyproject.toml", "a") as f:
        f.write("# changed\n")
    assert start() == ["pip install -q -e .[test]"]
    assert start() == []
