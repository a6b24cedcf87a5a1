"""Events about the contact list: presence, nicks, personal messages, list changes."""

from __future__ import annotations

from dataclasses import dataclass

from ..contacts import Lists
from ..msnobject import MSNObject


@dataclass(frozen=True, slots=True)
class ContactListSynced:
    contacts: int
    groups: int


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    passport: str
    status: str  # NLN AWY BSY BRB PHN LUN IDL, or FLN when offline
    nick: str
    caps: int = 0
    initial: bool = False  # part of the ILN burst after login
    msnobject: MSNObject | None = None  # display picture object (MSNP9+), when valid
    ext_caps: int = 0  # MSNP16+ extended capabilities


@dataclass(frozen=True, slots=True)
class PersonalMessageChanged:
    passport: str
    psm: str
    media: str = ""


@dataclass(frozen=True, slots=True)
class OwnNickChanged:
    nick: str


@dataclass(frozen=True, slots=True)
class ContactAdded:
    passport: str
    list: Lists
    nick: str = ""
    group: str | None = None


@dataclass(frozen=True, slots=True)
class ContactRemoved:
    passport: str
    list: Lists
    group: str | None = None


@dataclass(frozen=True, slots=True)
class AddedBy:
    """Someone put us on their contact list (RL): accept or block them."""

    passport: str
    nick: str


@dataclass(frozen=True, slots=True)
class RemovedBy:
    passport: str


@dataclass(frozen=True, slots=True)
class GroupAdded:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class GroupRemoved:
    id: str


@dataclass(frozen=True, slots=True)
class GroupRenamed:
    id: str
    name: str
