"""Presence, nick and personal-message changes, list operations and RL announcements,
between real puppet clients through the test server."""

from __future__ import annotations

import itertools

import pytest

from puppets import Lists, MSNPError, NotSupported
from puppets.event.contact import (
    AddedBy,
    ContactAdded,
    GroupAdded,
    GroupRemoved,
    GroupRenamed,
    PersonalMessageChanged,
    PresenceChanged,
)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import (
    add_friends,
    msnp12_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

_ids = itertools.count()


def _pair(server: MSNPTestServer) -> tuple[str, str]:
    n = next(_ids)
    return add_friends(
        server, f"alice{n}@example.com", f"bob{n}@example.com", ("Alice", "Bob"), ("pa", "pb")
    )


@pytest.mark.parametrize("version", [3, 7, 8, 10, 12])
async def test_presence_and_nick_changes_reach_the_contact(server, version):
    a, b = _pair(server)
    alice, alice_ev = await online_client(server, a, "pa", min_version=version, max_version=version)
    bob, _ = await online_client(server, b, "pb", min_version=version, max_version=version)
    try:
        online = await alice_ev.wait_for(PresenceChanged, lambda e: e.passport == b)
        assert online.status == "NLN"
        await bob.set_status("AWY")
        away = await alice_ev.wait_for(
            PresenceChanged, lambda e: e.passport == b and e.status == "AWY"
        )
        assert away.nick == "Bob"
        await bob.set_nick("Bob the Builder ☃")
        renamed = await alice_ev.wait_for(
            PresenceChanged, lambda e: e.passport == b and e.nick == "Bob the Builder ☃"
        )
        assert alice.contacts.get(b).nick == renamed.nick
        assert bob.contacts.own_nick == "Bob the Builder ☃"
        await bob.set_status("HDN")
        await alice_ev.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "FLN")
        await bob.set_status("BSY")
        await alice_ev.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "BSY")
        await bob.stop()
        await alice_ev.wait_for(
            PresenceChanged, lambda e: e.passport == b and e.status == "FLN", timeout=10
        )
        assert not alice.contacts.get(b).online
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize("version", [11, 12])
async def test_personal_message(server, version):
    a, b = _pair(server)
    alice, alice_ev = await online_client(server, a, "pa", max_version=version)
    bob, _ = await online_client(server, b, "pb", max_version=version)
    try:
        await bob.set_psm("at the <beach> & happy")
        psm = await alice_ev.wait_for(PersonalMessageChanged, lambda e: e.passport == b)
        assert psm.psm == "at the <beach> & happy"
    finally:
        await alice.stop()
        await bob.stop()


async def test_personal_message_needs_msnp11(server):
    a, _b = _pair(server)
    alice, _ = await online_client(server, a, "pa", max_version=10)
    try:
        with pytest.raises(NotSupported):
            await alice.set_psm("hello")
    finally:
        await alice.stop()


@pytest.mark.parametrize("version", [5, 8, 10, 12])
async def test_add_announces_rl_and_accept_block_unblock(server, version):
    n = next(_ids)
    a, c = f"adder{n}@example.com", f"target{n}@example.com"
    server.add_account(a, "pa", nick="Adder")
    server.add_account(c, "pc", nick="Target")
    adder, adder_ev = await online_client(server, a, "pa", max_version=version)
    target, target_ev = await online_client(server, c, "pc", max_version=version)
    try:
        await adder.add_contact(c)
        assert adder.contacts.get(c).on(Lists.FL) and adder.contacts.get(c).on(Lists.AL)
        added = await target_ev.wait_for(AddedBy, lambda e: e.passport == a)
        assert added.nick == "Adder"
        assert target.contacts.get(a).on(Lists.RL)
        await target.accept(a)
        assert target.contacts.get(a).on(Lists.AL) and target.contacts.get(a).on(Lists.FL)
        # The adder now sees the target online.
        await adder_ev.wait_for(PresenceChanged, lambda e: e.passport == c and e.status == "NLN")
        await target.block(a)
        entry = target.contacts.get(a)
        assert entry.on(Lists.BL) and not entry.on(Lists.AL)
        await adder_ev.wait_for(PresenceChanged, lambda e: e.passport == c and e.status == "FLN")
        await target.unblock(a)
        assert target.contacts.get(a).on(Lists.AL) and not target.contacts.get(a).on(Lists.BL)
        await adder_ev.wait_for(
            PresenceChanged, lambda e: e.passport == c and e.status == "NLN" and not e.initial
        )
        await adder.remove_contact(c)
        assert not adder.contacts.get(c).on(Lists.FL)
        # Adding someone twice is an MSNP error with its meaning.
        await adder.add_contact(c)
        with pytest.raises(MSNPError) as info:
            await adder.ns.add_to_list(c, Lists.FL)
        assert info.value.code == 215 or info.value.code == 216
        assert info.value.meaning
        assert adder_ev.of(ContactAdded)
    finally:
        await adder.stop()
        await target.stop()


@pytest.mark.parametrize("version", [7, 9, 10, 12])
async def test_groups(server, version):
    a, b = _pair(server)
    alice, events = await online_client(server, a, "pa", max_version=version)
    try:
        gid = await alice.add_group("Best friends")
        assert (await events.wait_for(GroupAdded)).name == "Best friends"
        assert alice.contacts.groups[gid].name == "Best friends"
        await alice.add_contact(b, group=gid)
        assert gid in alice.contacts.get(b).groups
        await alice.rename_group(gid, "Old friends")
        assert (await events.wait_for(GroupRenamed)).name == "Old friends"
        assert alice.contacts.groups[gid].name == "Old friends"
        await alice.remove_contact(b, group=gid)
        assert gid not in alice.contacts.get(b).groups
        await alice.remove_group(gid)
        await events.wait_for(GroupRemoved)
        assert gid not in alice.contacts.groups
    finally:
        await alice.stop()
    # What the server stored agrees with what the client believes.
    assert all(g.name != "Old friends" for g in server.account(a).groups.values())
