"""MSG payloads (puppets/message.py): parsing real payloads, building, splitting, chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puppets.message import (
    MAX_PAYLOAD,
    ChunkAssembler,
    Datacast,
    InitialMail,
    Invitation,
    Message,
    NewMail,
    Nudge,
    Profile,
    SystemMessage,
    TextFormat,
    TextMessage,
    TypingNotice,
    UnknownPayload,
    build_message,
    build_nudge,
    build_text,
    build_typing,
    parse_message,
    parse_payload,
    split_text,
)

# -- payloads from the seed deck (000_9b42703de2179cf8.txt), CRLF restored -----------------

DECK_INITIAL_MAIL = (  # `MSG Hotmail Hotmail 221`
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsinitialemailnotification; charset=UTF-8\r\n"
    b"\r\n"
    b"Inbox-Unread: 1\r\n"
    b"Folders-Unread: 0\r\n"
    b"Inbox-URL: /cgi-bin/HoTMaiL\r\n"
    b"Folders-URL: /cgi-bin/folders\r\n"
    b"Post-URL: http://www.hotmail.com\r\n"
    b"\r\n"
)
DECK_NEW_MAIL = (  # `MSG Hotmail Hotmail 355` (the slide wraps the two URLs)
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n"
    b"\r\n"
    b"From: Mike Mintz\r\n"
    b"Message-URL: /cgi-bin/getmsg?msg=MSG1050451140.21&start=2310&len=2059&curmbox=ACTIVE\r\n"
    b"Post-URL: https://loginnet.passport.com/ppsecure/md5auth.srf?lc=1038\r\n"
    b'Subject: =?"us-ascii"?Q?newsubject?=\r\n'
    b"Dest-Folder: ACTIVE\r\n"
    b"From-Addr: example@passport.com\r\n"
    b"id: 2\r\n"
)
DECK_SYSTEM = (  # note the lower-case `Content-type` and the trailing space on the slide
    b"MIME-Version: 1.0\r\n"
    b"Content-type: application/x-msmsgssystemmessage\r\n"
    b"\r\n"
    b"Type: 1\r\n"
    b"Arg1: 5\r\n "
)
DECK_TEXT_OUT = (  # `>>> MSG 5 N 138`
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0\r\n"
    b"\r\n"
    b"Are you there? \r\n"
    b"I\xe2\x80\x99m Alice"
)
DECK_TEXT_IN = (  # `<<< MSG bob@passport.com Bob 143`
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=Lucida%20Sans%20Unicode; EF=B; CO=ff0000; CS=0; PF=22\r\n"
    b"\r\n"
    b"Hello."
)
DECK_PROFILE = (  # `<<< MSG Hotmail Hotmail 491`, up to where the slide mangles MSPAuth
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
    b"LoginTime: 1050223062\r\n"
    b"EmailEnabled: 0\r\n"
    b"MemberIdHigh: 85040\r\n"
    b"MemberIdLow: -517030579\r\n"
    b"lang_preference: 1033\r\n"
    b"preferredEmail: alice@passport.com\r\n"
    b"country: US\r\n"
    b"PostalCode: 90201\r\n"
    b"Gender: m\r\n"
    b"Kid: 0\r\n"
    b"Age: \r\n"
    b"BDayPre: 5\r\n"
    b"Birthday: 0\r\n"
    b"Wallet: 0\r\n"
    b"Flags: 1027\r\n"
    b"sid: 507\r\n"
    b"kv: 4\r\n"
    b"MSPAuth: 41bbzZ*NzDmDQ8ic4HWo89b9zhCBk!ONDJKB3Los8UMgBnCOLSwQKo!8IeIHQF0vVItSlOzI$$\r\n"
    b"ClientIP: 1.2.3.4\r\n"
    b"ClientPort: 516\r\n"
    b"\r\n"
)
# The MSNP6 seed page's profile (`MSG Hotmail Hotmail 367`), its line breaks restored.
MSNP6_PROFILE = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
    b"LoginTime: 1726321960\r\nEmailEnabled: 1\r\nMemberIdHigh: 1\r\nMemberIdLow: 2\r\n"
    b"lang_preference: 1033\r\nPreferredEmail: example@hotmail.com\r\ncountry: US\r\n"
    b"PostalCode: \r\nGender: \r\nKid: 0\r\nAge: \r\nBDayPre: \r\nBirthday: \r\nWallet: \r\n"
    b"Flags: 1027\r\nsid: 507\r\nkv: 11\r\nMSPAuth: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$$\r\n\r\n"
)


def test_seed_payload_lengths_match_their_msg_lines() -> None:
    assert len(DECK_INITIAL_MAIL) == 221
    assert len(DECK_NEW_MAIL) == 355
    assert len(DECK_TEXT_IN) == 143
    assert len(MSNP6_PROFILE) == 367


def test_initial_mail_notification() -> None:
    got = parse_payload(DECK_INITIAL_MAIL)
    assert isinstance(got, InitialMail)
    assert (got.inbox_unread, got.folders_unread) == (1, 0)
    assert got.fields["Inbox-URL"] == "/cgi-bin/HoTMaiL"
    assert got.fields["Post-URL"] == "http://www.hotmail.com"


def test_new_mail_notification_decodes_the_subject() -> None:
    got = parse_payload(DECK_NEW_MAIL)
    assert got == NewMail(
        sender="Mike Mintz",
        sender_address="example@passport.com",
        subject="newsubject",
        folder="ACTIVE",
        fields=got.fields if isinstance(got, NewMail) else {},
    )
    assert isinstance(got, NewMail) and got.fields["id"] == "2"
    assert got.fields["Message-URL"].endswith("&curmbox=ACTIVE")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("=?utf-8?B?wqFIb2xhIG1hw7FhbmEh?=", "¡Hola mañana!"),
        ("=?ISO-8859-1?Q?caf=E9?= au lait", "café au lait"),
        ("plain subject", "plain subject"),
        ("=?bogus-charset?Q?abc?=", "abc"),
        ("=?utf-8?B?!!!notbase64?=", None),  # malformed: shown somehow, never raises
        ("=?utf-8?Q?broken", "=?utf-8?Q?broken"),
    ],
)
def test_new_mail_subject_encodings(subject: str, expected: str | None) -> None:
    payload = build_message(
        [("Content-Type", "text/x-msmsgsemailnotification; charset=UTF-8")],
        f"From: =?utf-8?Q?Jos=C3=A9?=\r\nFrom-Addr: jose@example.com\r\nSubject: {subject}\r\n"
        "Dest-Folder: ACTIVE\r\n".encode(),
    )
    got = parse_payload(payload)
    assert isinstance(got, NewMail)
    assert got.sender == "José" and got.sender_address == "jose@example.com"
    if expected is not None:
        assert got.subject == expected
    else:
        assert isinstance(got.subject, str)


def test_system_message_announces_maintenance() -> None:
    assert parse_payload(DECK_SYSTEM) == SystemMessage(type=1, minutes=5)
    no_arg = build_message([("Content-Type", "application/x-msmsgssystemmessage")], b"Type: 2\r\n")
    assert parse_payload(no_arg) == SystemMessage(type=2, minutes=None)
    bad = build_message([("Content-Type", "application/x-msmsgssystemmessage")], b"Type: x\r\n")
    got = parse_payload(bad)
    assert isinstance(got, UnknownPayload)
    assert got.content_type == "application/x-msmsgssystemmessage"


def test_deck_text_messages() -> None:
    out = parse_payload(DECK_TEXT_OUT)
    assert out == TextMessage(
        "Are you there? \nI’m Alice",
        TextFormat(font="MS Sans Serif", charset="0", pitch="0"),
    )
    inc = parse_payload(DECK_TEXT_IN)
    assert isinstance(inc, TextMessage)
    assert inc.text == "Hello."
    # CO=ff0000 is a BGR COLORREF: blue.
    assert inc.format == TextFormat(
        font="Lucida Sans Unicode", bold=True, color=0x0000FF, pitch="22"
    )


def test_profiles_and_their_secret() -> None:
    for payload, kv in ((DECK_PROFILE, "4"), (MSNP6_PROFILE, "11")):
        got = parse_payload(payload)
        assert isinstance(got, Profile)
        assert got.fields["kv"] == kv and got.fields["sid"] == "507"
        assert "Content-Type" not in got.fields and "MIME-Version" not in got.fields
        assert got.fields["MSPAuth"].endswith("$$")
        assert got.fields["MSPAuth"] not in repr(got)
        assert got.fields["MSPAuth"] not in repr(parse_message(payload))
        assert "<redacted>" in repr(got)
    got = parse_payload(MSNP6_PROFILE)
    assert isinstance(got, Profile)
    assert got.fields["PostalCode"] == "" and got.fields["LoginTime"] == "1726321960"
    assert parse_payload(DECK_PROFILE).fields["ClientPort"] == "516"  # type: ignore[union-attr]


# -- text format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=22", TextFormat("MS Sans Serif", pitch="22")),
        ("FN=Arial; EF=BI; CO=ff; CS=0; PF=0", TextFormat("Arial", True, True, color=0xFF0000)),
        (
            "FN=Arial; EF=US; CO=ff0000",
            TextFormat("Arial", underline=True, strike=True, color=0xFF),
        ),
        ("FN=Arial; CO=ff00", TextFormat("Arial", color=0x00FF00)),
        ("FN=Arial; CO=123456", TextFormat("Arial", color=0x563412)),
        ("FN=Arial; CO=0x0000ff", TextFormat("Arial", color=0xFF0000)),
        ("FN=Arial; EF=bius; RL=1", TextFormat("Arial", True, True, True, True, rtl=True)),
        (
            "FN=Tahoma; EF=B; CO=zz; CS=86; PF=31",
            TextFormat("Tahoma", bold=True, charset="86", pitch="31"),
        ),
        ("FN=Tahoma; CO=123456789", TextFormat("Tahoma")),  # too long for a COLORREF
        ("", TextFormat()),
        ("garbage;;;==;FN", TextFormat()),
        ("FN=; EF=XYZ; CO=; CS=; PF=?!;b", TextFormat()),
        ("fn=Comic%20Sans%20MS ;  ef=b", TextFormat("Comic Sans MS", bold=True)),
        ("FN=%E5%BE%AE%E8%BD%AF%E9%9B%85%E9%BB%91; CO=%zz", TextFormat("微软雅黑")),
        ("FN=%FF%FE", TextFormat("\ufffd\ufffd")),
        ("FN=A%0D%0AB", TextFormat("AB")),
    ],
)
def test_text_format_parse(value: str, expected: TextFormat) -> None:
    assert TextFormat.parse(value) == expected


def test_text_format_header_is_canonical() -> None:
    assert TextFormat().header() == "FN=Segoe%20UI; EF=; CO=0; CS=0; PF=0"
    fmt = TextFormat("MS Sans Serif", bold=True, strike=True, color=0xFF0000, pitch="22")
    assert fmt.header() == "FN=MS%20Sans%20Serif; EF=BS; CO=ff; CS=0; PF=22"
    assert TextFormat("A;B=C", color=0x0000FF, rtl=True).header() == (
        "FN=A%3BB%3DC; EF=; CO=ff0000; CS=0; PF=0; RL=1"
    )
    # Junk in charset/pitch is not repeated on the wire.
    assert TextFormat(charset="a;b", pitch="").header().endswith("CS=0; PF=0")


FONTS = st.text(
    st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp", "Cf", "Co", "Cn", "Zs"]),
    min_size=1,
    max_size=32,
)


@settings(max_examples=300, deadline=None)
@given(
    font=FONTS,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    color=st.integers(0, 0xFFFFFF),
    charset=st.sampled_from(["0", "1", "86", "b1", "EE"]),
    pitch=st.sampled_from(["0", "22", "31"]),
)
def test_text_format_round_trip(
    font: str, flags: tuple[bool, ...], color: int, charset: str, pitch: str
) -> None:
    bold, italic, underline, strike, rtl = flags
    fmt = TextFormat(font, bold, italic, underline, strike, color, charset, pitch, rtl)
    assert TextFormat.parse(fmt.header()) == fmt


# -- text messages -------------------------------------------------------------------------


def test_build_text_and_parse_back() -> None:
    fmt = TextFormat("Lucida Sans Unicode", bold=True, color=0x0000FF, pitch="22")
    payload = build_text("Hola\nmañana 😀", fmt)
    assert payload == (
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=UTF-8\r\n"
        b"X-MMS-IM-Format: FN=Lucida%20Sans%20Unicode; EF=B; CO=ff0000; CS=0; PF=22\r\n"
        b"\r\n"
        b"Hola\r\nma\xc3\xb1ana \xf0\x9f\x98\x80"
    )
    assert parse_payload(payload) == TextMessage("Hola\nmañana 😀", fmt)
    assert parse_payload(build_text("a\r\nb\rc")) == TextMessage("a\nb\nc", TextFormat())


def test_text_bodies_are_decoded_tolerantly() -> None:
    bad = build_message([("Content-Type", "text/plain; charset=UTF-8")], b"ok \xff\xc3 end")
    got = parse_payload(bad)
    assert isinstance(got, TextMessage) and got.text == "ok \ufffd\ufffd end"
    latin = build_message([("Content-Type", 'text/plain; charset="ISO-8859-1"')], b"caf\xe9")
    assert parse_payload(latin) == TextMessage("café")
    for charset in ("no-such-charset", "rot13", "base64", "idna"):
        odd = build_message([("Content-Type", f"text/plain; charset={charset}")], "ñ".encode())
        got = parse_payload(odd)
        assert isinstance(got, TextMessage) and got.text == "ñ", charset
    # Bare LF line breaks, no X-MMS-IM-Format at all.
    lf = b"MIME-Version: 1.0\nContent-Type: text/plain\n\nline one\nline two"
    assert parse_payload(lf) == TextMessage("line one\nline two", TextFormat())
    # No blank line: all headers, an empty text.
    assert parse_payload(b"Content-Type: text/plain\r\n") == TextMessage("", TextFormat())


# -- typing, nudges, datacasts -------------------------------------------------------------


def test_typing_notice() -> None:
    payload = build_typing("alice@passport.com")
    assert payload == (
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\n"
        b"TypingUser: alice@passport.com\r\n\r\n\r\n"
    )
    assert parse_payload(payload) == TypingNotice("alice@passport.com")
    # A passport cannot smuggle headers in.
    evil = parse_message(build_typing("a@b.c\r\nContent-Type: text/plain"))
    assert evil.content_type == "text/x-msmsgscontrol" and len(evil.headers) == 3


def test_nudges_and_other_datacasts() -> None:
    assert build_nudge() == (
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n"
    )
    assert parse_payload(build_nudge()) == Nudge()
    head = b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\n"
    assert parse_payload(head + b"ID: 1\r\n") == Nudge()
    assert parse_payload(head + b"ID: 1") == Nudge()
    assert parse_payload(head + b"ID: 4\r\nData: waves\r\n\r\n") == Datacast(4, "waves")
    assert parse_payload(head + b"ID: 2\r\n\r\n") == Datacast(2, "")
    for junk in (b"ID: x\r\n", b"", b"\xff\xfe"):
        got = parse_payload(head + junk)
        assert isinstance(got, UnknownPayload) and got.content_type == "text/x-msnmsgr-datacast"


# -- invitations ---------------------------------------------------------------------------

INVITE = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsinvite; charset=UTF-8\r\n"
    b"\r\n"
    b"Application-Name: File Transfer\r\n"
    b"Application-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}\r\n"
    b"Invitation-Command: INVITE\r\n"
    b"Invitation-Cookie: 34221\r\n"
    b"Application-File: notas \xc3\xb1.txt\r\n"
    b"Application-FileSize: 10342\r\n"
    b"Connectivity: N\r\n"
    b"\r\n"
)


def test_invitations() -> None:
    got = parse_payload(INVITE)
    assert isinstance(got, Invitation)
    assert (got.command, got.cookie, got.application) == ("INVITE", "34221", "File Transfer")
    assert got.fields["Application-File"] == "notas ñ.txt"
    assert got.fields["Application-GUID"] == "{5D3E02AB-6190-11d3-BBBB-00C04F795683}"
    cancel = build_message(
        [("Content-Type", "text/x-msmsgsinvite; charset=UTF-8")],
        b"Invitation-Command: CANCEL\r\nInvitation-Cookie: 34221\r\nCancel-Code: REJECT\r\n\r\n",
    )
    got = parse_payload(cancel)
    assert isinstance(got, Invitation)
    assert (got.command, got.cookie, got.application) == ("CANCEL", "34221", None)
    assert got.fields["Cancel-Code"] == "REJECT"


# -- everything else -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-msmsgsp2p",
        "text/x-msmsgsinitialmdatanotification; charset=UTF-8",
        "text/x-msmsgsactivemailnotification; charset=UTF-8",
        "text/x-mms-emoticon",
        "text/x-clientcaps",
    ],
)
def test_unknown_payloads_keep_the_message(content_type: str) -> None:
    body = b"\x00\x01\x02binary\xff" * 3
    payload = build_message([("Content-Type", content_type), ("P2P-Dest", "bob@x.com")], body)
    got = parse_payload(payload)
    assert isinstance(got, UnknownPayload)
    assert got.content_type == content_type.split(";")[0]
    assert got.message.body == body and got.message.get("p2p-dest") == "bob@x.com"


def test_no_content_type() -> None:
    got = parse_payload(b"just some bytes")
    assert isinstance(got, UnknownPayload) and got.content_type == ""


# -- the MIME envelope ---------------------------------------------------------------------


def test_parse_message_is_tolerant() -> None:
    msg = parse_message(b"A: 1\nb:2\r\nNo colon here\r\nC: x\r\n  folded\r\n\r\nbody\r\n\r\nmore")
    assert msg.headers == [("A", "1"), ("b", "2"), ("C", "x folded")]
    assert msg.body == b"body\r\n\r\nmore"
    assert msg.get("B") == "2" and msg.get("missing") is None and msg.get("x", "d") == "d"
    msg = parse_message(b'Content-Type: Text/Plain ; charset="utf-8"\r\nContent-Type: x/y')
    assert msg.content_type == "text/plain" and msg.charset == "utf-8"
    assert msg.body == b""
    assert parse_message(b"\r\nbody only").headers == []
    assert parse_message(b"\r\nbody only").body == b"body only"
    assert parse_message(b"") == Message([], b"")


def test_build_message() -> None:
    assert build_message([("Content-Type", "text/plain")], b"x") == (
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nx"
    )
    built = build_message([("mime-version", "1.0"), ("TypingUser", "a\nb")], b"")
    assert built == b"mime-version: 1.0\r\nTypingUser: a b\r\n\r\n"
    msg = Message([("Content-Type", "text/plain"), ("X-Y", "z")], b"body")
    assert parse_message(build_message(msg.headers, msg.body)) == Message(
        [("MIME-Version", "1.0"), *msg.headers], b"body"
    )


# -- splitting -----------------------------------------------------------------------------


def _texts(payloads: list[bytes]) -> list[str]:
    out = []
    for payload in payloads:
        got = parse_payload(payload)
        assert isinstance(got, TextMessage)
        out.append(got.text)
    return out


def test_split_short_text_is_one_payload() -> None:
    fmt = TextFormat("Arial", italic=True)
    assert split_text("hello", fmt) == [build_text("hello", fmt)]
    assert split_text("") == []
    assert split_text("a\r\nb") == [build_text("a\nb")]


def test_split_prefers_newlines_then_spaces() -> None:
    head = len(build_text(""))
    limit = head + 40
    text = "first line here\n" + "word " * 20
    parts = _texts(split_text(text, limit=limit))
    assert parts[0] == "first line here\n"
    assert all(p.endswith(" ") for p in parts[1:-1])
    assert "".join(parts) == text
    # One long word: cut at code points, none of them broken.
    parts = _texts(split_text("ñ€😀" * 30, limit=limit))
    assert "".join(parts) == "ñ€😀" * 30 and len(parts) > 2


def test_split_counts_crlf_as_two_bytes_and_never_halves_it() -> None:
    head = len(build_text(""))
    text = "\n" * 50
    payloads = split_text(text, limit=head + 5)
    assert all(len(p) <= head + 5 for p in payloads)
    assert all(p.endswith(b"\r\n") and b"\r\n\r\n" in p for p in payloads)
    assert [len(t) for t in _texts(payloads)] == [2] * 25


def test_split_keeps_combining_marks_with_their_letter() -> None:
    head = len(build_text(""))
    text = "e\u0301" * 20  # é as e + combining acute
    parts = _texts(split_text(text, limit=head + 7))
    assert "".join(parts) == text
    assert not any(p.startswith("\u0301") for p in parts)


def test_split_refuses_a_limit_without_room() -> None:
    with pytest.raises(ValueError):
        split_text("hi", limit=len(build_text("")) + 3)


TEXT = st.lists(
    st.one_of(
        st.sampled_from(["ñ", "€", "😀", "\n", " ", "\t", "a", "e\u0301", "👩‍💻", "word "]),
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\r"),
    ),
    max_size=1500,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        TEXT,
        st.builds(
            lambda c, n: c * n, st.sampled_from(["x", "ñ", "😀", "a b", "\n"]), st.integers(0, 3000)
        ),
    ),
    limit=st.one_of(st.just(MAX_PAYLOAD), st.integers(150, 1700)),
    bold=st.booleans(),
)
def test_split_text_properties(text: str, limit: int, bold: bool) -> None:
    fmt = TextFormat("Lucida Sans Unicode", bold=bold, color=0x123456)
    payloads = split_text(text, fmt, limit)
    for payload in payloads:
        assert len(payload) <= limit
        payload.decode("utf-8")  # whole: never cut inside a UTF-8 sequence
        assert not payload.endswith(b"\r")
    texts = _texts(payloads)
    assert "".join(texts) == text
    assert all(texts)  # no empty parts
    assert all(parse_payload(p).format == fmt for p in payloads)  # type: ignore[union-attr]
    if not text:
        assert payloads == []


# -- chunked messages ----------------------------------------------------------------------


def _chunked(
    body: bytes, parts: int, msg_id: str = "{2B1D1A0B-1C2D-4E5F-9A8B-7C6D5E4F3A2B}"
) -> list[bytes]:
    size = -(-len(body) // parts)
    pieces = [body[i * size : (i + 1) * size] for i in range(parts)]
    first = build_message(
        [
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-MMS-IM-Format", "FN=Arial; EF=I; CO=0; CS=0; PF=0"),
            ("Message-ID", msg_id),
            ("Chunks", str(parts)),
        ],
        pieces[0],
    )
    rest = [
        f"Message-ID: {msg_id}\r\nChunk: {i}\r\n\r\n".encode() + pieces[i] for i in range(1, parts)
    ]
    return [first, *rest]


def test_chunks_reassemble_across_utf8_boundaries() -> None:
    text = "ñ€😀 " * 200
    body = text.encode()
    parts = _chunked(body, 3)
    with pytest.raises(UnicodeDecodeError):  # the cut is inside a character
        parts[1].split(b"\r\n\r\n", 1)[1].decode("utf-8")
    asm = ChunkAssembler()
    assert parse_payload(parts[0], sender="bob@x.com", assembler=asm) is None
    assert parse_payload(parts[1], sender="bob@x.com", assembler=asm) is None
    assert asm.pending == 1 and asm.buffered > 0
    got = parse_payload(parts[2], sender="bob@x.com", assembler=asm)
    assert got == TextMessage(text, TextFormat("Arial", italic=True))
    assert asm.pending == 0 and asm.buffered == 0


def test_chunks_without_an_assembler_are_unknown() -> None:
    parts = _chunked(b"hello world", 2)
    first, second = parse_payload(parts[0]), parse_payload(parts[1])
    assert isinstance(first, UnknownPayload) and first.content_type == "text/plain"
    assert isinstance(second, UnknownPayload) and second.content_type == ""


def test_chunk_assembler_keys_and_passthrough() -> None:
    asm = ChunkAssembler()
    plain = build_text("not chunked")
    assert asm.feed("bob@x.com", plain) == plain
    a = _chunked(b"from bob, hello", 2)
    b = _chunked(b"from eve, other", 2)  # same Message-ID, different sender
    assert asm.feed("bob@x.com", a[0]) is None
    assert asm.feed("eve@x.com", b[0]) is None
    assert asm.feed("eve@x.com", b[1]) is not None
    whole = asm.feed("BOB@x.com", a[1])  # passports compare case-insensitively
    assert whole is not None and parse_message(whole).body == b"from bob, hello"
    assert (
        parse_message(whole).get("Chunks") is None
        and parse_message(whole).get("Message-ID") is None
    )
    # Out-of-order parts still assemble; a repeated part replaces the earlier copy.
    parts = _chunked(b"0123456789", 4)
    assert asm.feed("bob@x.com", parts[0]) is None
    assert asm.feed("bob@x.com", parts[3]) is None
    assert asm.feed("bob@x.com", parts[2]) is None
    assert asm.feed("bob@x.com", parts[2]) is None
    whole = asm.feed("bob@x.com", parts[1])
    assert whole is not None and parse_message(whole).body == b"0123456789"


def test_chunk_assembler_drops_junk() -> None:
    asm = ChunkAssembler(max_chunks=8)
    stray = b"Message-ID: {x}\r\nChunk: 1\r\n\r\nabc"
    assert asm.feed("bob@x.com", stray) is None and asm.dropped == 1
    for chunks in ("0", "x", "9", "99999999999999"):
        first = build_message([("Message-ID", "{y}"), ("Chunks", chunks)], b"a")
        assert asm.feed("bob@x.com", first) is None
    assert asm.pending == 0 and asm.dropped == 5
    single = build_message(
        [("Content-Type", "text/plain"), ("Message-ID", "{z}"), ("Chunks", "1")], b"a"
    )
    assert parse_payload(single, sender="bob@x.com", assembler=asm) == TextMessage("a")
    parts = _chunked(b"abcdef", 2)
    asm.feed("bob@x.com", parts[0])
    for index in ("0", "2", "-1", "x"):
        bad = parts[1].replace(b"Chunk: 1", f"Chunk: {index}".encode())
        assert asm.feed("bob@x.com", bad) is None
    assert asm.pending == 1


def test_chunk_assembler_memory_is_bounded() -> None:
    now = [0.0]
    asm = ChunkAssembler(max_pending=3, max_bytes=1000, expiry=60.0, clock=lambda: now[0])
    for i in range(10):  # more incomplete sets than allowed: the oldest go first
        asm.feed("bob@x.com", _chunked(b"x" * 20, 2, msg_id=f"{{{i}}}")[0])
        assert asm.pending <= 3
    assert asm.pending == 3 and asm.dropped == 7
    # The newest sets survived and still complete.
    assert asm.feed("bob@x.com", _chunked(b"x" * 20, 2, msg_id="{9}")[1]) is not None
    # Too many bytes: dropped.
    big = _chunked(b"y" * 4000, 4, msg_id="{big}")
    assert asm.feed("bob@x.com", big[0]) is None
    assert asm.buffered <= 1000
    assert asm.feed("bob@x.com", big[1]) is None
    assert asm.buffered <= 1000
    # Expiry: an old set is gone when its last part arrives too late.
    parts = _chunked(b"slow", 2, msg_id="{slow}")
    asm.feed("bob@x.com", parts[0])
    now[0] += 61
    assert asm.feed("bob@x.com", parts[1]) is None
    assert asm.pending == 0 and asm.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.binary(max_size=200)), max_size=30))
def test_chunk_assembler_never_holds_more_than_its_bounds(feeds: list[tuple[str, bytes]]) -> None:
    asm = ChunkAssembler(max_pending=4, max_bytes=600)
    for sender, junk in feeds:
        # Random parts of random sets, plus random bytes.
        asm.feed(sender, junk)
        ident = str(len(junk) % 3)
        head = ("Chunks: 3" if len(junk) % 2 else f"Chunk: {len(junk) % 4}").encode()
        asm.feed(sender, b"Message-ID: {" + ident.encode() + b"}\r\n" + head + b"\r\n\r\n" + junk)
        assert asm.pending <= 4 and asm.buffered <= 600


# -- robustness ----------------------------------------------------------------------------

HEADER_NAMES = [
    "Content-Type",
    "X-MMS-IM-Format",
    "TypingUser",
    "Message-ID",
    "Chunks",
    "Chunk",
    "MIME-Version",
]
CONTENT_TYPES = [
    "text/plain; charset=UTF-8",
    "text/plain; charset=rot13",
    "text/x-msmsgscontrol",
    "text/x-msnmsgr-datacast",
    "text/x-msmsgsprofile",
    "text/x-msmsgsinitialemailnotification",
    "text/x-msmsgsemailnotification",
    "application/x-msmsgssystemmessage",
    "text/x-msmsgsinvite",
    "application/x-msmsgsp2p",
]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_payload_never_raises_on_random_bytes(data: bytes) -> None:
    got = parse_payload(data)
    assert got is not None


@settings(max_examples=500, deadline=None)
@given(
    ctype=st.sampled_from(CONTENT_TYPES),
    headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.text(max_size=40)), max_size=4),
    body=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "ID",
                        "Data",
                        "Type",
                        "Arg1",
                        "Inbox-Unread",
                        "Subject",
                        "From",
                        "Invitation-Command",
                    ]
                ),
                st.text(max_size=30),
            ),
            max_size=5,
        ).map(lambda kv: "".join(f"{k}: {v}\r\n" for k, v in kv).encode("utf-8", "replace")),
    ),
)
def test_parse_payload_never_raises_on_plausible_payloads(
    ctype: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    payload = build_message([("Content-Type", ctype), *headers], body)
    assert parse_payload(payload) is not None
    asm = ChunkAssembler()
    parse_payload(payload, sender="x@y.z", assembler=asm)
    assert asm.pending <= 1


def test_format_header_values_in_payloads_stay_on_one_line() -> None:
    fmt = TextFormat("Evil\r\nContent-Type: text/x-msmsgscontrol")
    payload = build_text("hi", fmt)
    msg = parse_message(payload)
    assert [k for k, _ in msg.headers] == ["MIME-Version", "Content-Type", "X-MMS-IM-Format"]
    assert msg.content_type == "text/plain"
    got = parse_payload(payload)
    assert isinstance(got, TextMessage) and got.text == "hi"
