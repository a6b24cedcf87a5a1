"""The sharing service (``SharingService.asmx``): the Allow, Block, Reverse and Pending
memberships of the Messenger service."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import aiohttp

from .addressbook import AB_NS, _header
from .base import children, envelope, esc, find, local, post, text, with_ticket

ROLES = ("Allow", "Block", "Reverse", "Pending")


@dataclass(frozen=True, slots=True)
class Member:
    role: str  # Allow, Block, Reverse, Pending
    passport: str
    display_name: str = ""
    network: int = 1
    deleted: bool = False


@dataclass(slots=True)
class Memberships:
    members: list[Member]
    last_change: str


def _member_xml(passport: str, network: int) -> str:
    if network == 1:
        return (
            '<Member xsi:type="PassportMember"><Type>Passport</Type><State>Accepted</State>'
            f"<PassportName>{esc(passport)}</PassportName></Member>"
        )
    return (
        '<Member xsi:type="EmailMember"><Type>Email</Type><State>Accepted</State>'
        f"<Email>{esc(passport)}</Email><Annotations><Annotation><Name>MSN.IM.BuddyType"
        f"</Name><Value>{network:02d}:</Value></Annotation></Annotations></Member>"
    )


def _parse_member(role: str, el: ET.Element) -> Member | None:
    kind = text(el, "Type")
    network = 1
    if kind == "Passport":
        passport = text(el, "PassportName")
    elif kind == "Email":
        passport = text(el, "Email")
        network = 32
        for ann in (a for a in el.iter() if local(a.tag) == "Annotation"):
            if text(ann, "Name") == "MSN.IM.BuddyType":
                value = text(ann, "Value").rstrip(":")
                network = int(value) if value.isdigit() else 32
    else:
        return None
    if not passport:
        return None
    deleted = text(el, "Deleted", default="false").lower() == "true"
    return Member(role, passport.lower(), text(el, "DisplayName"), network, deleted)


class SharingService:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        ticket: object,
        *,
        verify_tls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self._http = http
        self.url = url
        self._ticket = ticket
        self._verify_tls = verify_tls
        self._timeout = timeout

    async def _call(self, action: str, inner: str, scenario: str) -> ET.Element:
        body = f'<{action} xmlns="{AB_NS}">{inner}</{action}>'

        async def attempt(ticket: str) -> ET.Element:
            return await post(
                self._http,
                self.url,
                action,
                f"{AB_NS}/{action}",
                envelope(_header(ticket, scenario), body),
                verify_tls=self._verify_tls,
                timeout=self._timeout,
            )

        return await with_ticket(self._ticket, attempt)  # type: ignore[arg-type]

    async def find_membership(self, last_change: str | None = None) -> Memberships:
        delta = (
            f"<View>Full</View><deltasOnly>true</deltasOnly><lastChange>{esc(last_change)}"
            "</lastChange>"
            if last_change
            else ""
        )
        root = await self._call(
            "FindMembership",
            "<serviceFilter><Types><ServiceType>Messenger</ServiceType>"
            f"<ServiceType>SocialNetwork</ServiceType></Types></serviceFilter>{delta}",
            "Initial" if not last_change else "Timer",
        )
        members: list[Member] = []
        for membership in (el for el in root.iter() if local(el.tag) == "Membership"):
            role = text(membership, "MemberRole")
            if role not in ROLES:
                continue
            for el in children(find(membership, "Members"), "Member"):
                member = _parse_member(role, el)
                if member is not None:
                    members.append(member)
        return Memberships(members, text(root, "LastChange") or (last_change or ""))

    async def _members(self, action: str, role: str, passport: str, network: int) -> None:
        await self._call(
            action,
            "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId>"
            f"</serviceHandle><memberships><Membership><MemberRole>{esc(role)}</MemberRole>"
            f"<Members>{_member_xml(passport, network)}</Members></Membership></memberships>",
            "BlockUnblock" if role == "Block" else "ContactSave",
        )

    async def add_member(self, role: str, passport: str, network: int = 1) -> None:
        await self._members("AddMember", role, passport, network)

    async def delete_member(self, role: str, passport: str, network: int = 1) -> None:
        await self._members("DeleteMember", role, passport, network)
