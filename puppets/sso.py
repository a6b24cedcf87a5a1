"""MSNP15-18 single sign-on: the Passport RST request for the service tokens and the
``MBI_KEY_OLD`` answer to the notification server's nonce."""

from __future__ import annotations

import asyncio
import base64
import calendar
import hashlib
import hmac
import os
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import aiohttp
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from .errors import AuthenticationError
from .soap.base import SoapFault, SoapHTTPError, all_named, envelope, esc, find, post, text

try:  # cryptography >= 43 keeps TripleDES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore

__all__ = [
    "MESSENGER",
    "SERVICES",
    "SecurityToken",
    "TokenStore",
    "derive_key",
    "mbi_key_response",
    "request_tokens",
]

_HASH_MAGIC = b"WS-SecureConversationSESSION KEY HASH"
_ENC_MAGIC = b"WS-SecureConversationSESSION KEY ENCRYPTION"
_CRYPT_MODE_CBC = 1
_CALG_3DES = 0x6603
_CALG_SHA1 = 0x8004

MESSENGER = "messengerclear.live.com"
CONTACTS = "contacts.msn.com"
WEB = "messenger.msn.com"  # RSI (reading offline messages)
SECURE = "messengersecure.live.com"  # OIM (sending them)
# (service address, policy); the messenger policy is the one the NS names in USR SSO S.
SERVICES: tuple[tuple[str, str], ...] = (
    (MESSENGER, "MBI_KEY_OLD"),
    (CONTACTS, "MBI"),
    (WEB, "?id=507"),
    (SECURE, "MBI_SSL"),
)
RENEW_MARGIN = 300.0  # renew a token this many seconds before it expires


def derive_key(key: bytes, magic: bytes) -> bytes:
    """The WS-SecureConversation key derivation MSN uses (24 bytes from HMAC-SHA1)."""

    def h(data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha1).digest()

    h1 = h(magic)
    h2 = h(h1 + magic)
    h3 = h(h1)
    h4 = h(h3 + magic)
    return h2 + h4[:4]


def mbi_key_response(nonce: str, binary_secret: str, iv: bytes) -> str:
    """The answer to ``USR t SSO S MBI_KEY_OLD <nonce>``: base64 of the 28-byte
    little-endian header, the 8-byte IV, HMAC-SHA1(key2, nonce) and
    3DES-CBC(key3, IV, nonce + eight 0x08 bytes). The nonce is used as its ASCII bytes,
    not base64-decoded; ``binary_secret`` is the base64 BinarySecret of the messenger token.
    """
    if len(iv) != 8:
        raise ValueError("the IV must be 8 bytes")
    data = nonce.encode("ascii")
    key1 = base64.b64decode(binary_secret)
    key2 = derive_key(key1, _HASH_MAGIC)
    key3 = derive_key(key1, _ENC_MAGIC)
    digest = hmac.new(key2, data, hashlib.sha1).digest()
    # Windows' CryptEncrypt pads with eight 0x08 bytes whatever the length (as servers check).
    encryptor = Cipher(TripleDES(key3), modes.CBC(iv)).encryptor()
    cipher = encryptor.update(data + b"\x08" * 8) + encryptor.finalize()
    header = struct.pack(
        "<7I", 28, _CRYPT_MODE_CBC, _CALG_3DES, _CALG_SHA1, len(iv), len(digest), len(cipher)
    )
    return base64.b64encode(header + iv + digest + cipher).decode("ascii")


def random_iv() -> bytes:
    return os.urandom(8)


@dataclass(frozen=True, slots=True)
class SecurityToken:
    service: str
    ticket: str = field(repr=False)  # t=...&p=... (the BinarySecurityToken)
    binary_secret: str | None = field(default=None, repr=False)
    expires: float = 0.0  # unix time

    def expiring(self, margin: float = RENEW_MARGIN, now: float | None = None) -> bool:
        return (time.time() if now is None else now) + margin >= self.expires


_NS = (
    ' xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
    ' xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion"'
    ' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
    ' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"'
    ' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"'
    ' xmlns:wssc="http://schemas.xmlsoap.org/ws/2004/04/sc"'
    ' xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust"'
    ' xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL"'
)


def rst_request(passport: str, password: str, services: tuple[tuple[str, str], ...]) -> bytes:
    tokens = "".join(
        f'<wst:RequestSecurityToken Id="RST{i}">'
        "<wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue"
        "</wst:RequestType><wsp:AppliesTo><wsa:EndpointReference>"
        f"<wsa:Address>{esc(address)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        + (f'<wsse:PolicyReference URI="{esc(policy)}"/>' if policy else "")
        + "</wst:RequestSecurityToken>"
        for i, (address, policy) in enumerate((("http://Passport.NET/tb", ""), *services))
    )
    header = (
        '<ps:AuthInfo Id="PPAuthInfo"><ps:HostingApp>{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}'
        "</ps:HostingApp><ps:BinaryVersion>4</ps:BinaryVersion><ps:UIVersion>1</ps:UIVersion>"
        "<ps:Cookies/><ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams></ps:AuthInfo>"
        '<wsse:Security><wsse:UsernameToken Id="user">'
        f"<wsse:Username>{esc(passport)}</wsse:Username>"
        f"<wsse:Password>{esc(password)}</wsse:Password>"
        "</wsse:UsernameToken></wsse:Security>"
    )
    body = (
        f'<ps:RequestMultipleSecurityTokens Id="RSTS">{tokens}</ps:RequestMultipleSecurityTokens>'
    )
    return envelope(header, body, _NS)


def _parse_time(value: str) -> float:
    value = value.strip().rstrip("Z").split(".")[0]
    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%S")))


def parse_rst_response(root: ET.Element) -> dict[str, SecurityToken]:
    tokens: dict[str, SecurityToken] = {}
    for resp in all_named(root, "RequestSecurityTokenResponse"):
        address = text(resp, "AppliesTo", "EndpointReference", "Address")
        ticket = text(resp, "RequestedSecurityToken", "BinarySecurityToken")
        if not address or not ticket:
            continue
        secret = text(resp, "RequestedProofToken", "BinarySecret") or None
        expires_text = text(resp, "Lifetime", "Expires")
        expires = _parse_time(expires_text) if expires_text else time.time() + 3600
        tokens[address] = SecurityToken(address, ticket, secret, expires)
    return tokens


_AUTH_CODES = {"wsse:FailedAuthentication", "FailedAuthentication", "psf:InvalidUser"}


async def request_tokens(
    http: aiohttp.ClientSession,
    rst_url: str,
    passport: str,
    password: str,
    services: tuple[tuple[str, str], ...] = SERVICES,
    *,
    verify_tls: bool = True,
    timeout: float = 30.0,
) -> dict[str, SecurityToken]:
    """RequestMultipleSecurityTokens: the tokens by service address."""
    body = rst_request(passport, password, services)
    try:
        root = await post(
            http,
            rst_url,
            "RequestMultipleSecurityTokens",
            "http://schemas.microsoft.com/Passport/SoapServices/PPCRL/RequestMultipleSecurityTokens",
            body,
            verify_tls=verify_tls,
            timeout=timeout,
        )
    except SoapFault as e:
        if e.code in _AUTH_CODES or e.code.endswith(":FailedAuthentication"):
            raise AuthenticationError(
                f"Passport refused the passport or password ({e.code})"
            ) from e
        raise
    tokens = parse_rst_response(root)
    if find(root, "Fault") is None and MESSENGER not in tokens and services[0][0] == MESSENGER:
        raise SoapHTTPError(rst_url, 200, "the RST answer holds no messenger token")
    return tokens


class TokenStore:
    """The tokens of one account, fetched together and renewed before they expire."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        rst_url: str,
        passport: str,
        password: str,
        *,
        verify_tls: bool = True,
        timeout: float = 30.0,
        margin: float = RENEW_MARGIN,
    ) -> None:
        self._http = http
        self._rst_url = rst_url
        self._passport = passport
        self._password = password
        self._verify_tls = verify_tls
        self._timeout = timeout
        self.margin = margin
        self.tokens: dict[str, SecurityToken] = {}
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many RST requests were made (renewals show here)

    async def refresh(self) -> None:
        async with self._lock:
            await self._fetch()

    async def _fetch(self) -> None:
        self.tokens = await request_tokens(
            self._http,
            self._rst_url,
            self._passport,
            self._password,
            verify_tls=self._verify_tls,
            timeout=self._timeout,
        )
        self.fetches += 1

    async def get(self, service: str) -> SecurityToken:
        """The token for ``service``, renewed first when it expires within the margin."""
        async with self._lock:
            token = self.tokens.get(service)
            if token is None or token.expiring(self.margin):
                await self._fetch()
                token = self.tokens.get(service)
            if token is None:
                raise SoapHTTPError(self._rst_url, 200, f"no token for {service}")
            return token
