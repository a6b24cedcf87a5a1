"""bridge.relay.enabled is a switch (false: `relay on` is refused and nobody is relayed);
bridge.relay.on_in_new_rooms starts relaying on in new conversation rooms. The command
through the real Router and database; the whole bridge with a real Synapse."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ruamel.yaml import YAML

from msnbridge.config import load_config
from msnbridge.core.commands import CommandContext, CommandProcessor
from msnbridge.core.portal_commands import register_portal_commands
from msnbridge.core.router import Router
from msnbridge.core.sessions import Sessions
from msnbridge.db import open_database
from msnbridge.permissions import PermissionLevel
from msnbridge.secrets import SecretBox
from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import (
    SynapseServer,
    is_notice_from,
    running_bridge,
    send_text,
    wait_for_event,
)
from tests.test_matrix_portals import (
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    friend,
    join,
    log_in,
    msn,  # noqa: F401  (fixture)
    settings,
)

OWNER = "@owner:example.com"
EXAMPLE = Path(__file__).parent.parent / "bridge.yaml.example"


def config_with_relay(tmp_path: Path, relay: dict[str, object]) -> Path:
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # a database of its own
    raw = YAML(typ="safe").load(EXAMPLE.read_text())
    raw["appservice"].update(as_token="a", hs_token="h")
    raw["bridge"]["secret_key"] = secrets.token_urlsafe(32)
    raw["bridge"]["relay"] = relay
    raw["database"] = f"sqlite:{tmp_path / 'bridge.db'}"
    path = tmp_path / "bridge.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path


async def relay_replies(tmp_path: Path, relay: dict[str, object], words: list[str]) -> list[str]:
    """Runs `relay <word>` in a new portal (of the real Router and database) for each word."""
    config = load_config(str(config_with_relay(tmp_path, relay)))
    db = await open_database(config["database"])
    sessions = Sessions(config, db, SecretBox(config["bridge.secret_key"]))
    router = Router(
        sessions,
        db,
        relay_default=config["bridge.relay.on_in_new_rooms"],
        relay_allowed=config["bridge.relay.enabled"],
    )
    processor = CommandProcessor()
    register_portal_commands(processor, router)
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    try:
        await db.execute("INSERT INTO users (id, side) VALUES ($1, 'matrix')", OWNER)
        portal = await router.portals.get_or_create(OWNER, [BOB])
        for word in words:
            ctx = CommandContext(
                OWNER, False, reply, PermissionLevel.USER, extra={"portal": portal}
            )
            await processor.handle(ctx, f"relay {word}".strip())
        replies.append(f"relays: {router.portals.relays(portal)}")
    finally:
        await router.stop()
        await db.stop()
    return replies


async def test_switch_off_refuses_relay_on(tmp_path: Path) -> None:
    replies = await relay_replies(tmp_path, {"enabled": False}, ["on", ""])
    assert replies[0].startswith("Relaying is turned off on this bridge (bridge.relay.enabled")
    assert replies[1] == replies[0]
    assert replies[2] == "relays: False"


async def test_switch_on_leaves_it_to_each_room(tmp_path: Path) -> None:
    replies = await relay_replies(tmp_path, {"enabled": True}, ["", "on"])
    assert replies[0] == "Relaying is off here. Usage: relay on|off"
    assert replies[1].startswith("Relaying is on")
    assert replies[2] == "relays: True"


async def test_new_rooms_can_start_with_relaying_on(tmp_path: Path) -> None:
    replies = await relay_replies(tmp_path, {"enabled": True, "on_in_new_rooms": True}, [])
    assert replies == ["relays: True"]
    # ... but never past the switch.
    replies = await relay_replies(tmp_path, {"enabled": False, "on_in_new_rooms": True}, [])
    assert replies == ["relays: False"]


def test_an_old_config_without_the_new_key_loads(tmp_path: Path) -> None:
    config = load_config(str(config_with_relay(tmp_path, {"enabled": True, "format": "{m}"})))
    assert config["bridge.relay.enabled"] is True
    assert config["bridge.relay.on_in_new_rooms"] is False


async def test_matrix_guest_is_not_relayed_while_the_switch_is_off(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner, guest = await synapse.register_user(), await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    config = bridge_config(**settings(msn, **{"bridge.relay.enabled": False}))
    try:
        async with running_bridge(config) as bridge:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hey")
            path = f"/_matrix/client/v3/rooms/{quote(room)}/invite"
            invite = {"user_id": guest.user_id}
            await synapse.request("POST", path, invite, token=owner.access_token)
            await join(synapse, guest, room)
            await send_text(synapse, owner, room, "!msn relay on")
            await wait_for_event(
                synapse, owner, room, is_notice_from(bot_id(synapse), "Relaying is turned off")
            )
            # A portal stored with relaying on (by an older version) obeys the switch too.
            assert bridge.router is not None
            portal = await bridge.router.portals.by_room(room)
            assert portal is not None
            portal.relay_enabled = True
            await bridge.router.portals.save(portal)
            await send_text(synapse, guest, room, "not relayed")
            await send_text(synapse, owner, room, "from the owner")
            await bob_events.wait_for(MessageReceived, lambda e: e.message.text == "from the owner")
            texts = [e.message.text for e in bob_events.of(MessageReceived)]
            assert not any("not relayed" in t for t in texts)
    finally:
        await bob.stop()
