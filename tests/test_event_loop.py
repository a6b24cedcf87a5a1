"""The daemon's event loop choice (msnbridge/event_loop.py): uvloop when installed, asyncio's
loop otherwise or when MSNBRIDGE_EVENT_LOOP=asyncio, a clear error when uvloop is asked for
and missing."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import types

import pytest

from msnbridge import event_loop
from msnbridge.errors import StartupError


async def _which() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError


def test_without_uvloop_the_default_loop_runs(
    no_uvloop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MSNBRIDGE_EVENT_LOOP", raising=False)
    assert event_loop.chosen() == "asyncio"
    assert event_loop.run(_which()).startswith("asyncio")


def test_asking_for_missing_uvloop_is_a_startup_error(
    no_uvloop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSNBRIDGE_EVENT_LOOP", "uvloop")
    with pytest.raises(StartupError, match=r"msnbridge\[uvloop\]"):
        event_loop.run(_which())
    monkeypatch.setenv("MSNBRIDGE_EVENT_LOOP", "libuv")
    with pytest.raises(StartupError, match="auto, asyncio, uvloop"):
        event_loop.chosen()


def test_installed_uvloop_is_used_unless_asyncio_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []

    def fake_run(main):  # type: ignore[no-untyped-def]
        ran.append("uvloop")
        return asyncio.run(main)

    monkeypatch.setitem(sys.modules, "uvloop", types.SimpleNamespace(run=fake_run))
    monkeypatch.delenv("MSNBRIDGE_EVENT_LOOP", raising=False)
    assert event_loop.run(_which()).startswith("asyncio") and ran == ["uvloop"]
    monkeypatch.setenv("MSNBRIDGE_EVENT_LOOP", "asyncio")
    event_loop.run(_which())
    assert ran == ["uvloop"]


@pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None,
    reason="uvloop is not installed here (the optional 'uvloop' extra)",
)
def test_real_uvloop_runs_the_coroutine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSNBRIDGE_EVENT_LOOP", "uvloop")
    assert event_loop.run(_which()).startswith("uvloop")
