"""MSNP test servers that several test modules start the same way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.msnp_server import MSNPTestServer
from tests.test_matrix_portals import ALICE, BOB, PASSWORD


@contextlib.asynccontextmanager
async def alice_and_bob(
    versions: tuple[int, int] = (2, 18), passwords: tuple[str, str] = (PASSWORD, PASSWORD)
) -> AsyncIterator[MSNPTestServer]:
    """The MSNP test server (by default up to MSNP18: offline messages need MSNP13+, MPOP
    MSNP16+) with ALICE and BOB on each other's lists."""
    async with MSNPTestServer(versions=versions) as server:
        server.add_account(ALICE, passwords[0], nick="Alice")
        server.add_account(BOB, passwords[1], nick="Bob")
        server.add_contact(ALICE, BOB, ("FL", "AL"))
        server.add_contact(BOB, ALICE, ("FL", "AL"))
        yield server


@pytest.fixture(name="msn")
async def msn18_fixture() -> AsyncIterator[MSNPTestServer]:
    """`alice_and_bob` as the ``msn`` fixture (import ``msn18_fixture``)."""
    async with alice_and_bob() as server:
        yield server


@pytest.fixture(name="msn")
async def irc_msn18_fixture() -> AsyncIterator[MSNPTestServer]:
    """`alice_and_bob` with the passwords the IRC tests log in with ("pa" for the owner,
    ALICE, "pb" for BOB), as the ``msn`` fixture (import ``irc_msn18_fixture``)."""
    async with alice_and_bob(passwords=("pa", "pb")) as server:
        yield server
