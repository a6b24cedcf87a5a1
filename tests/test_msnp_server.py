"""Tests of the strict MSNP test server itself, over raw sockets with scripted lines in
the shape of the seed transcripts (no puppets code on the client side)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from urllib.parse import quote

import aiohttp
import pytest

from puppets.challenge import answer
from tests.msnp_server import MSNPTestServer

pytestmark = pytest.mark.timeout(20)

SERVER_PAYLOAD = {"MSG", "UBX", "GCF", "NOT", "IPG"}


class Raw:
    """A scripted client: write lines, read lines (and payloads) with timeouts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, text: str, payload: bytes = b"") -> None:
        self.writer.write(text.encode() + b"\r\n" + payload)

    async def line(self, timeout: float = 2.0) -> str:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)
        return raw[:-2].decode()

    async def command(self, timeout: float = 2.0) -> tuple[str, bytes]:
        text = await self.line(timeout)
        payload = b""
        if text.split(" ")[0] in SERVER_PAYLOAD:
            payload = await asyncio.wait_for(
                self.reader.readexactly(int(text.split(" ")[-1])), timeout
            )
        return text, payload

    async def until(self, prefix: str, timeout: float = 2.0) -> str:
        """Skip commands until one starts with ``prefix``."""
        while True:
            text, _ = await self.command(timeout)
            if text.startswith(prefix):
                return text

    async def closed(self, timeout: float = 2.0) -> bool:
        """True when the server closes the connection (after any pending lines)."""
        try:
            while await asyncio.wait_for(self.reader.read(4096), timeout):
                pass
        except ConnectionError:
            pass
        return True

    async def silent(self, wait: float = 0.2) -> bool:
        """True when nothing arrives for ``wait`` seconds."""
        try:
            await asyncio.wait_for(self.reader.read(1), wait)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def server():
    srv = MSNPTestServer()
    await srv.start()
    srv.add_account("alice@example.com", "secret", nick="Alice Ü")
    srv.add_account("bob@example.com", "hunter2", nick="Bob")
    srv.add_account("carol@example.com", "pw3", nick="Carol")
    srv.add_group("alice@example.com", "Friends")
    srv.add_contact("alice@example.com", "bob@example.com", groups=("Friends",))
    srv.add_contact("alice@example.com", "carol@example.com")
    srv.add_contact("bob@example.com", "alice@example.com")
    srv.add_contact("carol@example.com", "alice@example.com")
    yield srv
    await srv.stop()


async def passport_ticket(srv: MSNPTestServer, email: str, password: str, chal: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(srv.nexus_url) as resp:
            urls = resp.headers["PassportURLs"]
        dalogin = dict(p.split("=", 1) for p in urls.split(","))["DALogin"]
        assert dalogin == f"127.0.0.1:{srv.http_port}/login2.srf"
        auth = (
            "Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,"
            f"sign-in={quote(email)},pwd={quote(password)},{chal}"
        )
        async with http.get(f"http://{dalogin}", headers={"Authorization": auth}) as resp:
            if resp.status != 200:
                raise PermissionError(resp.headers.get("WWW-Authenticate", ""))
            info = resp.headers["Authentication-Info"]
    return info.split("from-PP='", 1)[1].split("'", 1)[0]


async def login(
    srv: MSNPTestServer,
    email: str,
    password: str,
    version: int,
    chg: bool = True,
    syn: bool = True,
) -> Raw:
    """Sign in straight at the NS (no dispatch), SYN and the first CHG if asked."""
    c = await Raw.connect(srv.ns_port)
    c.send(f"VER 1 MSNP{version} CVR0")
    assert await c.line() == f"VER 1 MSNP{version}" + (" CVR0" if version >= 8 else "")
    if version <= 7:
        c.send(f"USR 2 MD5 I {email}")
        salt = (await c.line()).split(" ")[4]
        digest = hashlib.md5((salt + password).encode()).hexdigest()
        c.send(f"USR 3 MD5 S {digest}")
    else:
        c.send(f"USR 2 TWN I {email}")
        chal = (await c.line()).split(" ")[4]
        ticket = await passport_ticket(srv, email, password, chal)
        c.send(f"USR 3 TWN S {ticket}")
    assert (await c.line()).startswith(f"USR 3 OK {email}")
    await c.until("MSG Hotmail Hotmail")
    if not syn:
        return c
    c.send("SYN 4 0 0" if version >= 10 else "SYN 4 0")
    await c.until("SYN 4")
    if chg:
        c.send("CHG 5 NLN 0" if version >= 8 else "CHG 5 NLN")
        await c.until("CHG 5 NLN")
    return c


async def test_msnp8_twn_login_end_to_end(server: MSNPTestServer) -> None:
    server.set_presence("bob@example.com", "AWY", caps=536870948)
    d = await Raw.connect(server.dispatch_port)
    d.send("VER 1 MSNP8 CVR0")
    assert await d.line() == "VER 1 MSNP8 CVR0"
    d.send("CVR 2 0x0409 win 4.10 i386 MSNMSGR 5.0.0544 MSMSGS alice@example.com")
    assert (await d.line()).startswith("CVR 2 6.0.0602 6.0.0602 1.0.0000 http")
    d.send("USR 3 TWN I alice@example.com")
    ns = f"127.0.0.1:{server.ns_port}"
    assert await d.line() == f"XFR 3 NS {ns} 0 {ns}"
    assert await d.silent()  # the client is the one to hang up
    d.close()

    c = await Raw.connect(server.ns_port)
    c.send("VER 4 MSNP8 CVR0")
    assert await c.line() == "VER 4 MSNP8 CVR0"
    c.send("CVR 5 0x0409 win 4.10 i386 MSNMSGR 5.0.0544 MSMSGS alice@example.com")
    await c.line()
    c.send("USR 6 TWN I alice@example.com")
    words = (await c.line()).split(" ")
    assert words[:4] == ["USR", "6", "TWN", "S"] and "tpf=" in words[4]
    with pytest.raises(PermissionError, match="da-status=failed"):
        await passport_ticket(server, "alice@example.com", "wrong", words[4])
    ticket = await passport_ticket(server, "alice@example.com", "secret", words[4])
    assert ticket.startswith("t=") and "&p=" in ticket
    c.send(f"USR 7 TWN S {ticket}")
    assert await c.line() == "USR 7 OK alice@example.com Alice%20%C3%9C 1 0"
    text, profile = await c.command()
    assert text.startswith("MSG Hotmail Hotmail ")
    assert b"Content-Type: text/x-msmsgsprofile" in profile
    c.send("SYN 8 0")
    syn = (await c.line()).split(" ")
    assert syn[:2] == ["SYN", "8"] and syn[3:] == ["2", "2"]
    got = [await c.line() for _ in range(2 + 2 + 2)]
    assert got[:2] == ["GTC A", "BLP AL"]
    assert got[2:4] == ["LSG 0 Other%20Contacts 0", "LSG 1 Friends 0"]
    assert sorted(got[4:]) == ["LST bob@example.com Bob 11 1", "LST carol@example.com Carol 11 0"]
    c.send("CHG 9 NLN")  # MSNP8 ignores a CHG without caps
    assert await c.silent()
    c.send("CHG 10 NLN 268435456")
    assert await c.line() == "CHG 10 NLN 268435456"
    assert await c.line() == "ILN 10 AWY bob@example.com Bob 536870948"
    chl = (await c.line()).split(" ")
    assert chl[:2] == ["CHL", "0"]
    c.send("QRY 11 msmsgs@msnmsgr.com 32", answer(chl[2], 8).encode())
    assert await c.line() == "QRY 11"
    c.send("PNG")
    assert await c.line() == "QNG"  # bare before MSNP9
    assert server.stats.logins[8] == 1 and server.stats.qry_ok == 1
    c.close()


async def test_msnp6_md5_login_replays_seed_shape(server: MSNPTestServer) -> None:
    d = await Raw.connect(server.dispatch_port)
    d.send("VER 1 MSNP6 MSNP5 MSNP4 CVR0")
    assert await d.line() == "VER 1 MSNP6"
    d.send("INF 2")
    assert await d.line() == "INF 2 MD5"
    d.send("USR 3 MD5 I alice@example.com")
    assert await d.line() == f"XFR 3 NS 127.0.0.1:{server.ns_port} 0"
    d.send("USR 4 MD5 I alice@example.com")  # nothing more is accepted after the redirect
    assert await d.closed()

    c = await Raw.connect(server.ns_port)
    c.send("VER 4 MSNP6 MSNP5 MSNP4 CVR0")
    assert await c.line() == "VER 4 MSNP6"
    c.send("INF 5")
    assert await c.line() == "INF 5 MD5"
    c.send("USR 6 MD5 I alice@example.com")
    words = (await c.line()).split(" ")
    assert words[:4] == ["USR", "6", "MD5", "S"]
    c.send(f"USR 7 MD5 S {hashlib.md5((words[4] + 'secret').encode()).hexdigest()}")
    assert await c.line() == "USR 7 OK alice@example.com Alice%20%C3%9C 1"
    await c.command()  # profile
    version = server.account("alice@example.com").list_version
    c.send(f"SYN 8 {version}")
    assert await c.line() == f"SYN 8 {version}"  # up to date: nothing more
    c.send("CHG 9 NLN")
    assert await c.line() == "CHG 9 NLN"
    chl = (await c.line()).split(" ")
    c.send("QRY 10 msmsgs@msnmsgr.com 32", answer(chl[2], 6).encode())
    assert await c.line() == "QRY 10"
    c.send("OUT")
    assert await c.line() == "OUT"
    assert await c.closed()
    assert server.online_sessions("alice@example.com") == 0


async def test_msnp7_full_sync_has_trids_versions_and_groups(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 7, syn=False)
    ver = server.account("alice@example.com").list_version
    c.send("SYN 4 0")
    lines = [await c.line() for _ in range(10)]
    assert lines == [
        f"SYN 4 {ver}",
        f"GTC 4 {ver} A",
        f"BLP 4 {ver} AL",
        f"LSG 4 {ver} 1 2 0 Other%20Contacts 0",
        f"LSG 4 {ver} 2 2 1 Friends 0",
        f"LST 4 FL {ver} 1 2 bob@example.com Bob 1",
        f"LST 4 FL {ver} 2 2 carol@example.com Carol 0",
        f"LST 4 AL {ver} 1 2 bob@example.com Bob",
        f"LST 4 AL {ver} 2 2 carol@example.com Carol",
        f"LST 4 BL {ver} 0 0",
    ]
    assert (await c.line()).startswith(f"LST 4 RL {ver} 1 2 ")


async def test_msnp12_sync_form(server: MSNPTestServer) -> None:
    c = await Raw.connect(server.ns_port)
    c.send("VER 1 MSNP12 MSNP11 CVR0")
    assert await c.line() == "VER 1 MSNP12 CVR0"
    c.send("USR 2 TWN I alice@example.com")
    chal = (await c.line()).split(" ")[4]
    c.send(f"USR 3 TWN S {await passport_ticket(server, 'alice@example.com', 'secret', chal)}")
    assert await c.line() == "USR 3 OK alice@example.com 1 0"
    assert await c.line() == "SBS 0 null"
    await c.command()
    c.send("SYN 4 0 0")
    syn = (await c.line()).split(" ")
    assert syn[4:] == ["2", "1"]
    assert [await c.line() for _ in range(3)] == ["GTC A", "BLP AL", "PRP MFN Alice%20%C3%9C"]
    friends = server.group("alice@example.com", "Friends").guid
    assert await c.line() == f"LSG Friends {friends}"
    bob = server.account("alice@example.com").contacts["bob@example.com"].guid
    lst = sorted([await c.line(), await c.line()])
    assert lst[0] == f"LST N=bob@example.com F=Bob C={bob} 11 1 {friends}"
    assert lst[1].startswith("LST N=carol@example.com F=Carol C=") and lst[1].endswith(" 11 1")


@pytest.mark.parametrize(
    ("version", "bad"),
    [
        (8, "ADC 9 FL N=bob@example.com F=Bob"),
        (10, "REA 9 alice@example.com x"),
        (10, "UUX 9 0"),
        (8, "INF 9"),
        (12, "FOO 9"),
        (7, "CHG 9 NLN 0"),  # caps did not exist before MSNP8
        (11, "SYN 9 0"),  # SYN takes two timestamps from MSNP10
    ],
)
async def test_command_the_version_does_not_define_closes(
    server: MSNPTestServer, version: int, bad: str
) -> None:
    c = await login(server, "alice@example.com", "secret", version)
    c.send(bad)
    assert await c.closed()
    assert server.online_sessions("alice@example.com") == 0


async def test_commands_before_auth_close(server: MSNPTestServer) -> None:
    c = await Raw.connect(server.ns_port)
    c.send("VER 1 MSNP9 CVR0")
    await c.line()
    c.send("SYN 2 0")
    assert await c.closed()
    c = await Raw.connect(server.ns_port)
    c.send("CVR 1 0x0409 win 4.10 i386 MSNMSGR 5.0.0544 MSMSGS a@b.com")  # before VER
    assert await c.closed()
    c = await Raw.connect(server.ns_port)
    c.send("VER 1 MSNP9 CVR0")
    await c.line()
    c.send("USR 2 MD5 I alice@example.com")  # MD5 on MSNP9
    assert await c.closed()


async def test_wrong_qry_gets_540_and_close(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 11)
    chl = (await c.until("CHL 0")).split(" ")
    md5_style = answer(chl[2], 10)  # the MSNP6-10 algorithm on MSNP11 is wrong
    c.send("QRY 6 PROD0090YUAUV{2B 32", md5_style.encode())
    assert await c.line() == "540 6"
    assert await c.closed()
    assert server.stats.qry_failed == 1


async def test_right_qry_on_msnp11_with_second_product(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 11)
    chl = (await c.until("CHL 0")).split(" ")
    hexdigits = answer(chl[2], 11, "PROD0101{0RM?UBW", "CFHUR$52U_{VIX5T")
    c.send("QRY 6 PROD0101{0RM?UBW 32", hexdigits.encode())
    assert await c.line() == "QRY 6"
    c.send("PNG")
    assert await c.line() == "QNG 50"


async def test_periodic_challenges_and_none_when_disabled() -> None:
    srv = MSNPTestServer(chl_interval=0.2)
    await srv.start()
    srv.add_account("alice@example.com", "secret")
    try:
        c = await login(srv, "alice@example.com", "secret", 9)
        for trid in (6, 7):
            chl = (await c.until("CHL 0")).split(" ")
            c.send(
                f"QRY {trid} PROD0038W!61ZTF9 32",
                answer(chl[2], 9, "PROD0038W!61ZTF9", "VT6PX?UQTM4WM%YR").encode(),
            )
            assert await c.line() == f"QRY {trid}"
    finally:
        await srv.stop()
    srv = MSNPTestServer(send_chl=False)
    await srv.start()
    srv.add_account("alice@example.com", "secret")
    try:
        c = await login(srv, "alice@example.com", "secret", 9)
        assert await c.silent(0.3)
        assert srv.stats.challenges_sent == 0
    finally:
        await srv.stop()


async def test_expired_ticket_is_refused() -> None:
    srv = MSNPTestServer(ticket_ttl=0.2)
    await srv.start()
    srv.add_account("alice@example.com", "secret")
    try:
        c = await Raw.connect(srv.ns_port)
        c.send("VER 1 MSNP9 CVR0")
        await c.line()
        c.send("USR 2 TWN I alice@example.com")
        chal = (await c.line()).split(" ")[4]
        ticket = await passport_ticket(srv, "alice@example.com", "secret", chal)
        await asyncio.sleep(0.3)
        c.send(f"USR 3 TWN S {ticket}")
        assert await c.line() == "911 3"
        assert await c.closed()
    finally:
        await srv.stop()


async def test_xfr_sb_before_chg_is_913(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 9, chg=False)
    c.send("XFR 5 SB")
    assert await c.until("913") == "913 5"
    c.send("CHG 6 HDN 0")
    await c.until("CHG 6 HDN 0")
    c.send("XFR 7 SB")
    assert await c.until("913") == "913 7"  # hidden users cannot open switchboards either
    c.send("CHG 8 NLN 0")
    await c.until("CHG 8")
    c.send("XFR 9 SB")
    words = (await c.line()).split(" ")
    assert words[:4] == ["XFR", "9", "SB", f"127.0.0.1:{server.sb_port}"] and words[4] == "CKI"


async def test_second_login_gets_out_oth(server: MSNPTestServer) -> None:
    first = await login(server, "alice@example.com", "secret", 9)
    second = await login(server, "alice@example.com", "secret", 12)
    assert await first.until("OUT") == "OUT OTH"
    assert await first.closed()
    assert server.online_sessions("alice@example.com") == 1
    second.send("PNG")
    assert await second.until("QNG") == "QNG 50"


async def test_presence_fans_out_in_each_watchers_form(server: MSNPTestServer) -> None:
    bob = await login(server, "bob@example.com", "hunter2", 7)
    carol = await login(server, "carol@example.com", "pw3", 12)
    alice = await login(server, "alice@example.com", "secret", 11, chg=False)
    alice.send("CHG 5 NLN 1073741824")
    assert await alice.until("CHG 5") == "CHG 5 NLN 1073741824"
    iln = sorted([await alice.line(), await alice.line()])
    assert iln == ["ILN 5 NLN bob@example.com Bob 0", "ILN 5 NLN carol@example.com Carol 0"]
    assert await bob.until("NLN") == "NLN NLN alice@example.com Alice%20%C3%9C"  # MSNP7
    assert await carol.until("NLN") == "NLN NLN alice@example.com Alice%20%C3%9C 1073741824"
    alice.send("CHG 6 HDN 1073741824")
    assert await bob.until("FLN") == "FLN alice@example.com"  # hidden looks offline
    alice.send("CHG 7 AWY 1073741824")
    assert await carol.until("NLN") == "NLN AWY alice@example.com Alice%20%C3%9C 1073741824"
    alice.send("PRP 8 MFN Al")
    assert await alice.until("PRP 8") == "PRP 8 MFN Al"
    assert await bob.until("NLN") == "NLN AWY alice@example.com Alice%20%C3%9C"
    assert await bob.until("NLN") == "NLN AWY alice@example.com Al"
    alice.close()
    assert await bob.until("FLN") == "FLN alice@example.com"
    assert await carol.until("FLN") == "FLN alice@example.com"


async def test_psm_block_list_and_rl_notice(server: MSNPTestServer) -> None:
    carol = await login(server, "carol@example.com", "pw3", 12)
    alice = await login(server, "alice@example.com", "secret", 11)
    await carol.until("NLN NLN alice@example.com")
    psm = b"<Data><PSM>hi</PSM><CurrentMedia></CurrentMedia></Data>"
    alice.send(f"UUX 7 {len(psm)}", psm)
    assert await alice.until("UUX 7") == "UUX 7 0"
    text, payload = await carol.command()
    assert text == f"UBX alice@example.com {len(psm)}" and payload == psm
    alice.send("ADC 8 BL N=carol@example.com")
    assert await alice.until("219") == "219 8"  # carol is on AL
    alice.send("REM 9 AL carol@example.com")
    assert await alice.until("REM 9") == "REM 9 AL carol@example.com"
    alice.send("ADC 10 BL N=carol@example.com")
    assert await alice.until("ADC 10") == "ADC 10 BL N=carol@example.com"
    assert await carol.until("FLN") == "FLN alice@example.com"  # blocked: appears offline
    # a new contact hears about being added when online
    server.add_account("dave@example.com", "pw4", nick="Dave")
    dave = await login(server, "dave@example.com", "pw4", 9)
    alice.send("ADC 11 FL N=dave@example.com F=Dave")
    reply = (await alice.until("ADC 11")).split(" ")
    assert reply[:5] == ["ADC", "11", "FL", "N=dave@example.com", "F=Dave"]
    assert reply[5].startswith("C=")
    assert await alice.until("NLN") == "NLN NLN dave@example.com Dave 0"
    ver = server.account("dave@example.com").list_version
    assert await dave.until("ADD 0 RL") == f"ADD 0 RL {ver} alice@example.com Alice%20%C3%9C"
    alice.send("ADC 12 FL N=nobody@example.com F=x")
    assert await alice.until("205 12") == "205 12"


async def test_msnp9_list_and_group_commands(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 9)
    acc = server.account("alice@example.com")
    c.send("ADG 6 Work%20Mates 0")
    assert await c.until("ADG 6") == f"ADG 6 {acc.list_version} Work%20Mates 2 0"
    c.send("ADD 7 FL bob@example.com Bob 2")
    assert await c.until("ADD 7") == f"ADD 7 FL {acc.list_version} bob@example.com Bob 2"
    c.send("ADD 8 FL bob@example.com Bob 2")
    assert await c.until("215") == "215 8"
    c.send("RMG 9 0")
    assert await c.until("230") == "230 9"
    c.send("RMG 10 7")
    assert await c.until("224") == "224 10"
    c.send("REM 11 FL bob@example.com 2")
    assert await c.until("REM 11") == f"REM 11 FL {acc.list_version} bob@example.com 2"
    c.send("BLP 12 BL")
    assert await c.until("BLP 12") == f"BLP 12 {acc.list_version} BL"
    c.send("REA 13 alice@example.com New%20Name")
    assert await c.until("REA 13") == f"REA 13 {acc.list_version} alice@example.com New%20Name"
    assert acc.nick == "New Name" and acc.blp == "BL"


async def test_switchboard_invite_flow_ack_and_bye(server: MSNPTestServer) -> None:
    alice = await login(server, "alice@example.com", "secret", 12)
    bob = await login(server, "bob@example.com", "hunter2", 9)
    alice.send("XFR 6 SB")
    words = (await alice.until("XFR 6")).split(" ")
    sb_a = await Raw.connect(server.sb_port)
    sb_a.send(f"USR 1 alice@example.com {words[5]}")
    assert await sb_a.line() == "USR 1 OK alice@example.com Alice%20%C3%9C"
    sb_a.send("CAL 2 bob@example.com")
    ringing = (await sb_a.line()).split(" ")
    assert ringing[:3] == ["CAL", "2", "RINGING"]
    rng = (await bob.until("RNG")).split(" ")
    assert rng[1] == ringing[3] and rng[2] == f"127.0.0.1:{server.sb_port}" and rng[3] == "CKI"
    assert rng[5:] == ["alice@example.com", "Alice%20%C3%9C"]
    sb_b = await Raw.connect(server.sb_port)
    sb_b.send(f"ANS 1 bob@example.com {rng[4]} {rng[1]}")
    assert await sb_b.line() == "IRO 1 1 1 alice@example.com Alice%20%C3%9C"  # MSNP9: no caps
    assert await sb_b.line() == "ANS 1 OK"
    assert await sb_a.line() == "JOI bob@example.com Bob 0"  # MSNP12 JOI carries caps
    sb_a.send("CAL 3 bob@example.com")
    assert await sb_a.line() == "215 3"
    sb_a.send("CAL 4 nobody@example.com")
    assert await sb_a.line() == "208 4"
    body = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhé".encode()
    sb_a.send(f"MSG 5 A {len(body)}", body)
    assert await sb_a.line() == "ACK 5"
    text, payload = await sb_b.command()
    assert text == f"MSG alice@example.com Alice%20%C3%9C {len(body)}" and payload == body
    sb_b.send("OUT")
    assert await sb_a.line() == "BYE bob@example.com"
    assert await sb_b.closed()
    assert server.stats.messages_relayed == 1 and server.stats.acks == 1


async def test_cal_offline_or_hidden_is_217(server: MSNPTestServer) -> None:
    alice = await login(server, "alice@example.com", "secret", 10)
    alice.send("XFR 6 SB")
    cookie = (await alice.until("XFR 6")).split(" ")[5]
    sb = await Raw.connect(server.sb_port)
    sb.send(f"USR 1 alice@example.com {cookie}")
    await sb.line()
    sb.send("CAL 2 bob@example.com")
    assert await sb.line() == "217 2"
    server.set_presence("bob@example.com", "HDN")
    sb.send("CAL 3 bob@example.com")
    assert await sb.line() == "217 3"


async def _lone_switchboard(srv: MSNPTestServer) -> Raw:
    alice = await login(srv, "alice@example.com", "secret", 9)
    alice.send("XFR 6 SB")
    cookie = (await alice.until("XFR 6")).split(" ")[5]
    sb = await Raw.connect(srv.sb_port)
    sb.send(f"USR 1 alice@example.com {cookie}")
    await sb.line()
    return sb


async def test_nak_when_alone_and_never_when_disabled(server: MSNPTestServer) -> None:
    sb = await _lone_switchboard(server)
    sb.send("MSG 2 N 5", b"hello")
    assert await sb.line() == "NAK 2"
    sb.send("MSG 3 U 5", b"hello")
    assert await sb.silent()
    srv = MSNPTestServer(send_nak=False)
    await srv.start()
    srv.add_account("alice@example.com", "secret")
    try:
        sb = await _lone_switchboard(srv)
        sb.send("MSG 2 A 5", b"hello")
        assert await sb.silent(0.3)
        assert srv.stats.naks == 0
    finally:
        await srv.stop()


async def test_switchboard_payload_over_1664_closes(server: MSNPTestServer) -> None:
    sb = await _lone_switchboard(server)
    sb.send("MSG 2 N 1664", b"x" * 1664)
    assert await sb.line() == "NAK 2"
    sb.send("MSG 3 N 1665", b"x" * 1665)
    assert await sb.closed()
    assert server.stats.closes["payload_too_large"] == 1


async def test_idle_switchboard_closes_with_bye_1() -> None:
    srv = MSNPTestServer(idle_timeout=0.3)
    await srv.start()
    srv.add_account("alice@example.com", "secret")
    srv.add_account("bob@example.com", "pw")
    srv.add_contact("alice@example.com", "bob@example.com")
    srv.add_contact("bob@example.com", "alice@example.com")
    try:
        alice = await login(srv, "alice@example.com", "secret", 9)
        bob = await login(srv, "bob@example.com", "pw", 9)
        alice.send("XFR 6 SB")
        cookie = (await alice.until("XFR 6")).split(" ")[5]
        sb_a = await Raw.connect(srv.sb_port)
        sb_a.send(f"USR 1 alice@example.com {cookie}")
        await sb_a.line()
        sb_a.send("CAL 2 bob@example.com")
        await sb_a.line()
        rng = (await bob.until("RNG")).split(" ")
        sb_b = await Raw.connect(srv.sb_port)
        sb_b.send(f"ANS 1 bob@example.com {rng[4]} {rng[1]}")
        await sb_b.until("ANS 1 OK")
        assert await sb_a.line() == "JOI bob@example.com bob@example.com"
        assert await sb_a.line(1.0) == "BYE bob@example.com 1"
        assert await sb_b.line(1.0) == "BYE alice@example.com 1"
        assert await sb_a.closed() and await sb_b.closed()
    finally:
        await srv.stop()


async def test_ver_without_common_version() -> None:
    srv = MSNPTestServer(versions=(8, 12))
    await srv.start()
    try:
        c = await Raw.connect(srv.ns_port)
        c.send("VER 1 MSNP7 MSNP6 CVR0")
        assert await c.line() == "VER 1 0"
        assert await c.closed()
        c = await Raw.connect(srv.ns_port)
        c.send("VER 1 MSNP15 MSNP12 MSNP8 CVR0")
        assert await c.line() == "VER 1 MSNP12 CVR0"
    finally:
        await srv.stop()


async def test_graceful_stop_sends_ssd_and_restart_keeps_ports(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 9)
    ports = (server.dispatch_port, server.ns_port, server.sb_port, server.http_port)
    await server.stop(graceful=True)
    assert await c.until("OUT") == "OUT SSD"
    assert await c.closed()
    await server.start()
    assert (server.dispatch_port, server.ns_port, server.sb_port, server.http_port) == ports
    c = await login(server, "alice@example.com", "secret", 9)
    await server.kick("alice@example.com")
    assert await c.closed()
    assert server.online_sessions("alice@example.com") == 0


async def test_inject_and_system_messages_reach_the_client(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 9)
    await server.inject("alice@example.com", b"GARBAGE\r\n")
    assert await c.until("GARBAGE") == "GARBAGE"
    server.send_system_message("alice@example.com", 5)
    text, payload = await c.command()
    assert text.startswith("MSG Hotmail Hotmail") and b"Arg1: 5" in payload


async def test_redirect_false_serves_ns_on_dispatch_port() -> None:
    srv = MSNPTestServer(redirect=False)
    await srv.start()
    srv.add_account("alice@example.com", "secret")
    try:
        c = await Raw.connect(srv.dispatch_port)
        c.send("VER 1 MSNP5")
        assert await c.line() == "VER 1 MSNP5"
        c.send("USR 2 MD5 I alice@example.com")
        salt = (await c.line()).split(" ")[4]
        c.send(f"USR 3 MD5 S {hashlib.md5((salt + 'secret').encode()).hexdigest()}")
        assert await c.line() == "USR 3 OK alice@example.com alice@example.com"
    finally:
        await srv.stop()


async def test_subprocess_entry_prints_addresses_and_stops_on_sigterm(tmp_path) -> None:
    accounts = [{"passport": "alice@example.com", "password": "secret", "nick": "Alice"}]
    (tmp_path / "accounts.json").write_text(json.dumps(accounts))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.msnp_server",
        "--accounts",
        str(tmp_path / "accounts.json"),
        "--no-chl",
        "--demo",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        c = await Raw.connect(info["ns_port"])
        c.send("VER 1 MSNP9 CVR0")
        assert await c.line() == "VER 1 MSNP9 CVR0"
        c.send("USR 2 TWN I user1@example.com")
        assert (await c.line()).startswith("USR 2 TWN S lc=1033")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_msnp10_guid_group_commands(server: MSNPTestServer) -> None:
    c = await login(server, "alice@example.com", "secret", 10)
    c.send("ADG 6 Work")
    words = (await c.until("ADG 6")).split(" ")
    assert words[:3] == ["ADG", "6", "Work"]
    work = words[3]
    assert server.group("alice@example.com", "Work").guid == work
    bob = server.account("alice@example.com").contacts["bob@example.com"].guid
    c.send(f"ADC 7 FL C={bob} {work}")
    assert await c.until("ADC 7") == f"ADC 7 FL C={bob} {work}"
    c.send(f"ADC 8 FL C={bob} {work}")
    assert await c.until("215") == "215 8"
    c.send(f"REM 9 FL {bob} {work}")
    assert await c.until("REM 9") == f"REM 9 FL {bob} {work}"
    c.send(f"REG 10 {work} Office")
    assert await c.until("REG 10") == f"REG 10 {work} Office"
    c.send(f"RMG 11 {work}")
    assert await c.until("RMG 11") == f"RMG 11 {work}"
    c.send(f"REM 12 FL {bob}")
    assert await c.until("REM 12") == f"REM 12 FL {bob}"
    assert not server.account("bob@example.com").on("RL", "alice@example.com")


async def test_a_thousand_concurrent_sessions() -> None:
    """1,000 signed-in NS sessions at once in one process, presence flowing between them."""
    count = 1000
    srv = MSNPTestServer(send_chl=False)
    for i in range(count):
        srv.add_account(f"u{i}@example.com", "pw")
    for i in range(count):  # a ring: each watches the next one
        srv.add_contact(f"u{i}@example.com", f"u{(i + 1) % count}@example.com")
        srv.add_contact(f"u{(i + 1) % count}@example.com", f"u{i}@example.com", lists=("AL",))
    await srv.start()

    async def sign_in(i: int) -> Raw:
        c = await Raw.connect(srv.ns_port)
        c.send(f"VER 1 MSNP7\r\nUSR 2 MD5 I u{i}@example.com")
        await c.line(10)
        salt = (await c.line(10)).split(" ")[4]
        c.send(f"USR 3 MD5 S {hashlib.md5((salt + 'pw').encode()).hexdigest()}\r\nCHG 4 NLN")
        await c.until("CHG 4", 10)
        return c

    try:
        clients = await asyncio.gather(*(sign_in(i) for i in range(count)))
        assert len(srv.hub.ns) == count
        srv.set_nick("u1@example.com", "renamed")
        # u0 may first get u1's sign-in NLN, depending on who signed in first
        assert (
            await clients[0].until("NLN NLN u1@example.com r") == "NLN NLN u1@example.com renamed"
        )
        # u0 does not watch u2: nothing about u2 reaches it
        srv.set_nick("u2@example.com", "other")
        srv.set_nick("u1@example.com", "again")
        assert await clients[0].until("NLN") == "NLN NLN u1@example.com again"
        for c in clients:
            c.close()
    finally:
        await srv.stop()
