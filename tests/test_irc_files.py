"""Files from MSN for a user bridged from IRC: the whole Bridge (a real Synapse serving
media without a login, ngIRCd, the MSNP test server). With `irc.files.public_media_url`
the file is uploaded and its link said in the conversation channel; without it, a notice
with the file's name and size."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    fresh_ircd_fixture,  # noqa: F401 (the ircd fixture)
)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client
from tests.synapse_server import SynapseServer, running_bridge, serving
from tests.test_irc_matrix_portals import (  # noqa: F401  (msn is a fixture)
    ALICE,
    BOB,
    PASSWORD,
    msn,
    overrides,
)

pytestmark = pytest.mark.timeout(120)


class PublicMediaSynapse(SynapseServer):
    """Synapse without authenticated media: /_matrix/media/v3/download needs no login."""

    def _overlay(self) -> dict[str, Any]:
        return {**super()._overlay(), "enable_authenticated_media": False}


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    with serving(PublicMediaSynapse(tmp_path_factory.mktemp("synapse-public-media"))) as server:
        yield server


async def test_a_file_from_msn_is_a_link_on_irc_or_a_notice_without_public_media(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
    ircd: IRCd,
    tmp_path: Path,
) -> None:
    settings = overrides(synapse, msn, ircd)
    public = f"{synapse.url}/_matrix/media/v3/download"
    settings["irc"]["files"] = {"public_media_url": public}
    data = os.urandom(150_000)
    src = tmp_path / "our trip.bin"
    src.write_bytes(data)
    bob, _ = await online_client(msn, BOB, PASSWORD)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(bob.stop)
        async with running_bridge(bridge_config(**settings)):
            alice = await RawClient.connect(ircd, "alice")
            stack.push_async_callback(alice.close)
            alice.send(f"PRIVMSG PortalBot :login {ALICE} {PASSWORD}")
            await alice.expect(lambda x: "Logged in to MSN" in x, 20)
            sent = bob.p2p.manager.send_file(ALICE, src)
            assert await sent.wait(timeout=60) == "completed"
            await alice.expect(
                lambda x: command_of(x) == "INVITE" and x.endswith("#msn-alice-bob"), 20
            )
            await alice.join("#msn-alice-bob")
            line = await alice.expect(lambda x: "sent a file" in x, 20)
            assert "our trip.bin (146.5 KiB)" in line
            found = re.search(r"(https?://\S+?)\x01?$", line)
            assert found is not None and found.group(1).startswith(public + "/")
            async with aiohttp.ClientSession() as session, session.get(found.group(1)) as resp:
                assert resp.status == 200  # no login
                assert await resp.read() == data

        # Without a public media address: declined, and a notice with name and size.
        del settings["irc"]["files"]
        fresh = f"sqlite:{tmp_path / 'second.db'}"
        async with running_bridge(bridge_config(database=fresh, **settings)):
            alice.send(f"PRIVMSG PortalBot :login {ALICE} {PASSWORD}")
            await alice.expect(lambda x: "Logged in to MSN" in x, 20)
            sent = bob.p2p.manager.send_file(ALICE, src)
            assert await sent.wait(timeout=60) == "declined"
            notice = await alice.expect(
                lambda x: command_of(x) == "NOTICE" and "our trip.bin" in x, 20
            )
            assert "146.5 KiB" in notice and "no public address" in notice
