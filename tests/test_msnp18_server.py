"""The test server's MSNP13-18 strictness, driven by a scripted client: the SSO answer
is checked (a wrong one and an expired token get 911 and a closed link), a command of the
wrong version closes the link, ADL of a contact the address book lacks is refused, and
SOAP requests with an unknown action or an expired ticket get SOAP faults."""

from __future__ import annotations

import os

import aiohttp
import pytest

from puppets.soap import SoapFault
from puppets.soap.addressbook import AddressBookService
from puppets.soap.base import envelope, post
from puppets.sso import CONTACTS, MESSENGER, mbi_key_response, request_tokens
from tests.msnp_server import MSNPTestServer
from tests.test_msnp_server import Raw, login

GUID = "{12345678-1234-1234-1234-123456789ABC}"


@pytest.fixture
async def server():
    srv = MSNPTestServer(versions=(2, 18), send_chl=False)
    await srv.start()
    srv.add_account("a@example.com", "pw", nick="A")
    srv.add_account("b@example.com", "pw", nick="B")
    srv.add_contact("a@example.com", "b@example.com")
    yield srv
    await srv.stop()


async def _tokens(srv: MSNPTestServer) -> dict:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as http:
        return await request_tokens(http, srv.services_url + "/RST.srf", "a@example.com", "pw")


async def _until_nonce(srv: MSNPTestServer, version: int) -> tuple[Raw, str]:
    raw = await Raw.connect(srv.ns_port)
    raw.send(f"VER 1 MSNP{version} CVR0")
    assert await raw.line() == f"VER 1 MSNP{version} CVR0"
    raw.send("CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 8.5.1288 msmsgs a@example.com")
    await raw.line()
    raw.send("USR 3 SSO I a@example.com")
    parts = (await raw.line()).split(" ")
    assert parts[:5] == ["USR", "3", "SSO", "S", "MBI_KEY_OLD"]
    return raw, parts[5]


async def test_sso_login_and_wrong_answer(server: MSNPTestServer) -> None:
    tokens = await _tokens(server)
    messenger = tokens[MESSENGER]
    raw, nonce = await _until_nonce(server, 18)
    answer = mbi_key_response(nonce, messenger.binary_secret, os.urandom(8))
    raw.send(f"USR 4 SSO S {messenger.ticket} {answer} {GUID}")
    assert (await raw.line()).startswith("USR 4 OK a@example.com")
    raw.close()
    # An answer computed for another nonce: 911, then the link closes.
    raw, nonce = await _until_nonce(server, 18)
    wrong = mbi_key_response(nonce[::-1], messenger.binary_secret, os.urandom(8))
    raw.send(f"USR 4 SSO S {messenger.ticket} {wrong} {GUID}")
    assert await raw.line() == "911 4"
    assert await raw.closed()


async def test_expired_token_is_refused(server: MSNPTestServer) -> None:
    tokens = await _tokens(server)
    server.expire_tokens("a@example.com")
    raw, nonce = await _until_nonce(server, 16)
    messenger = tokens[MESSENGER]
    answer = mbi_key_response(nonce, messenger.binary_secret, os.urandom(8))
    raw.send(f"USR 4 SSO S {messenger.ticket} {answer} {GUID}")
    assert await raw.line() == "911 4"
    assert await raw.closed()
    async with aiohttp.ClientSession() as http:

        async def ticket() -> str:
            return tokens[CONTACTS].ticket

        ab = AddressBookService(http, server.services_url + "/abservice/abservice.asmx", ticket)
        with pytest.raises(SoapFault) as fault:
            await ab.find_all()
        assert fault.value.code == "TicketExpired"


async def _signed_in(server: MSNPTestServer, version: int) -> Raw:
    tokens = await _tokens(server)
    raw, nonce = await _until_nonce(server, version)
    messenger = tokens[MESSENGER]
    answer = mbi_key_response(nonce, messenger.binary_secret, os.urandom(8))
    raw.send(f"USR 4 SSO S {messenger.ticket} {answer}" + (f" {GUID}" if version >= 16 else ""))
    await raw.until("USR 4 OK")
    return raw


async def test_adl_of_a_contact_absent_from_the_address_book(server: MSNPTestServer) -> None:
    raw = await _signed_in(server, 18)
    ok = b'<ml l="1"><d n="example.com"><c n="b" l="1" t="1"/></d></ml>'
    raw.send(f"ADL 5 {len(ok)}", ok)
    assert await raw.until("ADL 5") == "ADL 5 OK"
    absent = b'<ml><d n="example.com"><c n="nobody" l="1" t="1"/></d></ml>'
    raw.send(f"ADL 6 {len(absent)}", absent)
    assert await raw.until("241") == "241 6"
    raw.close()


@pytest.mark.parametrize(
    ("version", "line"),
    [(18, "ADC 5 FL N=b@example.com F=b"), (15, "REM 5 AL b@example.com")],
)
async def test_old_commands_close_15_plus(server: MSNPTestServer, version: int, line: str) -> None:
    raw = await _signed_in(server, version)
    raw.send(line)
    assert await raw.closed()


async def test_msnp13_twn_login_syn_is_502_and_adc_closes(server: MSNPTestServer) -> None:
    raw = await login(server, "a@example.com", "pw", 13, syn=False)
    raw.send("SYN 4 0 0")
    assert await raw.until("502") == "502 4"
    raw.send("ADC 5 FL N=b@example.com F=b")
    assert await raw.closed()


async def test_sso_on_msnp13_closes(server: MSNPTestServer) -> None:
    raw = await Raw.connect(server.ns_port)
    raw.send("VER 1 MSNP13 CVR0")
    await raw.line()
    raw.send("USR 2 SSO I a@example.com")  # SSO is MSNP15+
    assert await raw.closed()


async def test_adl_on_msnp12_closes(server: MSNPTestServer) -> None:
    raw = await login(server, "a@example.com", "pw", 12)
    payload = b'<ml l="1"><d n="example.com"><c n="b" l="1" t="1"/></d></ml>'
    raw.send(f"ADL 6 {len(payload)}", payload)
    assert await raw.closed()


async def test_unknown_soap_action_is_a_fault(server: MSNPTestServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(SoapFault) as fault:
            await post(
                http,
                server.services_url + "/abservice/abservice.asmx",
                "ABBogus",
                "http://www.msn.com/webservices/AddressBook/ABBogus",
                envelope("", "<ABBogus/>"),
            )
    assert fault.value.code == "soap:Client"
    assert "ABBogus" in fault.value.message


async def test_chg_keeps_extended_caps_and_refuses_malformed_ones(server: MSNPTestServer) -> None:
    raw = await _signed_in(server, 18)
    raw.send("CHG 5 NLN 2789003324:48")
    assert await raw.until("CHG 5") == "CHG 5 NLN 2789003324:48"
    account = server.account("a@example.com")
    assert (account.caps, account.ext_caps) == (2789003324, 48)
    raw.send("CHG 6 NLN 2789003324:p2p")
    assert await raw.closed()
