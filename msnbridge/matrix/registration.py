"""The appservice registration file the homeserver loads (written by `msnbridge -g`)."""

from __future__ import annotations

import hashlib
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


DOUBLE_PUPPET_ID = "msnbridge-doublepuppet"


def build_double_puppet_registration(domain: str, as_token: str) -> dict[str, Any]:
    """The second registration that lets the bridge act as the homeserver's own users
    (double puppeting, the mautrix convention): its own as_token, every user of the domain
    non-exclusively, no rooms or aliases, and no URL: the homeserver sends it nothing."""
    # Never used (no URL) but required; derived from the as_token so that running -g
    # again writes the same file.
    digest = hashlib.sha256(f"msnbridge-doublepuppet:{as_token}".encode()).hexdigest()
    return {
        "id": DOUBLE_PUPPET_ID,
        "url": None,
        "as_token": as_token,
        "hs_token": digest[:48],
        "sender_localpart": f"_msnbridge_doublepuppet_{digest[48:56]}",
        "rate_limited": False,
        "namespaces": {
            "users": [{"regex": f"@.*:{re.escape(domain)}", "exclusive": False}],
            "aliases": [],
            "rooms": [],
        },
    }


def write_registration(config: Config, path: str | Path) -> None:
    """Written 0600: it holds the as_token and hs_token."""
    _dump(build_registration(config), path)


def write_double_puppet_registration(domain: str, as_token: str, path: str | Path) -> None:
    """Written 0600: it holds that registration's as_token."""
    _dump(build_double_puppet_registration(domain, as_token), path)


def _dump(registration: dict[str, Any], path: str | Path) -> None:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    text = io.StringIO()
    yaml.dump(registration, text)
    write_private(path, text.getvalue())
