"""Contact lists and groups on the notification server: the SYN burst and pushed list
changes applied to the model, and the list and group operations in each version's form.

A mixin of :class:`puppets.notification.NotificationSession`; argument forms are read by
:mod:`puppets.listformat`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .command import Command, decode_arg, encode_arg
from .contacts import ContactList, Group, Lists
from .errors import MSNPError, NotSupported
from .event import contact as ev
from .listformat import parse_add, parse_group_change, parse_lsg, parse_lst, parse_rem

if TYPE_CHECKING:
    from .ablists import AddressBookLists
    from .config import ClientConfig
    from .connection import Connection


class ListsMixin:
    # Provided by NotificationSession.
    protocol: int
    config: ClientConfig
    contacts: ContactList
    _emit: Callable[[object], None]
    _sync_done: asyncio.Event | None
    _sync_seen: list[int]
    _last_listed: str | None
    _status_set: bool
    _adding: set[str]  # passports with an ADD/ADC of ours in flight
    ab: AddressBookLists | None  # MSNP13+: list operations go over SOAP + ADL/RML

    def _check_sync_done(self) -> None: ...
    def _link(self) -> Connection: ...
    def _require(self, low: int, high: int, what: str) -> None: ...

    # --- the SYN burst and pushed changes ---

    def _on_lst(self, cmd: Command) -> None:
        try:
            entry = parse_lst(self.protocol, cmd.args)
        finally:
            if self.protocol >= 8:
                self._sync_seen[0] += 1  # a bad line still counts: the burst must end
                self._check_sync_done()
        if entry.passport is not None:
            c = self.contacts.ensure(entry.passport)
            if c.nick != entry.nick:
                c.nick = sys.intern(entry.nick)  # shared by every session listing it
            if entry.replace:
                c.lists = entry.lists
            else:
                c.lists |= entry.lists
            if entry.groups is not None:
                c.groups = entry.groups if entry.replace else c.groups | entry.groups
            if entry.guid:
                c.guid = entry.guid
            self._last_listed = c.passport
        if entry.last_of is Lists.RL and self._sync_done is not None:
            self._sync_done.set()  # MSNP2-7: RL is the last list of the burst

    def _on_lsg(self, cmd: Command) -> None:
        try:
            gid, name = parse_lsg(self.protocol, cmd.args)
            self.contacts.groups[gid] = Group(gid, name)
        finally:
            if self.protocol >= 8:
                self._sync_seen[1] += 1
                self._check_sync_done()

    def _on_add(self, cmd: Command) -> None:
        change = parse_add(self.protocol, cmd.name, cmd.args)
        c = self.contacts.by_guid(change.guid) if change.guid and not change.passport else None
        if c is None:
            if not change.passport:
                return  # a GUID we do not know: nothing to update
            c = self.contacts.ensure(change.passport)
        if change.guid:
            c.guid = change.guid
        if change.nick is not None:
            c.nick = change.nick
        elif not c.nick:
            c.nick = c.passport
        c.lists |= change.list
        if change.group is not None:
            c.groups = c.groups | {change.group}
        if cmd.trid == 0 and change.list is Lists.RL:
            self._emit(ev.AddedBy(c.passport, c.nick))
        else:
            self._emit(ev.ContactAdded(c.passport, change.list, c.nick, change.group))

    def _on_rem(self, cmd: Command) -> None:
        change = parse_rem(self.protocol, cmd.args)
        c = (
            self.contacts.get(change.passport)
            if change.passport
            else self.contacts.by_guid(change.guid or "")
        )
        if c is None:
            return
        if change.group is not None:
            c.groups = c.groups - {change.group}
        else:
            c.lists &= ~change.list
            if change.list is Lists.FL:
                c.groups = frozenset()
        if cmd.trid == 0 and change.list is Lists.RL:
            self._emit(ev.RemovedBy(c.passport))
        else:
            self._emit(ev.ContactRemoved(c.passport, change.list, change.group))

    def _on_gtc(self, cmd: Command) -> None:
        if cmd.args:
            self.contacts.gtc = cmd.args[-1]

    def _on_blp(self, cmd: Command) -> None:
        if cmd.args:
            self.contacts.blp = cmd.args[-1]

    def _on_prp(self, cmd: Command) -> None:
        args = cmd.args
        if self.protocol < 8 and cmd.trid is not None and args and args[0].isdigit():
            args = args[1:]  # PRP t ver TYPE value
        if args and args[0] == "MFN" and len(args) >= 2:
            self.contacts.own_nick = decode_arg(args[1])
            if cmd.trid is not None and self._status_set:
                self._emit(ev.OwnNickChanged(self.contacts.own_nick))
        elif len(args) >= 2:
            self.contacts.own_phones[args[0]] = decode_arg(args[1])

    def _on_bpr(self, cmd: Command) -> None:
        args = cmd.args
        if self.protocol < 8:  # BPR ver email TYPE value
            if len(args) >= 4 and (c := self.contacts.get(args[1])) is not None:
                c.set_phone(args[2], decode_arg(args[3]))  # strangers' phones: dropped
            return
        if len(args) >= 2 and self._last_listed is not None:
            c = self.contacts.get(self._last_listed)
            if c is not None:
                c.set_phone(args[0], decode_arg(args[1]))

    def _on_rea(self, cmd: Command) -> None:
        # REA t ver email nick (own nick change confirmed, or someone else's in old versions)
        if len(cmd.args) >= 3:
            passport, nick = cmd.args[1], decode_arg(cmd.args[2])
            if passport.lower() == self.config.passport.lower():
                self.contacts.own_nick = nick
                self._emit(ev.OwnNickChanged(nick))
            elif (c := self.contacts.get(passport)) is not None:
                c.nick = nick  # never a contact made from a stranger's nick

    def _on_group(self, cmd: Command) -> None:
        gid, name = parse_group_change(self.protocol, cmd.name, cmd.args)
        groups = self.contacts.groups
        if cmd.name == "ADG" and name is not None:
            groups[gid] = Group(gid, name)
            self._emit(ev.GroupAdded(gid, name))
        elif cmd.name == "RMG":
            if groups.pop(gid, None) is not None:
                for c in self.contacts.contacts.values():
                    if gid in c.groups:
                        c.groups = c.groups - {gid}
                self._emit(ev.GroupRemoved(gid))
        elif name is not None and gid in groups:
            groups[gid].name = name
            self._emit(ev.GroupRenamed(gid, name))

    # --- operations ---

    async def add_to_list(
        self, passport: str, lst: Lists, nick: str | None = None, group: str | None = None
    ) -> None:
        key = passport.lower()
        self._adding.add(key)
        try:
            await self._add_to_list(passport, lst, nick, group)
        finally:
            self._adding.discard(key)

    async def _add_to_list(
        self, passport: str, lst: Lists, nick: str | None, group: str | None
    ) -> None:
        if self.ab is not None:
            return await self.ab.add_to_list(passport, lst, nick, group)
        conn = self._link()
        name = lst.name or "FL"
        if self.protocol >= 10:
            if lst is Lists.FL:
                args = [name, f"N={passport}", f"F={encode_arg(nick or passport)}"]
            else:
                args = [name, f"N={passport}"]
            reply = await conn.request("ADC", *args, timeout=self.config.timeout)
            self._on_add(Command(reply.name, reply.trid, reply.args))
            if group is not None and lst is Lists.FL:
                await self.add_to_group(passport, group)
            return
        else:
            args = [name, passport, encode_arg(nick or passport)]
            if group is not None and lst is Lists.FL and self.protocol >= 7:
                args.append(group)
            reply = await conn.request("ADD", *args, timeout=self.config.timeout)
        self._on_add(Command(reply.name, reply.trid, reply.args))

    async def add_to_group(self, passport: str, group: str) -> None:
        """Put a contact already on the FL into one more group."""
        if self.ab is not None:
            return await self.ab.add_to_group(passport, group)
        self._require(7, 99, "groups")
        c = self.contacts.get(passport)
        if self.protocol >= 10:
            if c is None or not c.guid:
                raise MSNPError(216, "ADC")
            args = ["FL", f"C={c.guid}", group]
            name = "ADC"
        else:
            args = ["FL", passport, encode_arg(c.nick if c else passport), group]
            name = "ADD"
        reply = await self._link().request(name, *args, timeout=self.config.timeout)
        self._on_add(Command(reply.name, reply.trid, reply.args))

    async def remove_from_list(self, passport: str, lst: Lists, group: str | None = None) -> None:
        if self.ab is not None:
            return await self.ab.remove_from_list(passport, lst, group)
        conn = self._link()
        who = passport
        if self.protocol >= 10 and lst is Lists.FL:
            c = self.contacts.get(passport)
            if c is None or not c.guid:
                raise MSNPError(216, "REM")
            who = c.guid
        args = [lst.name or "FL", who]
        if group is not None:
            args.append(group)
        reply = await conn.request("REM", *args, timeout=self.config.timeout)
        self._on_rem(Command(reply.name, reply.trid, reply.args))

    async def add_group(self, name: str) -> str:
        if self.ab is not None:
            return await self.ab.add_group(name)
        self._require(7, 99, "groups")
        conn = self._link()
        args = [encode_arg(name)] if self.protocol >= 10 else [encode_arg(name), "0"]
        reply = await conn.request("ADG", *args, timeout=self.config.timeout)
        self._on_group(reply)
        return parse_group_change(self.protocol, "ADG", reply.args)[0]

    async def remove_group(self, gid: str) -> None:
        if self.ab is not None:
            return await self.ab.remove_group(gid)
        self._require(7, 99, "groups")
        reply = await self._link().request("RMG", gid, timeout=self.config.timeout)
        self._on_group(reply)

    async def rename_group(self, gid: str, name: str) -> None:
        if self.ab is not None:
            return await self.ab.rename_group(gid, name)
        self._require(7, 99, "groups")
        args = [gid, encode_arg(name)] if self.protocol >= 10 else [gid, encode_arg(name), "0"]
        reply = await self._link().request("REG", *args, timeout=self.config.timeout)
        self._on_group(reply)

    async def set_privacy(self, gtc: str | None = None, blp: str | None = None) -> None:
        conn = self._link()
        if gtc is not None and self.ab is not None:
            raise NotSupported("GTC is gone from MSNP13; the address book decides")
        if gtc is not None:
            self._on_gtc(await conn.request("GTC", gtc, timeout=self.config.timeout))
        if blp is not None:
            self._on_blp(await conn.request("BLP", blp, timeout=self.config.timeout))
