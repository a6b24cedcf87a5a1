"""The demo Matrix user (registered once, password kept in the data directory) and the
optional automatic MSN login of that user through the bridge bot, so a Matrix client shows
MSN contacts at once."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .http import HTTPError, request
from .msn import MSNAccount
from .synapse import Synapse

DEMO_LOCALPART = "demo"


@dataclass
class DemoUser:
    user_id: str
    localpart: str
    password: str
    management_room: str | None = None


class AutoLoginError(Exception):
    pass


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save(path: Path, user: DemoUser) -> None:
    path.write_text(
        json.dumps(
            {
                "localpart": user.localpart,
                "password": user.password,
                "management_room": user.management_room,
            },
            indent=2,
        )
    )
    path.chmod(0o600)


def ensure_demo_user(synapse: Synapse, path: Path) -> DemoUser:
    """Registers @demo on the first start; later starts reuse the stored password (and check
    it still logs in, so a stale data directory fails here, clearly)."""
    stored = _load(path)
    localpart = stored.get("localpart", DEMO_LOCALPART)
    password = stored.get("password") or secrets.token_urlsafe(9)
    user = DemoUser(
        f"@{localpart}:{synapse.server_name}", localpart, password, stored.get("management_room")
    )
    if not stored:
        _save(path, user)  # before registering: a crash in between must not lose it
    created = synapse.register(localpart, password, admin=True)
    if not created:
        try:
            synapse.login(localpart, password)
        except HTTPError as e:
            raise AutoLoginError(
                f"{user.user_id} exists in Synapse but the password in {path} does not log in "
                f"({e}); remove the data directory to start afresh"
            ) from None
    return user


def auto_login(
    synapse: Synapse,
    user: DemoUser,
    bot_mxid: str,
    account: MSNAccount,
    state_path: Path,
    timeout: float = 30.0,
) -> str:
    """Logs the demo user in to MSN as `account` by talking to the bridge bot in a DM (as a
    person would); returns the bot's answer. The DM is kept for later starts."""
    base = synapse.url + "/_matrix/client/v3"
    token = synapse.login(user.localpart, user.password)
    room = user.management_room
    if room is not None:
        joined = request("GET", f"{base}/joined_rooms", token=token)["joined_rooms"]
        if room not in joined:
            room = None
    if room is None:
        room = request(
            "POST",
            f"{base}/createRoom",
            {"invite": [bot_mxid], "is_direct": True, "preset": "trusted_private_chat"},
            token=token,
        )["room_id"]
        user.management_room = room
        _save(state_path, user)
    room_path = f"{base}/rooms/{quote(room)}"
    deadline = time.monotonic() + timeout
    while bot_mxid not in request("GET", f"{room_path}/joined_members", token=token)["joined"]:
        if time.monotonic() > deadline:
            raise AutoLoginError(f"the bridge bot did not join {room} within {timeout:.0f}s")
        time.sleep(0.2)
    sent = request(
        "PUT",
        f"{room_path}/send/m.room.message/{secrets.token_hex(8)}",
        {"msgtype": "m.text", "body": f"login {account.passport} {account.password}"},
        token=token,
    )["event_id"]
    while time.monotonic() < deadline:
        answer = _bot_answer(room_path, token, bot_mxid, sent)
        if answer is not None:
            if answer.startswith("Logged in"):
                return answer
            if f"logged in as {account.passport} already" in answer:
                return f"Logged in to MSN as {account.passport} (session restored by the bridge)."
            raise AutoLoginError(f"the bridge bot answered: {answer}")
        time.sleep(0.3)
    raise AutoLoginError(f"no answer from the bridge bot within {timeout:.0f}s")


def _bot_answer(room_path: str, token: str, bot_mxid: str, after_event: str) -> str | None:
    """The bot's latest conclusive notice after our command (not its "Logging in…", nor
    the greeting it sends on joining, which may land after our command)."""
    chunk = request("GET", f"{room_path}/messages?dir=b&limit=30", token=token)["chunk"]
    for event in chunk:  # newest first
        if event.get("event_id") == after_event:
            return None
        body = event.get("content", {}).get("body", "")
        if event.get("sender") == bot_mxid and event["type"] == "m.room.message":
            if body.startswith(("Logging in", "Hello")):
                continue  # progress, or the greeting the bot sends when it joins
            return body
    return None
