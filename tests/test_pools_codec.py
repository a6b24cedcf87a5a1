"""Unit tests of msnbridge.pools.codec: every puppet event, contacts, errors and delivery
results survive a JSON round trip as the same typed values."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from msnbridge.pools import codec
from puppets.contacts import Contact, Lists
from puppets.errors import (
    AuthenticationError,
    ConnectionLost,
    MSNPError,
    SignedOutElsewhere,
)
from puppets.event import contact as c
from puppets.event import conversation as cv
from puppets.event import mailbox as mb
from puppets.event import offline as of
from puppets.event import session as se
from puppets.event import transfer as tr
from puppets.message import Datacast, Invitation, TextMessage
from puppets.msnobject import MSNObject
from puppets.textformat import TextFormat

PICTURE = MSNObject.for_data("bob@example.com", b"\x89PNG not really", friendly="me")
SB, CONV = object(), object()  # stand-ins for the live objects that never travel
LIVE = {"switchboard": SB, "conversation": CONV}

# One of every event puppets emits (test_every_event_type_is_covered keeps it complete).
EVENTS: list[object] = [
    c.ContactListSynced(3, 1),
    c.PresenceChanged("bob@example.com", "AWY", "Bob ★", 0x40, True, PICTURE),
    c.PresenceChanged("bob@example.com", "FLN", "Bob"),
    c.PersonalMessageChanged("bob@example.com", "at lunch", "music"),
    c.OwnNickChanged("Alice"),
    c.ContactAdded("bob@example.com", Lists.FL | Lists.AL, "Bob", "g1"),
    c.ContactRemoved("bob@example.com", Lists.BL, None),
    c.AddedBy("carol@example.com", "Carol"),
    c.RemovedBy("carol@example.com"),
    c.GroupAdded("g1", "Friends"),
    c.GroupRemoved("g1"),
    c.GroupRenamed("g1", "Family"),
    mb.MailboxStatus(4, 2),
    mb.NewMail("Bob", "bob@example.com", "Hi", "ACTIVE"),
    of.OfflineMessageReceived("oim-1", "bob@example.com", "Bob", "while you were out", 1.7e9),
    se.SessionStateChanged(se.SessionState.BACKING_OFF, "link lost", 2.5),
    se.LoggedIn(18, "alice@example.com", "Alice"),
    se.ServerSignedOut("OTH"),
    se.SystemNotice(1, 5),
    se.ChallengeAnswered(15),
    se.OwnEndpointsChanged({"{abc}": "Laptop"}),
    cv.MessageReceived(
        "bob@example.com",
        "Bob",
        TextMessage("hi\nthere", TextFormat(font="Arial", bold=True, color=0xFF0000), "gus"),
        **LIVE,
    ),
    cv.OwnMessageFromOtherEndpoint("{abc}", TextMessage("from my laptop"), **LIVE),
    cv.TypingReceived("bob@example.com", **LIVE),
    cv.NudgeReceived("bob@example.com", **LIVE),
    cv.DatacastReceived("bob@example.com", Datacast(4, "waves"), **LIVE),
    cv.InvitationReceived(
        "bob@example.com",
        Invitation("INVITE", "42", "File Transfer", {"Application-File": "a.txt"}),
        **LIVE,
    ),
    cv.UnknownPayloadReceived("bob@example.com", "text/x-unknown", **LIVE),
    cv.P2PPayloadReceived("bob@example.com", b"\x00\x01binary\xff", **LIVE),
    cv.EmoticonsAnnounced("bob@example.com", [(":cat:", PICTURE)], True, **LIVE),
    cv.ParticipantJoined("carol@example.com", "Carol", **LIVE),
    cv.ParticipantLeft("carol@example.com", True, **LIVE),
    cv.SwitchboardClosed("idle", ConnectionLost("link closed"), **LIVE),
    tr.FileOffered("bob@example.com", "a.txt", 10, b"png", transfer=None),  # type: ignore[arg-type]
    tr.TransferProgress("bob@example.com", "a.txt", 5, 10, True, transfer=None),  # type: ignore[arg-type]
    tr.TransferFinished(
        "bob@example.com",
        "a.txt",
        10,
        True,
        "declined",
        "no",
        True,
        transfer=None,  # type: ignore[arg-type]
    ),
    tr.DisplayPictureReceived("bob@example.com", PICTURE, b"\x89PNG"),
    tr.EmoticonReceived("bob@example.com", ":cat:", PICTURE, b"GIF89a", True),
    tr.RichContentReceived("bob@example.com", "wink", PICTURE, "application/x-wink"),
    tr.LegacyInvitationRefused("bob@example.com", "File Transfer", "a.txt", None),
    tr.P2PInvitationDeclined("bob@example.com", "{guid}", 4),
]


def _round_trip(event: object) -> object:
    wire = json.loads(json.dumps(codec.encode_event(event)))
    return codec.decode_event(wire, **LIVE)


def test_every_event_type_is_covered() -> None:
    assert {type(e).__name__ for e in EVENTS} == set(codec.EVENT_TYPES)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trip(event: object) -> None:
    back = _round_trip(event)
    assert type(back) is type(event)
    # Equal field by field; live fields come back as the objects the decoder was given.
    for field in dataclasses.fields(event):  # type: ignore[arg-type]
        name = field.name
        original, decoded = getattr(event, name), getattr(back, name)
        if name == "transfer":
            assert decoded is None  # files do not travel through pools (yet)
        elif name == "error":
            assert type(decoded) is type(original) and str(decoded) == str(original)
        else:
            assert decoded == original, name
            assert type(decoded) is type(original), name


def test_enum_flags_and_tuples_keep_their_types() -> None:
    added = _round_trip(c.ContactAdded("bob@example.com", Lists.FL | Lists.AL))
    assert isinstance(added, c.ContactAdded) and added.list is not None
    assert isinstance(added.list, Lists) and added.list == Lists.FL | Lists.AL
    announced = _round_trip(EVENTS[[type(e) for e in EVENTS].index(cv.EmoticonsAnnounced)])
    assert isinstance(announced, cv.EmoticonsAnnounced)
    assert announced.emoticons == [(":cat:", PICTURE)]
    assert isinstance(announced.emoticons[0], tuple)


def test_errors_come_back_as_the_types_the_core_words() -> None:
    from msnbridge.core.sessions import describe_login_error

    for error in (
        AuthenticationError("refused"),
        SignedOutElsewhere("OUT OTH"),
        MSNPError(911, "USR"),
        TimeoutError(),
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionLost("link closed"),
    ):
        back = codec.decode_error(json.loads(json.dumps(codec.encode_error(error))))
        assert back is not None
        assert describe_login_error(back) == describe_login_error(error)
        assert type(back).__name__ == type(error).__name__ or isinstance(back, OSError)
    strange = codec.decode_error({"type": "SomethingNew", "message": "odd"})
    assert isinstance(strange, codec.RemoteError) and str(strange) == "odd"
    assert codec.decode_error(None) is None


def test_contact_round_trip_and_defaults_left_out() -> None:
    full = Contact(
        "bob@example.com",
        "Bob",
        Lists.FL | Lists.AL | Lists.RL,
        frozenset({"g1", "g2"}),
        guid="guid-1",
        status="BSY",
        psm="psm",
        caps=0x40,
        ext_caps=0x20,  # P2P v2: the core's framing choice depends on it
        msnobject="<msnobj/>",
        phones={"PHH": "123"},
        network=32,
    )
    assert codec.decode_contact(json.loads(json.dumps(codec.encode_contact(full)))) == full
    bare = Contact("carol@example.com", "Carol", Lists.FL)
    encoded = codec.encode_contact(bare)
    assert set(encoded) == {"passport", "nick", "lists", "groups", "status"}
    assert codec.decode_contact(encoded) == bare


def test_delivery_results() -> None:
    for status in cv.DeliveryStatus:
        result = cv.DeliveryResult(status, f"because {status.name}")
        assert codec.decode_result(codec.encode_result(result)) == result


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "NoSuchEvent", "fields": {}},
        {"type": "PresenceChanged"},
        {"type": "PresenceChanged", "fields": {"passport": "x"}},
        {"type": "GroupAdded", "fields": {"id": "g", "name": {"$t": "martian", "v": 1}}},
        {"type": "GroupAdded", "fields": {"id": "g", "name": {"no": "tag"}}},
    ],
)
def test_unreadable_events_raise_codec_error(bad: dict[str, Any]) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode_event(bad)


def test_values_that_cannot_travel_are_refused() -> None:
    with pytest.raises(codec.CodecError):
        codec.encode_value(object())
    with pytest.raises(codec.CodecError):
        codec.encode_event(TextMessage("not an event"))


def test_a_display_picture_travels_with_its_bytes() -> None:
    data = bytes(range(256)) * 200  # every byte value, 50 KiB
    obj = MSNObject.for_data("bob@example.com", data, friendly="me")
    event = tr.DisplayPictureReceived("bob@example.com", obj, data)
    back = codec.decode_event(json.loads(json.dumps(codec.encode_event(event))))
    assert isinstance(back, tr.DisplayPictureReceived)
    assert back.data == data and back.msnobject == obj and back.msnobject.matches(back.data)


def test_a_picture_over_the_bound_is_refused_both_ways() -> None:
    limit = codec.MAX_OBJECT_BYTES
    at_limit = b"\x01" * limit
    obj = MSNObject.for_data("bob@example.com", at_limit)
    encoded = codec.encode_event(tr.DisplayPictureReceived("bob@example.com", obj, at_limit))
    assert codec.decode_event(encoded).data == at_limit  # type: ignore[attr-defined]
    over = at_limit + b"\x01"
    with pytest.raises(codec.CodecError, match=r"from bob@example.com is 524289 bytes, over"):
        codec.encode_event(tr.DisplayPictureReceived("bob@example.com", obj, over))
    # From a pool without the bound: refused before the base64 is decoded.
    encoded["fields"]["data"] = codec.encode_value(over)
    with pytest.raises(codec.CodecError, match="over the 524288 bytes"):
        codec.decode_event(encoded)
