"""The server's data model: accounts, their four lists, groups and list versions.

Pure data and the privacy rule (who may see whom); no sockets, no formatting.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

LIST_BITS = {"FL": 1, "AL": 2, "BL": 4, "RL": 8}
LISTS = ("FL", "AL", "BL", "RL")
STATUSES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"})
PHONE_TYPES = frozenset({"PHH", "PHW", "PHM", "MOB", "MBE"})
MAX_NICK_BYTES = 387  # longest encoded nick the servers accepted (error 209 beyond)

_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def valid_passport(text: str) -> bool:
    return bool(_EMAIL.match(text)) and len(text) <= 129


def _stamp() -> str:
    """A list timestamp in the MSNP10+ SYN form (2005-04-23T18:57:44.8130000-07:00)."""
    now = time.time()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{base}.{int((now % 1) * 10_000_000):07d}-00:00"


@dataclass(slots=True)
class Group:
    id: int  # the MSNP7-9 number
    guid: str  # the MSNP10+ id
    name: str


@dataclass(slots=True)
class Contact:
    """One entry of an owner's lists: the stored friendly name, its guid, FL groups."""

    passport: str
    nick: str
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    groups: set[int] = field(default_factory=set)
    network: int = 1  # MSNP13+: 1 Windows Live, 32 Yahoo
    changed: float = field(default_factory=time.time)  # address-book change time


@dataclass(slots=True)
class Account:
    passport: str
    password: str | None  # None: exists as a contact only, cannot sign in
    nick: str
    status: str = "FLN"  # FLN = offline; set by CHG or MSNPTestServer.set_presence
    caps: int = 0
    ext_caps: int = 0  # MSNP16+: the extended capabilities after "caps:" in CHG
    msnobj: str = ""
    psm: bytes = b""  # the raw UUX payload (<Data><PSM>…)
    gtc: str = "A"
    blp: str = "AL"
    phones: dict[str, str] = field(default_factory=dict)
    lists: dict[str, set[str]] = field(default_factory=lambda: {n: set() for n in LISTS})
    contacts: dict[str, Contact] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    list_version: int = 0
    list_stamp: str = field(default_factory=_stamp)
    inbox_unread: int = 0
    # MSNP13+: address-book entries removed (contact id -> (passport, when)), for deltas;
    # groups removed likewise; offline messages waiting (see offline.py).
    ab_deleted: dict[str, tuple[str, float]] = field(default_factory=dict)
    groups_deleted: dict[str, float] = field(default_factory=dict)
    ab_changed: float = field(default_factory=time.time)
    oims: list = field(default_factory=list)
    me_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the AB "Me" contact

    def __post_init__(self) -> None:
        if 0 not in self.groups:
            self.groups[0] = Group(0, "00000000-0000-0000-0000-000000000000", "Other Contacts")

    # -- lists -------------------------------------------------------------
    def on(self, list_name: str, passport: str) -> bool:
        return passport in self.lists[list_name]

    def bits(self, passport: str) -> int:
        return sum(bit for name, bit in LIST_BITS.items() if passport in self.lists[name])

    def bump(self) -> int:
        self.list_version += 1
        self.list_stamp = _stamp()
        return self.list_version

    def entry(self, passport: str, nick: str | None = None) -> Contact:
        found = self.contacts.get(passport)
        if found is None:
            found = self.contacts[passport] = Contact(passport, nick or passport)
        return found

    def add_to(self, list_name: str, passport: str, nick: str | None = None) -> Contact:
        entry = self.entry(passport, nick)
        self.lists[list_name].add(passport)
        return entry

    def remove_from(self, list_name: str, passport: str) -> None:
        if list_name == "FL" and passport in self.lists["FL"] and passport in self.contacts:
            now = self.ab_changed = time.time()
            self.ab_deleted[self.contacts[passport].guid] = (passport, now)
        self.lists[list_name].discard(passport)
        if list_name == "FL" and passport in self.contacts:
            self.contacts[passport].groups.clear()
        if not self.bits(passport):
            self.contacts.pop(passport, None)

    def contact_by_guid(self, guid: str) -> Contact | None:
        for contact in self.contacts.values():
            if contact.guid == guid and contact.passport in self.lists["FL"]:
                return contact
        return None

    # -- groups ------------------------------------------------------------
    def new_group(self, name: str) -> Group:
        number = max(self.groups) + 1
        group = Group(number, str(uuid.uuid4()), name)
        self.groups[number] = group
        return group

    def group_by_ref(self, ref: str) -> Group | None:
        """A group by its number, its guid or (for the Python API) its name."""
        if ref.isdigit():
            return self.groups.get(int(ref))
        for group in self.groups.values():
            if ref in (group.guid, group.name):
                return group
        return None

    def group_by_guid(self, guid: str) -> Group | None:
        for group in self.groups.values():
            if group.guid == guid and group.id != 0:
                return group
        return None

    # -- presence ----------------------------------------------------------
    @property
    def online(self) -> bool:
        return self.status != "FLN"

    def allows(self, viewer: str) -> bool:
        """Privacy: may ``viewer`` see this account's presence and invite it?"""
        if viewer in self.lists["BL"]:
            return False
        if viewer in self.lists["AL"]:
            return True
        return self.blp == "AL"

    def visible_to(self, viewer: str) -> bool:
        return self.online and self.status != "HDN" and self.allows(viewer)


class Directory:
    """All accounts of the server, by lower-cased passport."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    def get(self, passport: str) -> Account | None:
        return self.accounts.get(passport.lower())

    def __getitem__(self, passport: str) -> Account:
        account = self.get(passport)
        if account is None:
            raise KeyError(passport)
        return account

    def add_account(self, passport: str, password: str | None, nick: str | None = None) -> Account:
        passport = passport.lower()
        account = self.accounts.get(passport)
        if account is None:
            account = self.accounts[passport] = Account(passport, password, nick or passport)
        else:
            account.password = password
            account.nick = nick or account.nick
        return account

    def add_group(self, owner: str, name: str) -> Group:
        account = self[owner]
        return account.group_by_ref(name) or account.new_group(name)

    def add_contact(
        self,
        owner: str,
        contact: str,
        lists: tuple[str, ...] | list[str] = ("FL", "AL"),
        groups: tuple[str, ...] | list[str] = (),
        nick: str | None = None,
    ) -> Contact:
        """Put ``contact`` on ``owner``'s lists (creating a sign-in-less account for an
        unknown contact); FL membership puts ``owner`` on the contact's RL."""
        account = self[owner]
        other = self.get(contact) or self.add_account(contact, None)
        entry = account.entry(other.passport, nick or other.nick)
        for list_name in lists:
            if list_name not in ("FL", "AL", "BL"):
                raise ValueError(f"cannot add to {list_name}")
            account.lists[list_name].add(other.passport)
            if list_name == "FL":
                other.add_to("RL", account.passport, account.nick)
                other.bump()
        for ref in groups:
            entry.groups.add(self.add_group(owner, ref).id)
        entry.changed = account.ab_changed = time.time()
        account.bump()
        return entry
