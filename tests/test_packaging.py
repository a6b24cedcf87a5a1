"""Installing msnbridge: the wheel built from this checkout, installed without extras into a
fresh virtualenv, gives a working `msnbridge` command (its migrations included) and builds
without setuptools warnings about pyproject.toml; it carries puppets' C parser when a
compiler is there and builds without it when none is; `puppets` imports nothing of the
daemon; scripts/sandbox.sh installs only when pyproject.toml, setup.py or the C parser changed."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the wheel is built from (the Dockerfile copies the same).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "puppets", "msnbridge", "migrations")

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
            # Not a C parser built in this checkout: the wheel must build its own.
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
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
    yield venv, built.stdout + built.stderr, src


@pytest.fixture(scope="module")
def venv(installed: tuple[Path, str, Path]) -> Path:
    return installed[0]


def test_the_wheel_builds_without_warnings_about_pyproject(
    installed: tuple[Path, str, Path],
) -> None:
    _, output, _ = installed
    assert "project.license" not in output, output
    assert "Warning" not in output, output


def test_the_plain_install_gives_a_working_msnbridge_command(venv: Path, tmp_path: Path) -> None:
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
    venv: Path, tmp_path: Path
) -> None:
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


# --- puppets' optional C parser (setup.py, puppets/_codec.c) ------------------------------

PARSES = (
    "from puppets import command\n"
    "print(command.ACCELERATED, command.CommandReader().feed(b'MSG a b 2\\r\\nhiQNG 5\\r\\n'))\n"
)
PARSED = "[Command(name='MSG', trid=None, args=['a', 'b'], payload=b'hi'), " + (
    "Command(name='QNG', trid=None, args=['5'], payload=None)]"
)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on this machine")
def test_the_wheel_carries_the_c_parser_when_a_compiler_is_there(
    installed: tuple[Path, str, Path], tmp_path: Path
) -> None:
    venv, _, src = installed
    done = run([str(venv / "bin" / "python"), "-c", PARSES], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"True {PARSED}"
    # The compiled module, not its C source, is what the wheel holds.
    [wheel] = (src.parent / "dist").glob("msnbridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("puppets/_codec.")] == [
        next(n for n in names if n.startswith("puppets/_codec.") and n.endswith(".so"))
    ]


def test_without_a_compiler_the_wheel_builds_and_parses_in_python(
    installed: tuple[Path, str, Path], tmp_path: Path
) -> None:
    venv, _, built_once = installed
    # The sources again, without what the first build left in them (build/, egg-info).
    src = tmp_path / "src"
    shutil.copytree(built_once, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # CC that always fails stands for a machine without a compiler (python:3.11-slim).
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "d"), str(src)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
            "CC": "false",
        },
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "d").glob("msnbridge-*.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]
    target = tmp_path / "site"
    done = run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-t", str(target), str(wheel)],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # That wheel's puppets first on the path, the venv's dependencies after it.
    parsed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PARSES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert parsed.returncode == 0, parsed.stderr
    assert parsed.stdout.strip() == f"False {PARSED}"


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


def test_sandbox_sh_installs_only_when_what_it_installs_changed(tmp_path: Path) -> None:
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
    # The C parser is compiled by the install: a changed source is installed again.
    (root / "puppets").mkdir()
    (root / "puppets" / "_codec.c").write_text("/* changed */\n")
    assert start() == ["pip install -q -e .[test]"]
    assert start() == []
