"""MSNP13-18 against the test server: login (TWN for 13-14, SSO for 15-18), the contact
list from the address book and sharing services, delta sync, strictness."""

from __future__ import annotations

import asyncio

import pytest

from puppets import AuthenticationError, Client, Lists
from puppets.event.contact import ContactListSynced, PresenceChanged
from puppets.event.session import ChallengeAnswered, LoggedIn
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import make_config, online_client

VERSIONS = list(range(13, 19))
OWNER = "owner@example.com"


@pytest.fixture(scope="module")
async def server():
    srv = MSNPTestServer(versions=(2, 18))
    await srv.start()
    srv.add_account(OWNER, "owner-pw", nick="The Owner")
    srv.add_group(OWNER, "Friends")
    srv.add_group(OWNER, "Work")
    for i in range(20):
        srv.add_account(f"c{i}@example.com", f"pw{i}", nick=f"Contact {i}")
        lists = ("FL", "AL") if i % 5 else ("FL", "BL")
        groups = (("Friends", "Work")[i % 2],) if i % 3 else ()
        srv.add_contact(OWNER, f"c{i}@example.com", lists=lists, groups=groups)
    srv.add_account("fan@example.com", "fan-pw", nick="Fan")
    srv.add_contact("fan@example.com", OWNER, lists=("FL", "AL"))
    # A Yahoo contact (network 32) in the address book: kept, not dropped.
    srv.add_contact(OWNER, "yahoo@yahoo.example", lists=("FL", "AL"))
    srv.account(OWNER).contacts["yahoo@yahoo.example"].network = 32
    srv.set_presence("c1@example.com", "AWY", caps=0x40)
    yield srv
    await srv.stop()


@pytest.mark.parametrize("version", VERSIONS)
async def test_login_and_contact_list(server: MSNPTestServer, version: int) -> None:
    client, rec = await online_client(
        server, OWNER, "owner-pw", min_version=version, max_version=version, reconnect=False
    )
    try:
        logged = rec.of(LoggedIn)[0]
        assert logged.protocol == version
        synced = rec.of(ContactListSynced)[0]
        assert synced.groups == 2
        cl = client.contacts
        fl = {c.passport for c in cl.on_list(Lists.FL)}
        assert fl == {f"c{i}@example.com" for i in range(20)} | {"yahoo@yahoo.example"}
        assert cl.get("yahoo@yahoo.example").network == 32
        assert cl.get("c0@example.com").on(Lists.BL) and not cl.get("c0@example.com").on(Lists.AL)
        assert cl.get("c1@example.com").on(Lists.AL)
        fan = cl.get("fan@example.com")
        assert fan is not None and fan.on(Lists.RL) and fan.on(Lists.PL) and not fan.on(Lists.FL)
        friends = cl.group_by_name("Friends")
        assert friends is not None and friends.id in cl.get("c2@example.com").groups
        assert cl.own_nick == "The Owner"
        # Presence of an online contact arrives after the list (NLN on MSNP18, ILN before).
        await rec.wait_for(PresenceChanged, lambda e: e.passport == "c1@example.com")
        assert cl.get("c1@example.com").status == "AWY"
        assert server.stats.logins[version] >= 1
        # CHL after the first CHG, answered with this version's product id and key.
        await rec.wait_for(ChallengeAnswered)  # the one after login
        qry_ok, answered = server.stats.qry_ok, len(rec.of(ChallengeAnswered))
        server.challenge(OWNER)
        await rec.until(lambda: len(rec.of(ChallengeAnswered)) > answered)
        assert rec.of(ChallengeAnswered)[-1].protocol == version
        assert server.stats.qry_ok >= qry_ok + 1 and server.stats.qry_failed == 0
    finally:
        await client.stop()


async def test_delta_sync_fetches_only_changes(server: MSNPTestServer) -> None:
    client, _rec = await online_client(
        server, OWNER, "owner-pw", min_version=18, max_version=18, reconnect=False
    )
    try:
        first = client.contacts.ab_last_change
        assert first
        await client.stop()
        server.add_account("late@example.com", "late-pw", nick="Late")
        server.add_contact(OWNER, "late@example.com", lists=("FL", "AL"))
        server.account(OWNER).remove_from("FL", "c19@example.com")
        # The same Client logs in again: ABFindAll asks for the changes since ``first``.
        requests_before = server.stats.soap["ABFindAll"]
        await client.start()
        await client.wait_online(timeout=15)
        assert server.stats.soap["ABFindAll"] == requests_before + 1
        cl = client.contacts
        assert cl.ab_last_change != first
        assert cl.get("late@example.com").on(Lists.FL)
        gone = cl.get("c19@example.com")
        assert gone is None or not gone.on(Lists.FL)
        assert cl.get("c3@example.com").on(Lists.FL)  # unchanged entries stay
    finally:
        await client.stop()
        server.account(OWNER).remove_from("FL", "late@example.com")
        server.add_contact(OWNER, "c19@example.com", lists=("FL", "AL"))


@pytest.mark.parametrize("version", [13, 15, 18])
async def test_wrong_password(server: MSNPTestServer, version: int) -> None:
    client = Client(
        make_config(
            server, OWNER, "wrong", min_version=version, max_version=version, reconnect=False
        )
    )
    await client.start()
    with pytest.raises(AuthenticationError):
        await client.wait_online(timeout=15)
    await client.stop()


async def test_default_offer_reaches_18(server: MSNPTestServer) -> None:
    client, _rec = await online_client(server, OWNER, "owner-pw", reconnect=False)
    try:
        assert client.protocol == 18
    finally:
        await client.stop()


async def test_ver_up_to_12_still_works(server: MSNPTestServer) -> None:
    client, _rec = await online_client(server, OWNER, "owner-pw", max_version=12, reconnect=False)
    try:
        assert client.protocol == 12
        assert client.contacts.get("c5@example.com").on(Lists.FL)
    finally:
        await client.stop()
    await asyncio.sleep(0)


def test_adl_payloads_are_chunked() -> None:
    from puppets.ablists import ML_CHUNK, ml_payload

    entries = [(f"user{i:04d}@d{i % 7}.example.com", 3, 1) for i in range(1000)]
    payloads = ml_payload(entries, initial=True)
    assert len(payloads) > 1
    assert all(len(p) < ML_CHUNK + 200 for p in payloads)
    assert all(p.startswith(b'<ml l="1">') for p in payloads)
    joined = b"".join(payloads).decode()
    assert all(f'n="user{i:04d}"' in joined for i in range(1000))


async def test_a_long_list_logs_in_on_18() -> None:
    """500 contacts: the initial ADL comes in several payloads, all accepted."""
    async with MSNPTestServer(versions=(2, 18)) as srv:
        srv.add_account("big@example.com", "pw")
        for i in range(500):
            srv.add_contact("big@example.com", f"friend{i:03d}@example.com")
        client, _rec = await online_client(srv, "big@example.com", "pw", reconnect=False)
        try:
            assert len(client.contacts.on_list(Lists.FL)) == 500
        finally:
            await client.stop()
