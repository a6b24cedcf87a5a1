"""MSNP15-18 single sign-on: the MBI_KEY_OLD answer (a published vector, an independent
reference, the server's own decrypt-and-compare check) and the RST token service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

import aiohttp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from puppets import AuthenticationError
from puppets.soap.endpoints import ServiceURLs
from puppets.sso import CONTACTS, MESSENGER, TokenStore, mbi_key_response, request_tokens
from tests.msnp_server import MSNPTestServer
from tests.msnp_server.sso import verify_mbi_answer

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore

# Published with the expected output in a 2010 forum thread reproducing MSNPSharp's
# answer: a secret of 23 zero bytes, a 64-character nonce, an all-zero IV.
VECTOR_SECRET = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
VECTOR_NONCE = "A" * 63 + "="
VECTOR_OUT = (
    "HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAAAAAAAAAAAA7XgT5ohvaZdoXdrWUUcMF2G8OK2JohyYcK5l5MJS"
    "itab33scxJeK/RQXcUr0L+R2ZA9CEAzn0izmUzSMp2LZdxSbHtnuxCmptgtoScHp9E26HjQVkA9YJxgK/HM="
)


def test_published_vector() -> None:
    assert mbi_key_response(VECTOR_NONCE, VECTOR_SECRET, bytes(8)) == VECTOR_OUT


def _reference(nonce: str, secret: str, iv: bytes) -> str:
    """A second implementation after libpurple's nexus.c: key derivation written out as
    its four HMAC steps, the blob built field by field."""
    key = base64.b64decode(secret)

    def derive(magic: bytes) -> bytes:
        a = hmac.new(key, magic, hashlib.sha1).digest()
        b = hmac.new(key, a + magic, hashlib.sha1).digest()
        c = hmac.new(key, a, hashlib.sha1).digest()
        d = hmac.new(key, c + magic, hashlib.sha1).digest()
        return b + d[:4]

    key2 = derive(b"WS-SecureConversationSESSION KEY HASH")
    key3 = derive(b"WS-SecureConversationSESSION KEY ENCRYPTION")
    raw = nonce.encode("ascii")
    enc = Cipher(TripleDES(key3), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(raw + bytes([8] * 8)) + enc.finalize()
    fields = [28, 1, 0x6603, 0x8004, 8, 20, 72]
    blob = b"".join(struct.pack("<I", f) for f in fields)
    blob += iv + hmac.new(key2, raw, hashlib.sha1).digest() + ciphertext
    return base64.b64encode(blob).decode()


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_and_server_check(seed: int) -> None:
    rng = __import__("random").Random(seed)
    secret = base64.b64encode(bytes(rng.randrange(256) for _ in range(24))).decode()
    # A real nonce is 64 base64 characters; its ASCII bytes are what is signed.
    nonce = base64.b64encode(bytes(rng.randrange(256) for _ in range(47))).decode()[:64]
    iv = bytes(rng.randrange(256) for _ in range(8))
    out = mbi_key_response(nonce, secret, iv)
    assert out == _reference(nonce, secret, iv)
    assert len(base64.b64decode(out)) == 28 + 8 + 20 + 72
    assert verify_mbi_answer(base64.b64decode(secret), nonce, out)
    # The wrong secret or the wrong nonce fails the server's decrypt-and-compare check.
    assert not verify_mbi_answer(os.urandom(24), nonce, out)
    assert not verify_mbi_answer(base64.b64decode(secret), nonce[::-1], out)


def test_iv_must_be_8_bytes() -> None:
    with pytest.raises(ValueError):
        mbi_key_response(VECTOR_NONCE, VECTOR_SECRET, b"short")


@pytest.fixture
async def rst_server():
    srv = MSNPTestServer(versions=(2, 18))
    await srv.start()
    srv.add_account("sso@example.com", "sso-pw")
    yield srv
    await srv.stop()


def _urls(srv: MSNPTestServer) -> ServiceURLs:
    return ServiceURLs.build(f"http://{srv.host}:{srv.http_port}")


async def test_rst_issues_messenger_and_contacts_tokens(rst_server: MSNPTestServer) -> None:
    async with aiohttp.ClientSession() as http:
        tokens = await request_tokens(
            http, _urls(rst_server).rst, "sso@example.com", "sso-pw", verify_tls=True
        )
    messenger = tokens[MESSENGER]
    assert messenger.ticket.startswith("t=") and "&p=" in messenger.ticket
    assert messenger.binary_secret and len(base64.b64decode(messenger.binary_secret)) == 24
    assert CONTACTS in tokens and tokens[CONTACTS].binary_secret is None
    assert not messenger.expiring()
    assert "sso-pw" not in repr(messenger) and messenger.ticket not in repr(messenger)


async def test_rst_wrong_password(rst_server: MSNPTestServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(AuthenticationError, match="FailedAuthentication"):
            await request_tokens(http, _urls(rst_server).rst, "sso@example.com", "nope")


async def test_token_store_renews_before_expiry(rst_server: MSNPTestServer) -> None:
    rst_server.hub.sso_tokens.ttl = 120  # inside the 300 s renewal margin
    async with aiohttp.ClientSession() as http:
        store = TokenStore(http, _urls(rst_server).rst, "sso@example.com", "sso-pw")
        first = await store.get(CONTACTS)
        second = await store.get(CONTACTS)
        assert store.fetches == 2 and first.ticket != second.ticket
        rst_server.hub.sso_tokens.ttl = 86400
        third = await store.get(CONTACTS)
        fourth = await store.get(MESSENGER)
        assert store.fetches == 3 and third.ticket != second.ticket
        assert fourth is store.tokens[MESSENGER]


def test_service_urls() -> None:
    urls = ServiceURLs.build("http://msn.example:8080/", oim_url="http://oim.example/x")
    assert urls.rst == "http://msn.example:8080/RST.srf"
    assert urls.abch == "http://msn.example:8080/abservice/abservice.asmx"
    assert urls.sharing == "http://msn.example:8080/abservice/SharingService.asmx"
    assert urls.rsi == "http://msn.example:8080/rsi/rsi.asmx"
    assert urls.oim == "http://oim.example/x"
