"""MSNObject parsing and building, and objects announced in presence (NLN/ILN/CHG)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puppets.event.contact import PresenceChanged
from puppets.msnobject import (
    InvalidMSNObject,
    MSNObject,
    build_emoticon_list,
    parse,
    parse_emoticon_list,
)
from tests.puppet_helpers import (
    msnp12_server_fixture,  # noqa: F401 (the server fixture)
    online_client,
)

DATA = b"\x89PNG not really a picture" * 10


def test_build_computes_sha1d_and_sha1c_as_protocol_says():
    obj = MSNObject.for_data("Alice@Example.com", DATA, friendly="me")
    assert obj.creator == "alice@example.com"
    assert obj.size == len(DATA)
    assert obj.sha1d == base64.b64encode(hashlib.sha1(DATA).digest()).decode()
    fields = (
        f"Creatoralice@example.comSize{len(DATA)}Type3LocationTFR2C.tmp"
        f"Friendly{obj.friendly}SHA1D{obj.sha1d}"
    )
    assert obj.sha1c == base64.b64encode(hashlib.sha1(fields.encode()).digest()).decode()
    assert obj.friendly_name == "me"
    assert parse(obj.build()) == obj
    assert obj.matches(DATA) and not obj.matches(DATA + b"x")


def test_parse_a_real_looking_object_with_extra_attributes():
    obj = MSNObject.for_data("bob@example.com", b"x" * 100)
    text = obj.build().replace("/>", ' stamp="abc" contenttype="D"/>')
    got = parse(text)
    assert got.extra == (("stamp", "abc"), ("contenttype", "D"))
    assert parse(got.build()) == got


def test_missing_sha1c_is_accepted_and_computed_on_build():
    obj = MSNObject.for_data("bob@example.com", b"y" * 5)
    text = obj.build().replace(f' SHA1C="{obj.sha1c}"', "")
    got = parse(text)
    assert got.sha1c == ""
    assert f'SHA1C="{obj.sha1c}"' in got.build()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hello", "not an <msnobj/>"),
        ('<msnobj Creator="a@b.c" Size="1" Type="3" Location="0"/>', "no SHA1D"),
        ('<msnobj Creator="nobody" Size="1" Type="3" Location="0" SHA1D="x"/>', "not a passport"),
        ('<msnobj Creator="a@b.c" Size="big" Type="3" Location="0" SHA1D="x"/>', "integers"),
        ('<msnobj Creator="a@b.c" Size="1" Type="99" Location="0" SHA1D="x"/>', "Type 99"),
        ('<msnobj Creator="a@b.c" Size="1" Type="3" Location="0" SHA1D="!!"/>', "base64"),
        ('<msnobj Creator="a@b.c" Size="1" Type="3" Location="0" SHA1D="AAAA"/>', "20-byte"),
        ('<msnobj Creator="a@b.c" Creator="d@e.f"/>', "twice"),
        ("<msnobj " + "a" * 5000 + "/>", "too long"),
    ],
)
def test_invalid_objects_are_refused_clearly(text, why):
    with pytest.raises(InvalidMSNObject, match=why):
        parse(text)


def test_wrong_sha1c_is_refused():
    obj = MSNObject.for_data("bob@example.com", b"z")
    forged = obj.build().replace('Size="1"', 'Size="2"')
    with pytest.raises(InvalidMSNObject, match="SHA1C"):
        parse(forged)


def test_emoticon_list_round_trip():
    a = MSNObject.for_data("bob@example.com", b"cat", type=2)
    b = MSNObject.for_data("bob@example.com", b"dog", type=2)
    body = build_emoticon_list([(":cat:", a), ("(dog)", b)])
    assert parse_emoticon_list(body + "junk\tnot an object\t") == [(":cat:", a), ("(dog)", b)]


@given(st.text(max_size=300))
def test_parse_never_fails_other_than_clearly(text):
    try:
        obj = parse(text)
    except InvalidMSNObject:
        return
    assert parse(obj.build()) == obj


@given(st.binary(max_size=200), st.text(max_size=20), st.sampled_from([2, 3]))
def test_built_objects_parse_back(data, friendly, kind):
    obj = MSNObject.for_data("someone@example.com", data, kind, friendly=friendly)
    assert parse(obj.build()) == obj


# --- in presence, through the test server ---


@pytest.mark.parametrize("version", [9, 12])
async def test_presence_carries_the_parsed_object(server, version):
    a, b = f"ann{version}@example.com", f"ben{version}@example.com"
    server.add_account(a, "pa")
    server.add_account(b, "pb")
    server.add_contact(a, b)
    server.add_contact(b, a)
    obj = MSNObject.for_data(b, DATA)
    server.set_presence(b, "NLN", 0, obj.build())  # ILN after login
    alice, ev = await online_client(server, a, "pa", min_version=version, max_version=version)
    try:
        initial = await ev.wait_for(PresenceChanged, lambda e: e.passport == b)
        assert initial.initial and initial.msnobject == obj
        bad = obj.build().replace(obj.sha1d, "A" * 27 + "=")  # SHA1C no longer matches
        server.set_presence(b, "AWY", 0, bad)
        away = await ev.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "AWY")
        assert away.msnobject is None  # refused, logged; the presence still arrives
        server.set_presence(b, "FLN")
        # A real client announces its own picture with CHG.
        bob, _ = await online_client(server, b, "pb", min_version=version, max_version=version)
        try:
            mine = await bob.set_display_picture(DATA)
            seen = await ev.wait_for(
                PresenceChanged,
                lambda e: e.passport == b and not e.initial and e.msnobject is not None,
            )
            assert seen.msnobject == mine
            assert server.account(b).msnobj == mine.build()
            assert seen.caps & 0x10000000  # MSNC1: peers will talk MSNSLP to us
        finally:
            await bob.stop()
    finally:
        await alice.stop()


async def test_object_is_announced_at_login_when_set_before(server):
    a, b = "cat@example.com", "dan@example.com"
    server.add_account(a, "pa")
    server.add_account(b, "pb")
    server.add_contact(a, b)
    server.add_contact(b, a)
    alice, ev = await online_client(server, a, "pa", max_version=12)
    from puppets import Client
    from tests.puppet_helpers import make_config

    bob = Client(make_config(server, b, "pb", max_version=12))
    mine = await bob.set_display_picture(DATA)
    await bob.start()
    try:
        await bob.wait_online(timeout=15)
        seen = await ev.wait_for(PresenceChanged, lambda e: e.passport == b and e.status == "NLN")
        assert seen.msnobject == mine
    finally:
        await bob.stop()
        await alice.stop()
