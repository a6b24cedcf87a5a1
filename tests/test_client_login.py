"""Every MSNP version from 2 to 12 logs in to the test server and syncs the same
500-contact list (with groups where the version has them) into one model."""

from __future__ import annotations

import pytest

from puppets import AuthenticationError, Client, Lists
from puppets.event.contact import ContactListSynced, PresenceChanged
from puppets.event.session import LoggedIn, SessionState
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import Recorder, make_config, online_client

OWNER = "owner@example.com"
CONTACTS = 500
GROUPS = ("Friends", "Work", "Família & co")


def _contact(i: int) -> str:
    return f"contact{i:03d}@example.com"


@pytest.fixture(scope="module")
async def server():
    srv = MSNPTestServer(versions=(2, 12))
    await srv.start()
    srv.add_account(OWNER, "owner-pw", nick="The Owner")
    for name in GROUPS:
        srv.add_group(OWNER, name)
    for i in range(CONTACTS):
        passport = _contact(i)
        srv.add_account(passport, f"pw{i}", nick=f"Contact {i} ñ")
        lists: tuple[str, ...] = ("FL", "AL") if i % 10 else ("FL", "BL")
        groups = (GROUPS[i % len(GROUPS)],) if i % 7 else ()
        srv.add_contact(OWNER, passport, lists=lists, groups=groups)
    # Someone who added the owner but whom the owner has not added back: RL only.
    srv.add_account("fan@example.com", "fan-pw", nick="Fan")
    srv.add_contact("fan@example.com", OWNER, lists=("FL", "AL"))
    yield srv
    await srv.stop()


def _model(client: Client, with_groups: bool) -> dict[str, tuple[str, int, frozenset[str]]]:
    names = {g.id: g.name for g in client.contacts.groups.values()}
    return {
        c.passport: (
            c.nick,
            int(c.lists & (Lists.FL | Lists.AL | Lists.BL | Lists.RL)),
            frozenset(names[g] for g in c.groups) if with_groups else frozenset(),
        )
        for c in client.contacts.contacts.values()
    }


def _expected(with_groups: bool) -> dict[str, tuple[str, int, frozenset[str]]]:
    out = {}
    for i in range(CONTACTS):
        bits = Lists.FL | (Lists.AL if i % 10 else Lists.BL)
        groups = frozenset({GROUPS[i % len(GROUPS)]}) if (i % 7 and with_groups) else frozenset()
        out[_contact(i)] = (f"Contact {i} ñ", int(bits), groups)
    out["fan@example.com"] = ("Fan", int(Lists.RL), frozenset())
    return out


@pytest.mark.parametrize("version", range(2, 13))
async def test_every_version_logs_in_and_syncs_the_same_list(server, version):
    client, events = await online_client(
        server, OWNER, "owner-pw", min_version=version, max_version=version
    )
    try:
        assert client.protocol == version
        assert client.state is SessionState.ONLINE
        logged = events.of(LoggedIn)[0]
        assert logged.protocol == version
        with_groups = version >= 7
        assert _model(client, with_groups) == _expected(with_groups)
        if with_groups:
            names = {g.name for g in client.contacts.groups.values()}
            assert set(GROUPS) <= names  # MSNP7-9 servers also list group 0
        synced = events.of(ContactListSynced)[0]
        assert synced.contacts == CONTACTS + 1
        assert client.contacts.own_nick == "The Owner"
        assert client.contacts.blp in ("AL", "BL") and client.contacts.gtc in ("A", "N")
    finally:
        await client.stop()
    assert client.state is SessionState.STOPPED


async def test_initial_presence_burst(server):
    server.set_presence(_contact(1), "AWY")
    server.set_presence(_contact(2), "NLN")
    try:
        client, events = await online_client(server, OWNER, "owner-pw")
        try:
            away = await events.wait_for(PresenceChanged, lambda e: e.passport == _contact(1))
            assert away.status == "AWY" and away.initial
            assert client.contacts.get(_contact(2)).status == "NLN" or await events.wait_for(
                PresenceChanged, lambda e: e.passport == _contact(2)
            )
            # Blocked contacts (i % 10 == 0) are on BL, and the owner's FLs are all there.
            assert client.contacts.get(_contact(3)).status == "FLN"
        finally:
            await client.stop()
    finally:
        server.set_presence(_contact(1), "FLN")
        server.set_presence(_contact(2), "FLN")


@pytest.mark.parametrize("version", [6, 9, 12])
async def test_wrong_password_is_refused_without_retrying(server, version):
    client = Client(make_config(server, OWNER, "wrong", min_version=version, max_version=version))
    events = Recorder(client)
    await client.start()
    with pytest.raises(AuthenticationError):
        await client.wait_online(timeout=15)
    assert client.state is SessionState.STOPPED
    assert not [e for e in events.events if getattr(e, "state", None) is SessionState.BACKING_OFF]
    await client.stop()


async def test_unknown_account_is_refused(server):
    client = Client(make_config(server, "nobody@example.com", "x"))
    await client.start()
    with pytest.raises(AuthenticationError):
        await client.wait_online(timeout=15)
    await client.stop()
