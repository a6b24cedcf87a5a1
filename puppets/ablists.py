"""The MSNP13-18 contact list: the address book and memberships fetched over SOAP into
the same :class:`~puppets.contacts.ContactList` model the older versions fill from SYN,
the ``ADL``/``RML`` that tell the notification server about it, and the list and group
operations mapped onto the SOAP calls plus ``ADL``/``RML``.

Used by :class:`puppets.notification.NotificationSession` from MSNP13; it hands itself
in as the small :class:`Session` protocol below (no import of the session class).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from typing import Protocol
from xml.sax.saxutils import quoteattr

from .command import Command, decode_arg
from .config import ClientConfig
from .connection import Connection
from .contacts import _NO_GROUPS, ContactList, Group, Lists
from .errors import MSNPError, NotSupported, ProtocolError
from .event import contact as ev
from .soap.addressbook import AddressBook, AddressBookService
from .soap.sharing import Memberships, SharingService

_ROLE_BITS = {"Allow": Lists.AL, "Block": Lists.BL, "Reverse": Lists.RL, "Pending": Lists.PL}
_ROLE_OF = {Lists.AL: "Allow", Lists.BL: "Block"}
ML_CHUNK = 7400  # bytes of <c> entries per ADL (servers cap the payload near 7.5 kB)


class Session(Protocol):
    protocol: int
    config: ClientConfig
    contacts: ContactList

    def _link(self) -> Connection: ...
    def _emit(self, event: object) -> None: ...


def split_network(protocol: int, args: list[str], at: int = 1) -> tuple[list[str], int]:
    """Presence arguments in the MSNP2-13 shape (``ST email nick caps obj``), and the
    network id: MSNP14-17 put it after the passport, MSNP18 writes ``1:email``."""
    if protocol >= 18 and len(args) > at and ":" in args[at].split("@")[0]:
        net, _, passport = args[at].partition(":")
        return [*args[:at], passport, *args[at + 1 :]], int(net) if net.isdigit() else 1
    if protocol >= 14 and len(args) > at + 1 and args[at + 1].isdigit():
        return [*args[: at + 1], *args[at + 2 :]], int(args[at + 1])
    return args, 1


def ml_payload(entries: list[tuple[str, int, int]], initial: bool = False) -> list[bytes]:
    """``<ml>`` payloads for (passport, list bits, network) entries, by domain, each
    under :data:`ML_CHUNK` bytes."""
    head = '<ml l="1">' if initial else "<ml>"
    payloads: list[bytes] = []
    by_domain: dict[str, list[str]] = {}
    size = 0

    def flush() -> None:
        nonlocal size
        body = "".join(
            f"<d n={quoteattr(d)}>{''.join(cs)}</d>" for d, cs in sorted(by_domain.items())
        )
        payloads.append(f"{head}{body}</ml>".encode())
        by_domain.clear()
        size = 0

    for passport, bits, network in entries:
        user, _, domain = passport.partition("@")
        c = f'<c n={quoteattr(user)} l="{bits}" t="{network}"/>'
        if size + len(c) > ML_CHUNK and by_domain:
            flush()
        by_domain.setdefault(domain, []).append(c)
        size += len(c) + len(domain)
    if by_domain or not payloads:
        flush()
    return payloads


def parse_ml(payload: bytes) -> list[tuple[str, int, int, str | None]]:
    """(passport, list bits, network, nick) of each ``<c>`` of a server ADL/RML."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError as e:
        raise ProtocolError(f"unreadable ADL/RML payload: {e}") from e
    out = []
    for d in root.iter("d"):
        for c in d.iter("c"):
            bits, net = c.get("l", "0"), c.get("t", "1")
            nick = c.get("f")
            out.append(
                (
                    f"{c.get('n', '')}@{d.get('n', '')}".lower(),
                    int(bits) if bits.isdigit() else 0,
                    int(net) if net.isdigit() else 1,
                    decode_arg(nick) if nick is not None else None,
                )
            )
    return out


class AddressBookLists:
    def __init__(self, session: Session, ab: AddressBookService, sharing: SharingService) -> None:
        self.s = session
        self.ab = ab
        self.sharing = sharing

    @property
    def contacts(self) -> ContactList:
        return self.s.contacts

    async def _ml(
        self, name: str, entries: list[tuple[str, int, int]], initial: bool = False
    ) -> None:
        for payload in ml_payload(entries, initial):
            await self.s._link().request(name, payload=payload, timeout=self.s.config.timeout)

    # --- sync ---

    async def sync(self) -> None:
        """ABFindAll (only the changes when a last-change time is known), FindMembership,
        then the initial ADL."""
        last = self.contacts.ab_last_change or None
        book = await self.ab.find_all(last)
        members = await self.sharing.find_membership()
        self._apply_book(book, full=last is None)
        self._apply_members(members)
        entries = [
            (c.passport, int(c.lists & (Lists.FL | Lists.AL | Lists.BL)), c.network)
            for c in self.contacts.contacts.values()
            if c.lists & (Lists.FL | Lists.AL | Lists.BL)
        ]
        await self._ml("ADL", entries, initial=True)
        self.s._emit(ev.ContactListSynced(len(self.contacts.contacts), len(self.contacts.groups)))

    def _apply_book(self, book: AddressBook, full: bool) -> None:
        cl = self.contacts
        if full:
            cl.contacts.clear()
            cl.groups.clear()
        for g in book.groups:
            if g.deleted:
                cl.groups.pop(g.group_id, None)
            else:
                cl.groups[g.group_id] = Group(g.group_id, g.name)
        for entry in book.contacts:
            if entry.is_me:
                if entry.display_name:
                    cl.own_nick = entry.display_name
                continue
            if entry.deleted:
                found = cl.by_guid(entry.contact_id)
                if found is not None:
                    found.lists &= ~Lists.FL
                    found.groups = _NO_GROUPS
                    found.guid = None
                continue
            c = cl.ensure(entry.passport)
            c.guid = entry.contact_id
            nick = entry.display_name or c.nick or c.passport
            if nick != c.nick:
                c.nick = sys.intern(nick)  # shared by every session listing the contact
            c.network = entry.network
            groups = [g for g in entry.group_ids if g in cl.groups]
            c.groups = frozenset(groups) if groups else _NO_GROUPS
            c.lists |= Lists.FL
        live = set(cl.groups)
        for c in cl.contacts.values():
            if c.groups - live:
                c.groups = c.groups & live
        cl.ab_last_change = book.last_change

    def _apply_members(self, members: Memberships) -> None:
        """Memberships are fetched whole: they replace the AL/BL/RL/PL bits."""
        cl = self.contacts
        mask = Lists.AL | Lists.BL | Lists.RL | Lists.PL
        for c in cl.contacts.values():
            c.lists &= ~mask
        for m in members.members:
            if m.deleted:
                continue
            c = cl.ensure(m.passport)
            c.lists |= _ROLE_BITS[m.role]
            c.network = m.network
            if not c.nick:
                c.nick = sys.intern(m.display_name or m.passport)
        for passport in [p for p, c in cl.contacts.items() if not c.lists]:
            del cl.contacts[passport]

    # --- pushed by the server ---

    def on_adl(self, cmd: Command) -> None:
        """``ADL 0``: someone added us (RL)."""
        if cmd.trid not in (0, None) or cmd.payload is None:
            return
        for passport, bits, network, nick in parse_ml(cmd.payload):
            if not bits & Lists.RL:
                continue
            c = self.contacts.ensure(passport)
            c.network = network
            c.lists |= Lists.RL
            if not c.on(Lists.AL | Lists.BL):
                c.lists |= Lists.PL
            if nick:
                c.nick = sys.intern(nick)
            elif not c.nick:
                c.nick = c.passport
            self.s._emit(ev.AddedBy(c.passport, c.nick))

    def on_rml(self, cmd: Command) -> None:
        if cmd.trid not in (0, None) or cmd.payload is None:
            return
        for passport, bits, _network, _nick in parse_ml(cmd.payload):
            c = self.contacts.get(passport)
            if c is None or not bits & Lists.RL:
                continue
            c.lists &= ~(Lists.RL | Lists.PL)
            self.s._emit(ev.RemovedBy(c.passport))
            self.contacts.discard_if_unlisted(c.passport)

    # --- operations ---

    async def add_to_list(
        self, passport: str, lst: Lists, nick: str | None = None, group: str | None = None
    ) -> None:
        passport = passport.lower()
        existing = self.contacts.get(passport)
        network = existing.network if existing is not None else 1
        if lst is Lists.FL:
            guid = await self.ab.contact_add(passport, nick, network)
            c = self.contacts.ensure(passport)
            c.guid = guid or c.guid
            c.nick = nick or c.nick or passport
            c.lists |= Lists.FL
            await self._ml("ADL", [(passport, int(Lists.FL), network)])
            self.s._emit(ev.ContactAdded(passport, Lists.FL, c.nick, None))
            if group is not None:
                await self.add_to_group(passport, group)
            return
        role = _ROLE_OF.get(lst)
        if role is None:
            raise NotSupported(f"cannot add to {lst.name} in MSNP{self.s.protocol}")
        await self.sharing.add_member(role, passport, network)
        c = self.contacts.ensure(passport)
        c.lists = (c.lists | lst) & ~Lists.PL
        if not c.nick:
            c.nick = passport
        await self._ml("ADL", [(passport, int(lst), network)])
        self.s._emit(ev.ContactAdded(passport, lst, c.nick, None))

    async def remove_from_list(self, passport: str, lst: Lists, group: str | None = None) -> None:
        c = self.contacts.get(passport)
        if c is None:
            raise MSNPError(216, "REM")
        if lst is Lists.FL:
            if not c.guid:
                raise MSNPError(216, "REM")
            if group is not None:
                await self.ab.group_contact_delete(group, c.guid)
                c.groups = c.groups - {group}
                self.s._emit(ev.ContactRemoved(c.passport, Lists.FL, group))
                return
            await self.ab.contact_delete(c.guid)
            c.lists &= ~Lists.FL
            c.groups = frozenset()
            c.guid = None
            await self._ml("RML", [(c.passport, int(Lists.FL), c.network)])
            self.s._emit(ev.ContactRemoved(c.passport, Lists.FL, None))
            return
        role = _ROLE_OF.get(lst)
        if role is None:
            raise NotSupported(f"cannot remove from {lst.name} in MSNP{self.s.protocol}")
        await self.sharing.delete_member(role, c.passport, c.network)
        c.lists &= ~lst
        await self._ml("RML", [(c.passport, int(lst), c.network)])
        self.s._emit(ev.ContactRemoved(c.passport, lst, None))

    async def add_to_group(self, passport: str, group: str) -> None:
        c = self.contacts.get(passport)
        if c is None or not c.guid:
            raise MSNPError(216, "ADC")
        await self.ab.group_contact_add(group, c.guid)
        c.groups = c.groups | {group}
        self.s._emit(ev.ContactAdded(c.passport, Lists.FL, c.nick, group))

    async def add_group(self, name: str) -> str:
        guid = await self.ab.group_add(name)
        self.contacts.groups[guid] = Group(guid, name)
        self.s._emit(ev.GroupAdded(guid, name))
        return guid

    async def remove_group(self, gid: str) -> None:
        await self.ab.group_delete(gid)
        if self.contacts.groups.pop(gid, None) is not None:
            for c in self.contacts.contacts.values():
                if gid in c.groups:
                    c.groups = c.groups - {gid}
        self.s._emit(ev.GroupRemoved(gid))

    async def rename_group(self, gid: str, name: str) -> None:
        await self.ab.group_update(gid, name)
        if gid in self.contacts.groups:
            self.contacts.groups[gid].name = name
        self.s._emit(ev.GroupRenamed(gid, name))

    async def set_own_name(self, nick: str) -> None:
        await self.ab.update_own_name(nick)
