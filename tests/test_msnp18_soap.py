"""Unit tests of the MSNP13-18 parsers: RSI messages, SOAP faults, presence forms,
endpoint data."""

from __future__ import annotations

import calendar
import xml.etree.ElementTree as ET

from puppets.ablists import parse_ml, split_network
from puppets.soap.base import parse_fault, ticket_expired
from puppets.soap.rsi import parse_message
from puppets.ubx import endpoints_of

_MIME = (
    "X-Message-Info: cwRBnLifKNE8dVZlNj6AiX8142B67OTjG9BFMLMyzuui1H4Xx7m3NQ==\r\n"
    "From: =?utf-8?B?Qm9iIOKcqA==?= <Bob@Example.com>\r\n"
    "To: alice@example.com\r\n"
    "X-OriginalArrivalTime: 15 Aug 2009 19:22:11.0123 (UTC) FILETIME=[1B6A3E30:01CA1DDC]\r\n"
    "Date: 15 Aug 2009 19:22:11 -0700\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "X-OIM-Message-Type: OfflineMessage\r\n\r\n"
    "aGVsbG8g8J+Mjw0Kc2Vjb25k\r\nIGxpbmU=\r\n"
)


def test_rsi_message_base64_with_arrival_time() -> None:
    m = parse_message("id1", _MIME)
    assert m.sender == "bob@example.com" and m.nick == "Bob ✨"
    assert m.text == "hello 🌏\nsecond line"
    assert m.sent_at == calendar.timegm((2009, 8, 15, 19, 22, 11, 0, 0, 0))


def test_rsi_message_date_fallback_and_quoted_printable() -> None:
    mime = (
        "From: bob@example.com\r\nDate: Sat, 15 Aug 2009 19:22:11 -0700\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9"
    )
    m = parse_message("id2", mime)
    assert m.text == "café" and m.sender == "bob@example.com"
    assert m.sent_at == calendar.timegm((2009, 8, 16, 2, 22, 11, 0, 0, 0))


def test_abch_fault_keeps_the_service_code() -> None:
    root = ET.fromstring(
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        "<soap:Fault><faultcode>soap:Client</faultcode><faultstring>Contact Already Exists"
        "</faultstring><detail><errorcode xmlns='http://www.msn.com/webservices/AddressBook'>"
        "ContactAlreadyExists</errorcode></detail></soap:Fault></soap:Body></soap:Envelope>"
    )
    fault = parse_fault("ABContactAdd", root)
    assert fault is not None
    assert (fault.code, fault.message) == ("ContactAlreadyExists", "Contact Already Exists")
    assert "ABContactAdd" in str(fault) and not ticket_expired(fault)


def test_presence_forms_by_version() -> None:
    args = ["NLN", "bob@example.com", "Bob", "0"]
    assert split_network(13, args) == (args, 1)
    assert split_network(14, ["NLN", "bob@example.com", "32", "Bob", "0"]) == (args, 32)
    assert split_network(18, ["NLN", "1:bob@example.com", "Bob", "0"]) == (args, 1)
    assert split_network(18, ["1:bob@example.com"], at=0) == (["bob@example.com"], 1)
    assert split_network(17, ["bob@example.com", "1"], at=0) == (["bob@example.com"], 1)


def test_server_adl_and_endpoint_data() -> None:
    got = parse_ml(b'<ml><d n="example.com"><c n="bob" t="1" l="8" f="Bob%20B"/></d></ml>')
    assert got == [("bob@example.com", 8, 1, "Bob B")]
    found, psm = endpoints_of(
        b'<Data><PSM>hi</PSM><EndpointData id="{AA}"><Capabilities>0:0</Capabilities>'
        b'</EndpointData><PrivateEndpointData id="{AA}"><EpName>Home</EpName>'
        b'</PrivateEndpointData><EndpointData id="{BB}"/></Data>'
    )
    assert found == {"{aa}": "Home", "{bb}": ""} and psm == "hi"
    assert endpoints_of(b"<Data><broken") == ({}, None)
