"""Counts in the bot's notices take the right number ("in 1 minute"). Real Synapse, the
MSNP test server, the bridge in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, is_notice_from, running_bridge, wait_for_event
from tests.test_matrix_portals import (
    ALICE,
    bot_id,
    log_in,
    msn,  # noqa: F401  (fixture)
    settings,
)


async def test_one_minute_is_singular(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    async with running_bridge(bridge_config(**settings(msn))):
        management = await log_in(synapse, owner)
        msn.send_system_message(ALICE, 1)
        await wait_for_event(
            synapse, owner, management, is_notice_from(bot, "for maintenance in 1 minute;")
        )
