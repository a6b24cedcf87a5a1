"""Challenges on every version, keepalive, reconnecting after a server restart, OUT OTH,
and malformed server input that must never crash or hang the process."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puppets import SignedOutElsewhere
from puppets.event.contact import PresenceChanged
from puppets.event.conversation import DeliveryStatus, MessageReceived
from puppets.event.session import (
    ChallengeAnswered,
    ServerSignedOut,
    SessionState,
    SessionStateChanged,
)
from tests.msnp_server import MSNPTestServer
from tests.puppet_helpers import online_client

_ids = itertools.count()


def _account(server: MSNPTestServer, name: str = "user") -> str:
    passport = f"{name}{next(_ids)}@example.com"
    server.add_account(passport, "pw", nick=name)
    return passport


@pytest.mark.parametrize("version", range(6, 13))
async def test_challenge_answered_on_every_version(version):
    server = MSNPTestServer(versions=(2, 12), send_chl=True, chl_interval=0.5)
    await server.start()
    try:
        p = _account(server)
        client, events = await online_client(server, p, "pw", max_version=version)
        try:
            await events.until(lambda: len(events.of(ChallengeAnswered)) >= 2)
            assert client.state is SessionState.ONLINE
            stats = server.stats.as_dict()
            assert stats["qry_ok"] >= 2 and stats["qry_failed"] == 0
        finally:
            await client.stop()
    finally:
        await server.stop()


async def test_wrong_product_key_gets_540_and_disconnect():
    server = MSNPTestServer(versions=(2, 12), send_chl=True)
    await server.start()
    try:
        p = _account(server)
        client, events = await online_client(
            server, p, "pw", product_key="NOT-THE-RIGHT-KEY", backoff_initial=30
        )
        try:
            await events.wait_for(
                SessionStateChanged, lambda e: e.state is SessionState.BACKING_OFF
            )
            assert server.stats.as_dict()["qry_failed"] >= 1
        finally:
            await client.stop()
    finally:
        await server.stop()


async def test_server_without_chl_is_fine():
    server = MSNPTestServer(versions=(2, 12), send_chl=False)
    await server.start()
    try:
        client, events = await online_client(server, _account(server), "pw")
        await client.stop()
        assert not events.of(ChallengeAnswered)
    finally:
        await server.stop()


async def test_keepalive_follows_qng_and_dead_link_is_detected():
    server = MSNPTestServer(versions=(2, 12), qng_interval=1)
    await server.start()
    try:
        p = _account(server)
        client, _ = await online_client(server, p, "pw", ping_interval=1)
        try:
            await asyncio.sleep(2.5)
            assert server.stats.as_dict()["pings"] >= 2
            assert client.state is SessionState.ONLINE
        finally:
            await client.stop()
    finally:
        await server.stop()


async def test_session_survives_a_server_restart():
    server = MSNPTestServer(versions=(2, 12))
    await server.start()
    try:
        a, b = _account(server, "alice"), _account(server, "bob")
        server.add_contact(a, b, lists=("FL", "AL"))
        server.add_contact(b, a, lists=("FL", "AL"))
        alice, alice_ev = await online_client(server, a, "pw")
        bob, _ = await online_client(server, b, "pw")
        await alice.set_status("BSY")
        await server.stop(graceful=True)
        await alice_ev.wait_for(ServerSignedOut)
        await alice_ev.wait_for(SessionStateChanged, lambda e: e.state is SessionState.BACKING_OFF)
        await asyncio.sleep(0.5)
        await server.start()
        await alice.wait_online(timeout=15)
        await bob.wait_online(timeout=15)
        # State the owner chose is restored after the reconnect.
        await alice_ev.until(lambda: server.account(a).status == "BSY")
        assert alice.contacts.get(b) is not None
        await alice_ev.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "NLN")
        await alice.stop()
        await bob.stop()
    finally:
        await server.stop()


async def test_out_oth_stops_without_reconnecting():
    server = MSNPTestServer(versions=(2, 12))
    await server.start()
    try:
        p = _account(server)
        first, first_ev = await online_client(server, p, "pw")
        second, _ = await online_client(server, p, "pw")
        out = await first_ev.wait_for(ServerSignedOut)
        assert out.elsewhere
        await first_ev.wait_for(SessionStateChanged, lambda e: e.state is SessionState.STOPPED)
        assert isinstance(first.error, SignedOutElsewhere)
        await asyncio.sleep(1.0)  # a reconnect would kick the second session out
        assert second.state is SessionState.ONLINE
        assert server.online_sessions(p) == 1
        await first.stop()
        await second.stop()
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def fuzz_server():
    server = MSNPTestServer(versions=(2, 12))
    await server.start()
    yield server
    await server.stop()


_junk = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"MSG Hotmail Hotmail 99999999\r\n",
            b"MSG Hotmail Hotmail abc\r\n",
            b"MSG Hotmail Hotmail 40\r\nshort",
            b"NLN NLN\r\n",
            b"ILN\r\n",
            b"LST\r\n",
            b"ADC 0 RL\r\n",
            b"RNG 1 nowhere CKI\r\n",
            b"UBX x@y.z 20\r\n<Data><PSM>\xff\xfe</PS",
            b"XYZ 1 2 3\r\n",
            b"\xff\xfe\xfd\r\n",
            b"A" * 20000,
            b"NLN NLN a@b.c " + "é".encode() * 3 + b" 0\r\n",
            b"CHL 0\r\n",
            b"QNG x\r\n",
            b"OUT\r\n",
        ]
    ).map(lambda b: b),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.lists(_junk, min_size=1, max_size=3))
async def test_malformed_server_input_never_crashes(fuzz_server, junk):
    victim = _account(fuzz_server, "victim")
    bystander = _account(fuzz_server, "bystander")
    v, _ = await online_client(fuzz_server, victim, "pw", timeout=3)
    b, _ = await online_client(fuzz_server, bystander, "pw", timeout=3)
    try:
        for chunk in junk:
            await fuzz_server.inject(victim, chunk)
        await asyncio.sleep(0.05)
        # The victim either shrugged it off or is reconnecting; never crashed or stopped
        # (OUT without OTH is a server sign-out and also reconnects).
        assert v.state is not SessionState.STOPPED or v.error is None
        await v.wait_online(timeout=10)
        assert b.state is SessionState.ONLINE
    finally:
        await v.stop()
        await b.stop()


async def test_message_sent_while_reconnecting_is_delivered_once_back():
    server = MSNPTestServer(versions=(2, 12))
    await server.start()
    try:
        a, b = _account(server, "alice"), _account(server, "bob")
        server.add_contact(a, b, lists=("FL", "AL"))
        server.add_contact(b, a, lists=("FL", "AL"))
        # Bob comes back well before Alice (who sends while down), so the message finds him.
        alice, alice_ev = await online_client(server, a, "pw", backoff_initial=3.0, backoff_max=5.0)
        bob, bob_ev = await online_client(server, b, "pw", backoff_initial=0.2, backoff_max=0.3)
        await server.stop()
        await alice_ev.wait_for(SessionStateChanged, lambda e: e.state is not SessionState.ONLINE)
        sending = asyncio.create_task(alice.conversation([b]).send_text("sent while down"))
        await asyncio.sleep(0.5)
        assert not sending.done()
        await server.start()
        await bob.wait_online(timeout=10)
        assert not sending.done()
        result = await asyncio.wait_for(sending, 20)
        assert result.ok, result
        got = await bob_ev.wait_for(MessageReceived)
        assert got.message.text == "sent while down"
        assert len(bob_ev.of(MessageReceived)) == 1
        await alice.stop()
        await bob.stop()
    finally:
        await server.stop()


async def test_message_fails_when_the_session_stays_down():
    server = MSNPTestServer(versions=(2, 12))
    await server.start()
    a, b = _account(server, "alice"), _account(server, "bob")
    alice, alice_ev = await online_client(server, a, "pw", offline_send_timeout=1.0)
    await server.stop()
    try:
        await alice_ev.wait_for(SessionStateChanged, lambda e: e.state is not SessionState.ONLINE)
        result = await asyncio.wait_for(alice.conversation([b]).send_text("lost?"), 10)
        assert result.status is DeliveryStatus.FAILED
        assert "not back within" in result.reason
    finally:
        await alice.stop()
