"""Shared pytest configuration. Fixtures for real servers live in the modules they serve."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

# The real Synapse (session-wide) and the bridge wired to it; see tests/synapse_server.py.
from tests.synapse_server import bridge, bridge_config, synapse  # noqa: F401

# asyncio reports a task or future that failed with nobody reading its exception only when
# it is garbage-collected, through the loop's exception handler ("... exception was never
# retrieved"). Every test fails if one of those turns up while it runs.
_UNRETRIEVED = "exception was never retrieved"
_unretrieved: list[dict[str, Any]] = []


def _handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if _UNRETRIEVED in str(context.get("message", "")):
        _unretrieved.append(context)
    loop.default_exception_handler(context)


def describe_unretrieved(contexts: list[dict[str, Any]]) -> str:
    parts = []
    for context in contexts:
        what = context.get("task") or context.get("future")
        parts.append(f"{context.get('message')}: {what!r}: {context.get('exception')!r}")
    return "\n".join(parts)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The full collections below run twice a test; what exists once the tests are
    collected (modules, classes, test items: no test has run, no task exists yet) is moved
    out of the collector's reach so that they look only at what tests made. Without it
    they took most of the time of quick tests (seconds in a file of a hundred)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
async def no_unretrieved_task_exceptions() -> AsyncIterator[list[dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    if loop.get_exception_handler() is not _handler:
        loop.set_exception_handler(_handler)
    gc.collect()  # what earlier tests left behind is theirs, not this test's
    _unretrieved.clear()
    yield _unretrieved
    await asyncio.sleep(0)  # let done-callbacks of tasks that just finished run
    gc.collect()
    found, _unretrieved[:] = list(_unretrieved), []
    if found:
        pytest.fail(
            "asyncio: an exception was never retrieved:\n" + describe_unretrieved(found),
            pytrace=False,
        )
