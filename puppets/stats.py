"""Counters of what a client drops or fails without an event per occurrence (an event per
stranger's presence line would be the flood itself). One ClientStats may be shared by many
clients to total them; an application turns it into metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ClientStats:
    # Presence (ILN/NLN/FLN/UBX) for passports on none of the owner's lists: dropped.
    stranger_presence: int = 0
    # Switchboard invitations (RNG) that could not be answered (closed port, timeout…).
    invitations_failed: int = 0
