"""The address book service (ABCH, ``abservice.asmx``): the contacts and groups of the
forward list, fetched whole or as the changes since a last-change time."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import aiohttp

from .base import children, envelope, esc, find, local, post, text, with_ticket

AB_NS = "http://www.msn.com/webservices/AddressBook"
_ACTION = AB_NS + "/"
NIL_AB = "00000000-0000-0000-0000-000000000000"
_GROUP_TYPE = "C8529CE2-6EAD-434d-881F-341E17DB3FF8"  # a user group
_NETWORK_EMAIL_TYPES = {"Messenger2": 32, "Messenger3": 32}  # Yahoo contacts by e-mail


@dataclass(slots=True)
class ABContact:
    contact_id: str
    passport: str
    display_name: str = ""
    network: int = 1  # 1 = Windows Live, 32 = Yahoo (by e-mail), 4 = phone...
    group_ids: list[str] = field(default_factory=list)
    is_messenger_user: bool = True
    is_me: bool = False
    deleted: bool = False


@dataclass(slots=True)
class ABGroup:
    group_id: str
    name: str
    deleted: bool = False


@dataclass(slots=True)
class AddressBook:
    contacts: list[ABContact]
    groups: list[ABGroup]
    last_change: str  # the ab's lastChange: send it back for the changes since


def _header(ticket: str, scenario: str) -> str:
    return (
        f'<ABApplicationHeader xmlns="{AB_NS}">'
        "<ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11</ApplicationId>"
        "<IsMigration>false</IsMigration>"
        f"<PartnerScenario>{esc(scenario)}</PartnerScenario></ABApplicationHeader>"
        f'<ABAuthHeader xmlns="{AB_NS}"><ManagedGroupRequest>false</ManagedGroupRequest>'
        f"<TicketToken>{esc(ticket)}</TicketToken></ABAuthHeader>"
    )


def _bool(value: str) -> bool:
    return value.strip().lower() == "true"


def _parse_contact(el: ET.Element) -> ABContact | None:
    info = find(el, "contactInfo")
    contact_id = text(el, "contactId")
    passport = text(info, "passportName").lower() if info is not None else ""
    network = 1
    if not passport and info is not None:
        for email in (e for e in info.iter() if local(e.tag) == "ContactEmail"):
            kind = text(email, "contactEmailType")
            if kind in _NETWORK_EMAIL_TYPES:
                passport = text(email, "email").lower()
                network = _NETWORK_EMAIL_TYPES[kind]
                break
    deleted = _bool(text(el, "fDeleted", default="false"))
    if not contact_id or (not passport and not deleted and text(info, "contactType") != "Me"):
        return None
    groups = [g.text.strip() for g in children(find(el, "groupIds"), "guid") if g.text]
    return ABContact(
        contact_id=contact_id,
        passport=passport,
        display_name=text(info, "displayName") or passport,
        network=network,
        group_ids=groups,
        is_messenger_user=_bool(text(info, "isMessengerUser", default="true")),
        is_me=text(info, "contactType") == "Me",
        deleted=deleted,
    )


class AddressBookService:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        ticket: object,  # an async callable returning the contacts ticket (renewed)
        *,
        verify_tls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self._http = http
        self.url = url
        self._ticket = ticket
        self._verify_tls = verify_tls
        self._timeout = timeout

    async def _call(self, action: str, inner: str, scenario: str = "Timer") -> ET.Element:
        body = f'<{action} xmlns="{AB_NS}">{inner}</{action}>'

        async def attempt(ticket: str) -> ET.Element:
            return await post(
                self._http,
                self.url,
                action,
                _ACTION + action,
                envelope(_header(ticket, scenario), body),
                verify_tls=self._verify_tls,
                timeout=self._timeout,
            )

        return await with_ticket(self._ticket, attempt)  # type: ignore[arg-type]

    async def find_all(self, last_change: str | None = None) -> AddressBook:
        """ABFindAll: everything, or only what changed since ``last_change``."""
        delta = (
            f"<deltasOnly>true</deltasOnly><lastChange>{esc(last_change)}</lastChange>"
            if last_change
            else "<deltasOnly>false</deltasOnly>"
        )
        root = await self._call(
            "ABFindAll",
            f"<abId>{NIL_AB}</abId><abView>Full</abView>{delta}",
            "Initial" if not last_change else "Timer",
        )
        contacts = [
            c
            for c in (_parse_contact(el) for el in children(find(root, "contacts"), "Contact"))
            if c is not None
        ]
        groups = [
            ABGroup(
                text(el, "groupId"),
                text(el, "name"),
                _bool(text(el, "fDeleted", default="false")),
            )
            for el in children(find(root, "groups"), "Group")
        ]
        ab = find(root, "ab")
        return AddressBook(contacts, groups, text(ab, "lastChange") or (last_change or ""))

    async def contact_add(
        self, passport: str, display_name: str | None = None, network: int = 1
    ) -> str:
        """ABContactAdd; the new contact id."""
        if network == 1:
            who = (
                f"<contactType>LivePending</contactType><passportName>{esc(passport)}"
                "</passportName><isMessengerUser>true</isMessengerUser>"
            )
        else:
            who = (
                "<emails><ContactEmail><contactEmailType>Messenger2</contactEmailType>"
                f"<email>{esc(passport)}</email><isMessengerEnabled>true</isMessengerEnabled>"
                "<Capability>0</Capability><MessengerEnabledExternally>false"
                "</MessengerEnabledExternally><propertiesChanged/></ContactEmail></emails>"
            )
        name = f"<displayName>{esc(display_name)}</displayName>" if display_name else ""
        root = await self._call(
            "ABContactAdd",
            f"<abId>{NIL_AB}</abId><contacts><Contact><contactInfo>{who}{name}</contactInfo>"
            "</Contact></contacts><options><EnableAllowListManagement>true"
            "</EnableAllowListManagement></options>",
            "ContactSave",
        )
        return text(root, "guid")

    async def contact_delete(self, contact_id: str) -> None:
        await self._call(
            "ABContactDelete",
            f"<abId>{NIL_AB}</abId><contacts><Contact><contactId>{esc(contact_id)}</contactId>"
            "</Contact></contacts>",
        )

    async def update_own_name(self, display_name: str) -> None:
        """ABContactUpdate of the "Me" contact: the owner's display name."""
        await self._call(
            "ABContactUpdate",
            f"<abId>{NIL_AB}</abId><contacts><Contact><contactInfo><contactType>Me"
            f"</contactType><displayName>{esc(display_name)}</displayName></contactInfo>"
            "<propertiesChanged>DisplayName</propertiesChanged></Contact></contacts>",
        )

    async def group_add(self, name: str) -> str:
        root = await self._call(
            "ABGroupAdd",
            f"<abId>{NIL_AB}</abId><groupAddOptions><fRenameOnMsgrConflict>false"
            "</fRenameOnMsgrConflict></groupAddOptions><groupInfo><GroupInfo>"
            f"<name>{esc(name)}</name><groupType>{_GROUP_TYPE}</groupType>"
            "<fMessenger>false</fMessenger></GroupInfo></groupInfo>",
            "GroupSave",
        )
        return text(root, "guid")

    async def group_delete(self, group_id: str) -> None:
        await self._call(
            "ABGroupDelete",
            f"<abId>{NIL_AB}</abId><groupFilter><groupIds><guid>{esc(group_id)}</guid>"
            "</groupIds></groupFilter>",
        )

    async def group_update(self, group_id: str, name: str) -> None:
        await self._call(
            "ABGroupUpdate",
            f"<abId>{NIL_AB}</abId><groups><Group><groupId>{esc(group_id)}</groupId>"
            f"<groupInfo><name>{esc(name)}</name></groupInfo>"
            "<propertiesChanged>GroupName</propertiesChanged></Group></groups>",
            "GroupSave",
        )

    async def group_contact_add(self, group_id: str, contact_id: str) -> None:
        await self._call(
            "ABGroupContactAdd",
            f"<abId>{NIL_AB}</abId><groupFilter><groupIds><guid>{esc(group_id)}</guid>"
            f"</groupIds></groupFilter><contacts><Contact><contactId>{esc(contact_id)}"
            "</contactId></Contact></contacts>",
            "GroupSave",
        )

    async def group_contact_delete(self, group_id: str, contact_id: str) -> None:
        await self._call(
            "ABGroupContactDelete",
            f"<abId>{NIL_AB}</abId><contacts><Contact><contactId>{esc(contact_id)}"
            f"</contactId></Contact></contacts><groupFilter><groupIds><guid>"
            f"{esc(group_id)}</guid></groupIds></groupFilter>",
            "GroupSave",
        )
