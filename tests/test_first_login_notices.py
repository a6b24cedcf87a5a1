"""What MSN says during a first login reaches the owner: the unread-mail count comes
while the login is still under way, before the bridge had stored the management room."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    running_bridge,
    wait_for_event,
)
from tests.test_matrix_portals import ALICE, PASSWORD, bot_id, log_in, settings


@pytest.fixture
async def mail_msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer(initial_mail=True) as server:
        server.add_account(ALICE, PASSWORD, nick="Alice")
        server.account(ALICE).inbox_unread = 3
        yield server


async def test_unread_mail_at_a_first_login_reaches_the_management_room(
    synapse: SynapseServer, bridge_config: Callable[..., Path], mail_msn: MSNPTestServer
) -> None:
    owner = await synapse.register_user()
    async with running_bridge(bridge_config(**settings(mail_msn))):
        room = await log_in(synapse, owner)
        notice = await wait_for_event(
            synapse, owner, room, is_notice_from(bot_id(synapse), "You have 3 unread emails")
        )
        assert notice["content"]["msgtype"] == "m.notice"
