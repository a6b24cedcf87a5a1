"""No task ends with an unretrieved exception: a switchboard invitation (RNG) to a closed
port is handled (logged once, counted) and the session goes on. The autouse fixture in
conftest.py fails any test during which asyncio reports "exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from puppets.event.conversation import MessageReceived
from tests.msn_fixtures import alice_and_bob
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with alice_and_bob((2, 12), ("pa", "pb")) as server:
        yield server


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nobody listens


async def test_the_never_retrieved_check_catches_a_failed_task(
    no_unretrieved_task_exceptions: list[dict[str, Any]],
) -> None:
    async def fail() -> None:
        raise RuntimeError("nobody reads me")

    task = asyncio.get_running_loop().create_task(fail())
    await asyncio.sleep(0.01)
    assert task.done()
    del task
    gc.collect()
    caught = list(no_unretrieved_task_exceptions)
    no_unretrieved_task_exceptions.clear()  # seen on purpose: this test must not fail
    assert any("never retrieved" in c["message"] for c in caught), caught


@pytest.mark.parametrize("version", [7, 12])
async def test_invitation_to_a_closed_port_is_handled_logged_once_and_counted(
    msn: MSNPTestServer, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    caplog.set_level(logging.INFO, logger="puppets")
    alice, events = await online_client(msn, ALICE, "pa", max_version=version)
    bob, _ = await online_client(msn, BOB, "pb", max_version=version)
    try:
        port = closed_port()
        for _ in range(3):
            msn.send_invitation(ALICE, "127.0.0.1", port, BOB, "Bob")
        async with asyncio.timeout(10):
            while alice.stats.invitations_failed < 3:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert alice.stats.invitations_failed == 3
        lines = [r for r in caplog.records if "could not answer an invitation" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert not [r for r in caplog.records if r.exc_info]
        # The session is fine: a real invitation after the bad ones is answered.
        assert (await bob.conversation([ALICE]).send_text("still there?")).ok
        got = await events.wait_for(MessageReceived)
        assert got.message.text == "still there?"
    finally:
        await bob.stop()
        await alice.stop()
