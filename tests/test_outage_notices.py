"""An owner whose MSN session is reconnecting is told: once when it has been down longer
than msn.outage_notice_after, once when it is back; `status` shows the next try. Real
Synapse (and ngIRCd for an IRC owner), the MSNP test server stopped and started again,
the bridge in-process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from puppets import SessionState
from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    fresh_ircd_fixture,  # noqa: F401 (the ircd fixture)
)
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    room_events,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    bot_id,
    log_in,
    msn,  # noqa: F401  (fixture)
    settings,
    until,
)

DOWN = "Your MSN connection is down"
BACK = "Your MSN connection is back"


async def test_owner_is_told_once_when_down_long_and_once_when_back(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    config = bridge_config(**settings(msn, **{"msn.outage_notice_after": 3}))
    bot = bot_id(synapse)
    async with running_bridge(config) as bridge:
        management = await log_in(synapse, owner)
        assert bridge.sessions is not None
        client = bridge.sessions.get(owner.user_id)
        assert client is not None

        await msn.stop()
        await until(lambda: client.state is SessionState.BACKING_OFF)
        # Down, but not yet for long: status tells the next try; no notice yet.
        await send_text(synapse, owner, management, "status")
        status = await wait_for_event(
            synapse, owner, management, is_notice_from(bot, "Down since"), 10
        )
        body = status["content"]["body"]
        assert re.search(r"Next try at \d\d:\d\d:\d\d UTC \(in \d+ seconds?\)", body), body
        events = await room_events(synapse, owner, management)
        assert not [e for e in events if is_notice_from(bot, DOWN)(e)]

        notice = await wait_for_event(synapse, owner, management, is_notice_from(bot, DOWN), 20)
        assert "keeps reconnecting" in notice["content"]["body"]
        await asyncio.sleep(4)  # more retries fail meanwhile: still one notice

        await msn.start()
        await client.wait_online(timeout=60)
        await wait_for_event(synapse, owner, management, is_notice_from(bot, BACK), 20)
        await send_text(synapse, owner, management, "status")
        await wait_for_event(synapse, owner, management, is_notice_from(bot, "online, MSNP"), 10)
        events = await room_events(synapse, owner, management)
        assert len([e for e in events if is_notice_from(bot, DOWN)(e)]) == 1
        assert len([e for e in events if is_notice_from(bot, BACK)(e)]) == 1


async def test_a_short_blip_stays_quiet(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    config = bridge_config(**settings(msn, **{"msn.outage_notice_after": 60}))
    bot = bot_id(synapse)
    async with running_bridge(config) as bridge:
        management = await log_in(synapse, owner)
        assert bridge.sessions is not None
        client = bridge.sessions.get(owner.user_id)
        assert client is not None
        await msn.stop()
        await until(lambda: client.state is SessionState.BACKING_OFF)
        await msn.start()
        await client.wait_online(timeout=60)
        await send_text(synapse, owner, management, "status")
        await wait_for_event(synapse, owner, management, is_notice_from(bot, "online, MSNP"), 10)
        events = await room_events(synapse, owner, management)
        assert not [
            e for e in events if is_notice_from(bot, DOWN)(e) or is_notice_from(bot, BACK)(e)
        ]


async def test_an_irc_owner_gets_the_notices_as_irc_notices(
    bridge_config: Callable[..., Path], synapse: SynapseServer, ircd: IRCd
) -> None:
    async with MSNPTestServer() as server:
        server.add_account("alice@example.com", "pa", nick="Alice")
        path = bridge_config(
            **{
                "bridge.permissions": {"*": "user"},
                "msn.dispatch_host": server.host,
                "msn.dispatch_port": server.dispatch_port,
                "msn.nexus_url": server.nexus_url,
                "msn.verify_tls": False,
                "msn.outage_notice_after": 2,
                "irc": {
                    "enabled": True,
                    "server": {"host": ircd.host, "port": ircd.port},
                    "bot": {"nick": "OutageBot"},
                },
            }
        )
        async with running_bridge(path) as bridge:
            owner = await RawClient.connect(ircd, "alice")
            try:
                owner.send("PRIVMSG OutageBot :login alice@example.com pa")
                await owner.expect(lambda x: "Logged in to MSN" in x, 20)
                assert bridge.sessions is not None
                (client,) = bridge.sessions.all().values()

                def notice(text: str) -> Callable[[str], bool]:
                    return lambda x: command_of(x) == "NOTICE" and text in x

                await server.stop()
                await until(lambda: client.state is SessionState.BACKING_OFF)
                await owner.expect(notice(DOWN), 20)
                owner.send("PRIVMSG OutageBot :status")
                await owner.expect(notice("Down since"), 10)
                await server.start()
                await client.wait_online(timeout=60)
                await owner.expect(notice(BACK), 20)
                assert len([x for x in owner.lines if notice(DOWN)(x)]) == 1
            finally:
                await owner.close()
