"""The contact-list model every MSNP version's SYN is read into."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import IntFlag


class Lists(IntFlag):
    NONE = 0
    FL = 1  # forward: people whose presence we watch
    AL = 2  # allow: people who may see our presence
    BL = 4  # block
    RL = 8  # reverse: people who have us on their FL
    PL = 16  # pending: added us while we were offline (MSNP13+; kept for completeness)

    @classmethod
    def from_name(cls, name: str) -> Lists:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown list {name!r}") from None


ONLINE_STATUSES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN"})
SETTABLE_STATUSES = ONLINE_STATUSES | {"HDN"}


@dataclass(slots=True)
class Group:
    id: str  # numeric id (MSNP7-9) or GUID (MSNP10+)
    name: str


_NO_GROUPS: frozenset[str] = frozenset()


@dataclass(slots=True)
class Contact:
    # Thousands of sessions x 50+ contacts each: fields default to shared empty values
    # (frozenset, None) and are replaced, not mutated, when they change.
    passport: str
    nick: str = ""
    lists: Lists = Lists.NONE
    groups: frozenset[str] = _NO_GROUPS
    guid: str | None = None  # MSNP10+ contact id
    status: str = "FLN"
    psm: str = ""
    caps: int = 0
    ext_caps: int = 0  # MSNP16+ extended capabilities (P2P v2 among them)
    msnobject: str | None = None
    phones: dict[str, str] | None = None
    network: int = 1  # MSNP13+: 1 Windows Live, 32 Yahoo, ... (kept, never dropped)

    @property
    def online(self) -> bool:
        return self.status in ONLINE_STATUSES

    def on(self, lst: Lists) -> bool:
        return bool(self.lists & lst)

    def set_phone(self, kind: str, number: str) -> None:
        if self.phones is None:
            self.phones = {}
        self.phones[kind] = number


@dataclass(slots=True)
class ContactList:
    contacts: dict[str, Contact] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    version: str = "0"
    gtc: str = "A"  # what to do when someone adds us: A = ask, N = allow silently
    blp: str = "AL"  # who may see us when on neither AL nor BL
    own_nick: str = ""
    own_phones: dict[str, str] = field(default_factory=dict)
    # MSNP13+: the address book's last-change time; the next sync asks only for changes.
    ab_last_change: str = ""
    # MSNP16+: the owner's other signed-in endpoints, machine GUID -> endpoint name.
    own_endpoints: dict[str, str] = field(default_factory=dict)

    def get(self, passport: str) -> Contact | None:
        return self.contacts.get(passport.lower())

    def ensure(self, passport: str) -> Contact:
        key = passport.lower()
        contact = self.contacts.get(key)
        if contact is None:
            # Interned: the same passport is a key in every session that lists it.
            key = sys.intern(key)
            contact = self.contacts[key] = Contact(key)
        return contact

    def by_guid(self, guid: str) -> Contact | None:
        for contact in self.contacts.values():
            if contact.guid == guid:
                return contact
        return None

    def on_list(self, lst: Lists) -> list[Contact]:
        return [c for c in self.contacts.values() if c.lists & lst]

    def group_by_name(self, name: str) -> Group | None:
        for group in self.groups.values():
            if group.name == name:
                return group
        return None

    def discard_if_unlisted(self, passport: str) -> None:
        contact = self.get(passport)
        if contact is not None and not contact.lists:
            del self.contacts[contact.passport]

    def clear(self) -> None:
        self.contacts.clear()
        self.groups.clear()
        self.ab_last_change = ""

    def to_json(self) -> dict[str, object]:
        return {
            "own_nick": self.own_nick,
            "gtc": self.gtc,
            "blp": self.blp,
            "groups": [{"id": g.id, "name": g.name} for g in self.groups.values()],
            "contacts": [
                {
                    "passport": c.passport,
                    "nick": c.nick,
                    "lists": [lst.name for lst in Lists if lst and c.lists & lst],
                    "groups": sorted(self.groups[g].name for g in c.groups if g in self.groups),
                    "status": c.status,
                    "psm": c.psm,
                    **({"network": c.network} if c.network != 1 else {}),
                }
                for c in sorted(self.contacts.values(), key=lambda c: c.passport)
            ],
        }
