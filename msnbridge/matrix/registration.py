"""The appservice registration file the homeserver loads (written by `msnbridge -g`)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from ..config import Config
from ..private_files import write_private
from .ids import GhostIds


def build_registration(config: Config) -> dict[str, Any]:
    domain = config["homeserver.domain"]
    ghosts = GhostIds(config["appservice.username_template"], domain)
    bot = f"@{config['appservice.bot_username']}:{domain}"
    return {
        "id": config["appservice.id"],
        "url": config["appservice.address"],
        "as_token": config["appservice.as_token"],
        "hs_token": config["appservice.hs_token"],
        "sender_localpart": config["appservice.bot_username"],
        "rate_limited": False,
        "namespaces": {
            "users": [
                {"regex": ghosts.regex(), "exclusive": True},
                {"regex": re.escape(bot), "exclusive": True},
            ],
            "aliases": [],
            "rooms": [],
        },
        # Typing, receipts and presence (MSC2409); the unstable key for older Synapse.
        "receive_ephemeral": config["appservice.ephemeral_events"],
        "de.sorunome.msc2409.push_ephemeral": config["appservice.ephemeral_events"],
    }


def write_registration(config: Config, path: str | Path) -> None:
    """Written 0600: it holds the as_token and hs_token."""
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    text = io.StringIO()
    yaml.dump(build_registration(config), text)
    write_private(path, text.getvalue())
