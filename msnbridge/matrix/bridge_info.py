"""MSC2346 bridge info: the state events (``m.bridge`` and its unstable twin
``uk.half-shot.bridge``) that let Matrix clients show what a portal room bridges.

Sent in the initial state of every new portal room, and once at start-up to the rooms made
before (``bridge_info_sent`` remembers which rooms have the current ``VERSION``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mautrix.errors import MatrixError
from mautrix.types import EventType, RoomID
from mautrix.util.async_db import Database

from ..db.portal import Portal

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.bridge_info")

VERSION = 1  # raise when the content changes, to send it again to every room
EVENT_TYPES = ("m.bridge", "uk.half-shot.bridge")
PROTOCOL = {"id": "msn", "displayname": "MSN Messenger"}


def state_key(portal: Portal) -> str:
    return f"net.msnbridge://msn/{portal.owner}/{portal.key}"


def content(side: MatrixSide, portal: Portal, channel_name: str | None = None) -> dict[str, Any]:
    """``channel_name``: how the conversation is called (the contact's nick in a DM, the
    room name of a group); the passports by default."""
    server = side.config["msn.dispatch_host"]
    creator = side.ghosts.mxid(portal.participants[0]) if portal.is_direct else side.bot_mxid
    return {
        "bridgebot": side.bot_mxid,
        "creator": creator,
        "protocol": PROTOCOL,
        "network": {"id": server, "displayname": server},
        "channel": {
            "id": portal.key,
            "displayname": channel_name or ", ".join(portal.participants),
        },
    }


def known_name(side: MatrixSide, portal: Portal) -> str | None:
    """A DM's contact nick, when the owner's session knows it."""
    client = side.router.sessions.get(portal.owner)
    if not portal.is_direct or client is None:
        return None
    contact = client.contacts.get(portal.participants[0])
    return contact.nick if contact is not None and contact.nick else None


def initial_state(side: MatrixSide, portal: Portal, channel_name: str | None) -> list[dict]:
    """For ``create_room(initial_state=…)``."""
    body = content(side, portal, channel_name)
    key = state_key(portal)
    return [{"type": t, "state_key": key, "content": body} for t in EVENT_TYPES]


async def mark_sent(db: Database, room_id: str) -> None:
    await db.execute(
        "INSERT INTO bridge_info_sent (room_id, version) VALUES ($1, $2) "
        "ON CONFLICT (room_id) DO UPDATE SET version=excluded.version",
        room_id,
        VERSION,
    )


async def _rooms_without(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT p.owner, p.key FROM portals p LEFT JOIN bridge_info_sent b "
        "ON b.room_id = p.room_id WHERE p.room_id IS NOT NULL "
        "AND (b.version IS NULL OR b.version < $1) ORDER BY p.owner, p.key",
        VERSION,
    )
    return [(r["owner"], r["key"]) for r in rows]


async def send_to_existing_rooms(side: MatrixSide) -> int:
    """Start-up: the bridge info for every portal room that lacks its current version.
    A room that refuses (the bot left, no power) is logged and tried again next start.
    Returns how many rooms got it."""
    try:
        return await _send_to_existing_rooms(side)
    except Exception:
        log.exception("Sending the bridge info to existing rooms failed")
        return 0


async def _send_to_existing_rooms(side: MatrixSide) -> int:
    sent = 0
    for owner, key in await _rooms_without(side.db):
        portal = await side.router.portals.get(owner, key.split(","))
        if portal is None or not portal.room_id or not side.portal_side.serves(portal):
            continue
        room = RoomID(portal.room_id)
        body = content(side, portal, known_name(side, portal))
        try:
            for event_type in EVENT_TYPES:
                await side.bot.send_state_event(
                    room, EventType.find(event_type, EventType.Class.STATE), body, state_key(portal)
                )
        except MatrixError as e:
            log.warning("Could not send the bridge info to %s: %s", room, e)
            continue
        await mark_sent(side.db, room)
        sent += 1
    if sent:
        log.info("Sent the bridge info (MSC2346) to %d existing portal rooms", sent)
    return sent
