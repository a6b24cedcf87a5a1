"""Deterministic channel names for contact lists and conversations.

``{user}`` is the local part of the bridged user's MSN passport, ``{contact}`` that of the
1:1 contact, ``{hash}`` a short hash of a group's sorted participants. Names are cut to
the server's CHANNELLEN; a name already used by another portal gets a numbered suffix
(the portal stores the name it got, so it stays stable).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from . import lines


def local_part(passport: str) -> str:
    return passport.split("@", 1)[0].lower()


def group_hash(participants: Iterable[str]) -> str:
    key = ",".join(sorted({p.strip().lower() for p in participants}))
    return hashlib.sha1(key.encode()).hexdigest()[:6]


def contact_list_name(template: str, passport: str, channellen: int, chantypes: str) -> str:
    return lines.sanitize_channel(
        template.format(user=local_part(passport), contact="", hash=""), channellen, chantypes
    )


def conversation_name(
    direct_template: str,
    group_template: str,
    passport: str,
    participants: list[str],
    channellen: int,
    chantypes: str,
) -> str:
    user = local_part(passport)
    if len(participants) == 1:
        name = direct_template.format(user=user, contact=local_part(participants[0]), hash="")
    else:
        name = group_template.format(user=user, contact="", hash=group_hash(participants))
    return lines.sanitize_channel(name, channellen, chantypes)


def numbered(name: str, n: int, channellen: int) -> str:
    """``name`` with ``-n`` at the end, still within ``channellen`` bytes."""
    suffix = f"-{n}"
    room = channellen - len(suffix)
    return name.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix
