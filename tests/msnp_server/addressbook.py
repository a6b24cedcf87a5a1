"""The address book (``abservice.asmx``) and sharing (``SharingService.asmx``) services
of MSNP13-18 over the same data model as the MSNP2-12 lists: the AB is the forward list
with its groups, the memberships are AL (Allow), BL (Block), RL (Reverse) and Pending
(on RL, on neither AL nor BL). Every change carries a time, so ``ABFindAll`` can answer
with only what changed since the client's last-change time."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from . import ml
from .accounts import Account, valid_passport
from .soap import answer, esc, fault, find, findall, text

if TYPE_CHECKING:
    from .hub import Hub

AB_NS = "http://www.msn.com/webservices/AddressBook"
CONTACTS_SERVICE = "contacts.msn.com"
MAX_GROUP_NAME = 61


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_stamp(value: str) -> float | None:
    value = value.strip().rstrip("Z")
    if "." in value:
        head, frac = value.split(".", 1)
        value = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _ab_fault(errorcode: str, message: str) -> web.Response:
    return fault("soap:Client", message, errorcode=errorcode)


def _account(hub: Hub, root: ET.Element) -> Account | web.Response:
    ticket = text(root, "TicketToken")
    token = hub.sso_tokens.check(ticket, CONTACTS_SERVICE)
    if token is None:
        known = ticket in hub.sso_tokens.tokens
        return _ab_fault(
            "TicketExpired" if known else "BadPassportCredentials",
            "The ticket has expired" if known else "The ticket is not valid",
        )
    return hub.directory[token.passport]


def _contact_xml(owner: Account, passport: str) -> str:
    entry = owner.contacts[passport]
    groups = "".join(
        f"<guid>{owner.groups[g].guid}</guid>" for g in sorted(entry.groups) if g in owner.groups
    )
    if entry.network == 1:
        who = f"<passportName>{esc(passport)}</passportName><isMessengerUser>true</isMessengerUser>"
    else:
        who = (
            "<isMessengerUser>false</isMessengerUser><emails><ContactEmail>"
            f"<contactEmailType>Messenger2</contactEmailType><email>{esc(passport)}</email>"
            "<isMessengerEnabled>true</isMessengerEnabled></ContactEmail></emails>"
        )
    return (
        f"<Contact><contactId>{entry.guid}</contactId><contactInfo>"
        f"<groupIds>{groups}</groupIds><contactType>Regular</contactType>"
        f"{who}<displayName>{esc(entry.nick)}</displayName></contactInfo>"
        f"<propertiesChanged /><fDeleted>false</fDeleted>"
        f"<lastChange>{stamp(entry.changed)}</lastChange></Contact>"
    )


def _find_all(owner: Account, since: float | None) -> str:
    contacts = []
    if since is None or owner.ab_changed > since:
        me = (
            f"<Contact><contactId>{owner.me_id}</contactId><contactInfo>"
            f"<contactType>Me</contactType><passportName>{esc(owner.passport)}</passportName>"
            f"<displayName>{esc(owner.nick)}</displayName></contactInfo>"
            "<fDeleted>false</fDeleted></Contact>"
        )
        contacts.append(me)
    for passport in sorted(owner.lists["FL"]):
        entry = owner.contacts.get(passport)
        if entry is not None and (since is None or entry.changed > since):
            contacts.append(_contact_xml(owner, passport))
    if since is not None:
        for guid, (passport, when) in owner.ab_deleted.items():
            if when > since and passport not in owner.lists["FL"]:
                contacts.append(
                    f"<Contact><contactId>{guid}</contactId><fDeleted>true</fDeleted></Contact>"
                )
    groups = [
        f"<Group><groupId>{g.guid}</groupId><groupInfo><name>{esc(g.name)}</name>"
        "<groupType>C8529CE2-6EAD-434d-881F-341E17DB3FF8</groupType></groupInfo>"
        "<fDeleted>false</fDeleted></Group>"
        for g in owner.groups.values()
        if g.id != 0
    ]
    if since is not None:
        groups += [
            f"<Group><groupId>{guid}</groupId><fDeleted>true</fDeleted></Group>"
            for guid, when in owner.groups_deleted.items()
            if when > since
        ]
    return (
        f'<ABFindAllResponse xmlns="{AB_NS}"><ABFindAllResult>'
        f"<groups>{''.join(groups)}</groups><contacts>{''.join(contacts)}</contacts>"
        f"<ab><abId>00000000-0000-0000-0000-000000000000</abId>"
        f"<lastChange>{stamp(owner.ab_changed)}</lastChange></ab>"
        "</ABFindAllResult></ABFindAllResponse>"
    )


def _touch(owner: Account) -> float:
    owner.ab_changed = max(time.time(), owner.ab_changed + 1e-6)
    owner.bump()
    return owner.ab_changed


def make_abch_handlers(hub: Hub):  # type: ignore[no-untyped-def]
    async def find_all(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        since = None
        if text(root, "deltasOnly").lower() == "true":
            since = parse_stamp(text(root, "lastChange"))
        return answer(_find_all(owner, since))

    async def contact_add(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        passport = text(root, "passportName").lower()
        network = 1
        if not passport:
            passport, network = text(root, "email").lower(), 32
        if not valid_passport(passport) or passport == owner.passport:
            return _ab_fault("InvalidPassportUser", f"invalid contact {passport!r}")
        if passport in owner.lists["FL"]:
            return _ab_fault("ContactAlreadyExists", "Contact Already Exists")
        other = hub.directory.get(passport) or hub.directory.add_account(passport, None)
        entry = owner.add_to("FL", other.passport, text(root, "displayName") or other.nick)
        entry.network = network
        entry.changed = _touch(owner)
        owner.ab_deleted.pop(entry.guid, None)
        # The other side learns of it when the owner's client sends ADL (see ml.py).
        body = (
            f'<ABContactAddResponse xmlns="{AB_NS}"><ABContactAddResult>'
            f"<guid>{entry.guid}</guid></ABContactAddResult></ABContactAddResponse>"
        )
        return answer(body)

    async def contact_delete(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        for cid in [t.text or "" for t in findall(root, "contactId")]:
            entry = owner.contact_by_guid(cid.strip())
            if entry is None:
                return _ab_fault("ContactDoesNotExist", "Contact Does Not Exist")
            owner.remove_from("FL", entry.passport)
            _touch(owner)
            ml.forward_removed(hub, owner, entry.passport)
        return answer(f'<ABContactDeleteResponse xmlns="{AB_NS}"/>')

    async def contact_update(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        if text(root, "contactType") != "Me":
            return _ab_fault("NotSupported", "only the Me contact can be updated here")
        name = text(root, "displayName")
        if not name or len(name.encode()) > 387:
            return _ab_fault("InvalidDisplayName", "invalid display name")
        owner.nick = name
        _touch(owner)
        return answer(f'<ABContactUpdateResponse xmlns="{AB_NS}"/>')

    async def group_add(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        name = text(root, "name")
        if not name or len(name.encode()) > MAX_GROUP_NAME:
            return _ab_fault("InvalidGroupName", "invalid group name")
        if any(g.name == name for g in owner.groups.values() if g.id != 0):
            return _ab_fault("GroupAlreadyExists", "Group Already Exists")
        group = owner.new_group(name)
        _touch(owner)
        body = (
            f'<ABGroupAddResponse xmlns="{AB_NS}"><ABGroupAddResult><guid>{group.guid}</guid>'
            "</ABGroupAddResult></ABGroupAddResponse>"
        )
        return answer(body)

    def _group(owner: Account, root: ET.Element):  # type: ignore[no-untyped-def]
        guid_el = find(root, "groupId")
        if guid_el is None:
            guid_el = find(root, "guid")
        guid = (guid_el.text or "").strip() if guid_el is not None else ""
        return owner.group_by_guid(guid)

    async def group_delete(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        group = _group(owner, root)
        if group is None:
            return _ab_fault("GroupDoesNotExist", "Group Does Not Exist")
        del owner.groups[group.id]
        now = _touch(owner)
        owner.groups_deleted[group.guid] = now
        for entry in owner.contacts.values():
            if group.id in entry.groups:
                entry.groups.discard(group.id)
                entry.changed = now
        return answer(f'<ABGroupDeleteResponse xmlns="{AB_NS}"/>')

    async def group_update(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        group = _group(owner, root)
        if group is None:
            return _ab_fault("GroupDoesNotExist", "Group Does Not Exist")
        name = text(root, "name")
        if not name or len(name.encode()) > MAX_GROUP_NAME:
            return _ab_fault("InvalidGroupName", "invalid group name")
        group.name = name
        _touch(owner)
        return answer(f'<ABGroupUpdateResponse xmlns="{AB_NS}"/>')

    async def _group_contact(root: ET.Element, add: bool) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        scope = find(root, "groupFilter")
        group = owner.group_by_guid(text(scope if scope is not None else root, "guid"))
        entry = owner.contact_by_guid(text(root, "contactId"))
        if group is None:
            return _ab_fault("GroupDoesNotExist", "Group Does Not Exist")
        if entry is None:
            return _ab_fault("ContactDoesNotExist", "Contact Does Not Exist")
        if add:
            if group.id in entry.groups:
                return _ab_fault("GroupContactAlreadyExists", "Contact already in group")
            entry.groups.add(group.id)
        else:
            if group.id not in entry.groups:
                return _ab_fault("GroupContactDoesNotExist", "Contact not in group")
            entry.groups.discard(group.id)
        entry.changed = _touch(owner)
        action = "ABGroupContactAdd" if add else "ABGroupContactDelete"
        result = f"<{action}Result><guid>{entry.guid}</guid></{action}Result>" if add else ""
        return answer(f'<{action}Response xmlns="{AB_NS}">{result}</{action}Response>')

    async def group_contact_add(request: web.Request, root: ET.Element) -> web.Response:
        return await _group_contact(root, True)

    async def group_contact_delete(request: web.Request, root: ET.Element) -> web.Response:
        return await _group_contact(root, False)

    return {
        "ABFindAll": find_all,
        "ABContactAdd": contact_add,
        "ABContactDelete": contact_delete,
        "ABContactUpdate": contact_update,
        "ABGroupAdd": group_add,
        "ABGroupDelete": group_delete,
        "ABGroupUpdate": group_update,
        "ABGroupContactAdd": group_contact_add,
        "ABGroupContactDelete": group_contact_delete,
    }


# --- sharing -----------------------------------------------------------------------

_ROLE_LISTS = {"Allow": "AL", "Block": "BL"}


def _member_xml(owner: Account, passport: str) -> str:
    entry = owner.contacts.get(passport)
    network = entry.network if entry is not None else 1
    if network == 1:
        who = (
            "<Type>Passport</Type><State>Accepted</State>"
            f"<PassportName>{esc(passport)}</PassportName>"
        )
        kind = "PassportMember"
    else:
        who = (
            f"<Type>Email</Type><State>Accepted</State><Email>{esc(passport)}</Email>"
            "<Annotations><Annotation><Name>MSN.IM.BuddyType</Name>"
            f"<Value>{network:02d}:</Value></Annotation></Annotations>"
        )
        kind = "EmailMember"
    other = owner.contacts.get(passport)
    name = f"<DisplayName>{esc(other.nick)}</DisplayName>" if other is not None else ""
    return f'<Member xsi:type="{kind}">{who}{name}<Deleted>false</Deleted></Member>'


def make_sharing_handlers(hub: Hub):  # type: ignore[no-untyped-def]
    async def find_membership(request: web.Request, root: ET.Element) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        pending = owner.lists["RL"] - owner.lists["AL"] - owner.lists["BL"]
        roles = {
            "Allow": owner.lists["AL"],
            "Block": owner.lists["BL"],
            "Reverse": owner.lists["RL"],
            "Pending": pending,
        }
        memberships = "".join(
            f"<Membership><MemberRole>{role}</MemberRole><Members>"
            + "".join(_member_xml(owner, p) for p in sorted(people))
            + "</Members></Membership>"
            for role, people in roles.items()
            if people
        )
        body = (
            f'<FindMembershipResponse xmlns="{AB_NS}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><FindMembershipResult>'
            "<Services><Service><Memberships>"
            f"{memberships}</Memberships><Info><Handle><Id>1</Id><Type>Messenger</Type>"
            "</Handle></Info>"
            f"<LastChange>{stamp(owner.ab_changed)}</LastChange></Service></Services>"
            "</FindMembershipResult></FindMembershipResponse>"
        )
        return answer(body)

    async def _member(root: ET.Element, add: bool) -> web.Response:
        owner = _account(hub, root)
        if isinstance(owner, web.Response):
            return owner
        role = text(root, "MemberRole")
        list_name = _ROLE_LISTS.get(role)
        if list_name is None and not (role == "Pending" and not add):
            return _ab_fault("InvalidMemberRole", f"cannot change role {role!r}")
        passport = (text(root, "PassportName") or text(root, "Email")).lower()
        if not valid_passport(passport):
            return _ab_fault("InvalidPassportUser", "invalid member")
        if role == "Pending":
            return answer(f'<DeleteMemberResponse xmlns="{AB_NS}"/>')
        assert list_name is not None
        on = owner.on(list_name, passport)
        if add and on:
            return _ab_fault("MemberAlreadyExists", "Member already exists")
        if not add and not on:
            return _ab_fault("MemberDoesNotExist", "Member does not exist")
        other = hub.directory.get(passport) or hub.directory.add_account(passport, None)
        before = hub.seen_by(owner)
        if add:
            if owner.on(ml.OPPOSITE[list_name], passport):
                return _ab_fault("MemberAlreadyExists", "Member is on the opposite list")
            owner.add_to(list_name, other.passport, other.nick)
        else:
            owner.remove_from(list_name, passport)
        _touch(owner)
        hub.announce(owner, before, changed=False)
        action = "AddMember" if add else "DeleteMember"
        return answer(f'<{action}Response xmlns="{AB_NS}"/>')

    async def add_member(request: web.Request, root: ET.Element) -> web.Response:
        return await _member(root, True)

    async def delete_member(request: web.Request, root: ET.Element) -> web.Response:
        return await _member(root, False)

    return {
        "FindMembership": find_membership,
        "AddMember": add_member,
        "DeleteMember": delete_member,
    }
