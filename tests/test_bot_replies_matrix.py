"""The bot's replies and notices as a Matrix user gets them: MSNP errors named by their
meaning, counts with the right number ("in 1 minute"). Real Synapse, the MSNP test server,
the bridge in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    running_bridge,
    send_text,
    wait_for_event,
)
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


async def test_removing_a_stranger_is_answered_with_216_not_on_the_list(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    bot = bot_id(synapse)
    for version in (9, 12):  # the server answers REM at MSNP9; MSNP12 knows no GUID
        config = bridge_config(**settings(msn, **{"msn.max_version": version}))
        async with running_bridge(config):
            management = await log_in(synapse, owner)
            await send_text(synapse, owner, management, "remove bob@nosuch.example")
            reply = await wait_for_event(
                synapse, owner, management, is_notice_from(bot, "Could not remove")
            )
            assert reply["content"]["body"] == (
                "Could not remove bob@nosuch.example: the MSN server answered error 216: "
                "user not on the list."
            )
            await send_text(synapse, owner, management, "logout")
            await wait_for_event(synapse, owner, management, is_notice_from(bot, "Logged out"))
