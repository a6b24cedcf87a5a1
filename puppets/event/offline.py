"""Events about offline messages (MSNP13+)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OfflineMessageReceived:
    """A message stored while we were offline, delivered once (its id is remembered in
    :attr:`puppets.Client.seen_offline_ids`); ``sent_at`` is its original unix time."""

    id: str
    sender: str
    nick: str
    text: str
    sent_at: float
