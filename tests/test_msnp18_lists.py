"""Every list operation of the client on MSNP13-18: the SOAP services change the server's
address book and memberships, ADL/RML tell the notification server, the model follows,
and the other side hears of it."""

from __future__ import annotations

import asyncio

import pytest

from puppets import Lists
from puppets.event.contact import AddedBy, ContactAdded, GroupAdded, RemovedBy
from puppets.soap import SoapFault
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    msnp18_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

VERSIONS = list(range(13, 19))


def _names(version: int) -> tuple[str, str, str]:
    return f"o{version}@example.com", f"p{version}@example.com", f"f{version}@example.com"


@pytest.mark.parametrize("version", VERSIONS)
async def test_list_operations(server: MSNPTestServer, version: int) -> None:
    owner, pal, fan = _names(version)
    server.add_account(owner, "pw", nick="Owner")
    server.add_account(pal, "pw", nick="Pal")
    server.add_account(fan, "pw", nick="Fan")
    server.add_contact(fan, owner, lists=("FL", "AL"))  # fan added the owner: Pending
    client, rec = await online_client(
        server, owner, "pw", min_version=version, max_version=version, reconnect=False
    )
    other, other_rec = await online_client(
        server, pal, "pw", min_version=version, max_version=version, reconnect=False
    )
    acc = server.account(owner)
    try:
        assert client.contacts.get(fan).on(Lists.PL)
        # add: ABContactAdd + AddMember Allow + ADL; the pal hears of it
        await client.add_contact(pal, nick="My Pal")
        assert acc.on("FL", pal) and acc.on("AL", pal)
        c = client.contacts.get(pal)
        assert c.on(Lists.FL | Lists.AL) and c.guid == acc.contacts[pal].guid
        added = await other_rec.wait_for(AddedBy, lambda e: e.passport == owner)
        assert added.nick == "Owner"
        assert server.account(pal).on("RL", owner)
        # groups: add, put the pal in, rename, take out, remove
        gid = await client.add_group("Mates")
        assert rec.of(GroupAdded)[-1].id == gid
        assert acc.group_by_guid(gid).name == "Mates"
        await client.add_contact(pal, group=gid)
        assert gid in client.contacts.get(pal).groups
        assert acc.group_by_guid(gid).id in acc.contacts[pal].groups
        await client.rename_group(gid, "Best mates")
        assert acc.group_by_guid(gid).name == "Best mates"
        assert client.contacts.groups[gid].name == "Best mates"
        await client.remove_contact(pal, group=gid)
        assert gid not in client.contacts.get(pal).groups and acc.on("FL", pal)
        await client.remove_group(gid)
        assert acc.group_by_guid(gid) is None and gid not in client.contacts.groups
        with pytest.raises(SoapFault) as fault:
            await client.remove_group(gid)
        assert fault.value.code == "GroupDoesNotExist"
        # block and unblock: DeleteMember/AddMember + RML/ADL
        await client.block(pal)
        assert acc.on("BL", pal) and not acc.on("AL", pal)
        assert client.contacts.get(pal).on(Lists.BL)
        await client.unblock(pal)
        assert acc.on("AL", pal) and not acc.on("BL", pal)
        # remove: ABContactDelete + RML; the pal hears of it
        await client.remove_contact(pal)
        assert not acc.on("FL", pal) and not client.contacts.get(pal).on(Lists.FL)
        await other_rec.wait_for(RemovedBy, lambda e: e.passport == owner)
        # accept the fan: Allow + address book
        await client.accept(fan)
        assert acc.on("AL", fan) and acc.on("FL", fan)
        f = client.contacts.get(fan)
        assert f.on(Lists.FL | Lists.AL) and not f.on(Lists.PL)
        assert any(e.passport == fan and e.list is Lists.FL for e in rec.of(ContactAdded))
        # adding someone twice is the service's own fault code
        assert client.ns is not None
        with pytest.raises(SoapFault) as fault:
            await client.ns.add_to_list(fan, Lists.FL)
        assert fault.value.code == "ContactAlreadyExists"
        # own display name: ABContactUpdate of the Me contact (and PRP MFN)
        await client.set_nick("New Owner Name")
        assert acc.nick == "New Owner Name"
    finally:
        await client.stop()
        await other.stop()
    # A new login sees the same list the operations left.
    again, _ = await online_client(
        server, owner, "pw", min_version=version, max_version=version, reconnect=False
    )
    try:
        assert again.contacts.get(fan).on(Lists.FL | Lists.AL)
        p = again.contacts.get(pal)
        assert p is not None and not p.on(Lists.FL) and p.on(Lists.AL)
        assert again.contacts.own_nick == "New Owner Name"
    finally:
        await again.stop()


async def test_revoked_tokens_are_renewed_once(server: MSNPTestServer) -> None:
    """Tokens the server expires early (TicketExpired, AuthenticationFailed) are fetched
    again once and the call retried: list operations, OIM and RSI keep working."""
    owner, pal, _fan = _names(99)
    server.add_account(owner, "pw", nick="Owner")
    server.add_account(pal, "pw", nick="Pal")
    metadata = server.stats.soap["GetMetadata"]
    client, _rec = await online_client(server, owner, "pw", reconnect=False)
    try:
        # Let the login's own look for offline messages finish first.
        async with asyncio.timeout(10):
            while server.stats.soap["GetMetadata"] == metadata:  # noqa: ASYNC110 - server state
                await asyncio.sleep(0.05)
        fetches = client.services.tokens.fetches
        server.expire_tokens(owner)
        await client.add_group("After expiry")  # address book
        assert client.services.tokens.fetches == fetches + 1
        server.expire_tokens(owner)
        await client.block(pal)  # sharing
        server.expire_tokens(owner)
        result = await client.send_offline(pal, "stored after expiry")  # OIM
        assert result.ok, result.reason
        server.expire_tokens(owner)
        assert await client.offline.fetch() == 0  # RSI
        assert client.services.tokens.fetches == fetches + 4
    finally:
        await client.stop()
