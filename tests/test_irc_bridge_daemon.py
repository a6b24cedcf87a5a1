"""The whole daemon (msnbridge.bridge.Bridge, with the real Synapse) with irc.enabled:
the IRC side is started and stopped with the bridge and answers on IRC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    fresh_ircd_fixture,  # noqa: F401 (the ircd fixture)
)
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, running_bridge


async def test_bridge_runs_the_irc_side(
    bridge_config: Callable[..., Path], synapse: SynapseServer, ircd: IRCd
) -> None:
    async with MSNPTestServer() as msn:
        msn.add_account("alice@example.com", "pa", nick="Alice")
        path = bridge_config(
            **{
                "bridge.permissions": {"*": "user", synapse.domain: "user"},
                "msn.dispatch_host": msn.host,
                "msn.dispatch_port": msn.dispatch_port,
                "msn.nexus_url": msn.nexus_url,
                "msn.verify_tls": False,
                "irc": {
                    "enabled": True,
                    "server": {"host": ircd.host, "port": ircd.port},
                    "bot": {"nick": "DaemonBot"},
                },
            }
        )
        async with running_bridge(path) as bridge:
            assert bridge.irc is not None and bridge.irc.bot is not None
            owner = await RawClient.connect(ircd, "alice")
            owner.send("PRIVMSG DaemonBot :login alice@example.com pa")
            await owner.expect(lambda x: "Logged in to MSN" in x, 20)
            invites = [x for x in owner.lines if command_of(x) == "INVITE"]
            if not invites:
                invites.append(await owner.expect(lambda x: command_of(x) == "INVITE"))
            assert invites[0].endswith("#msn-alice")
            owner.send("PRIVMSG DaemonBot :status")
            await owner.expect(lambda x: "Logged in as alice@example.com" in x)
            await owner.close()
        assert bridge.irc is None  # stopped with the bridge
