"""Configuration keys the Matrix side adds (checked with Config.check at start-up)."""

from __future__ import annotations

from ..config import Option
from .double_puppet import check_secrets, check_servers


def _positive(value: int) -> str | None:
    return None if value > 0 else "expected a positive number of seconds"


def _url_or_empty(value: str) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        return "expected an http:// or https:// URL, or '' to use homeserver.address"
    return None


MATRIX_OPTIONS: tuple[Option, ...] = (
    # Base of media links sent to MSN (people there open them in a browser).
    Option("homeserver.public_address", str, "", _url_or_empty, "https://matrix.example.com"),
    # Synapse puts a user who does not sync offline presence.sync_online_timeout (30 s by
    # default) after the last presence set: ghosts of online contacts are refreshed this
    # often, which must stay below that timeout.
    Option("bridge.presence_refresh_interval", int, 25, _positive, "25"),
    # Warn when no typing/receipt/presence event came from the homeserver after this long.
    Option("bridge.ephemeral_check_after", int, 600, _positive, "600"),
    # Report failed deliveries with a com.beeper.message_send_status event too.
    Option("bridge.message_status_events", bool, True),
    # Double puppeting (mautrix-go's names): per homeserver domain, "as_token:<token>" of
    # the double-puppet registration; homeserver URLs of domains other than ours.
    Option("bridge.double_puppet.secrets", dict, {}, check_secrets, "{example.com: 'as_token:…'}"),
    Option("bridge.double_puppet.servers", dict, {}, check_servers, "{other.example: 'https://…'}"),
)
