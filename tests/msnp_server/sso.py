"""The Passport RST service of MSNP15-18 (``POST /RST.srf``): issues the service tokens,
the messenger one with a binary secret, and checks the ``MBI_KEY_OLD`` answer the client
later gives the notification server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from .soap import answer, esc, fault, find, findall, text
from .tickets import _token

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore

if TYPE_CHECKING:
    from .hub import Hub

_NS = (
    ' xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
    ' xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust"'
    ' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
    ' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"'
    ' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"'
    ' xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"'
)
MESSENGER = "messengerclear.live.com"


@dataclass(slots=True)
class Token:
    passport: str
    service: str
    secret: bytes
    expires: float


class TokenBook:
    """SSO tokens by ticket; separate from the TWN tickets (their lifetime differs)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.tokens: dict[str, Token] = {}
        self.issued = 0

    def issue(self, passport: str, service: str) -> tuple[str, Token]:
        ticket = f"t={_token(60)}$$&p={_token(90)}$"
        token = Token(passport, service, os.urandom(24), time.time() + self.ttl)
        self.tokens[ticket] = token
        self.issued += 1
        return ticket, token

    def check(self, ticket: str, service: str | None = None) -> Token | None:
        """The live token of ``ticket`` (for ``service`` when given), or None."""
        token = self.tokens.get(ticket)
        if token is None or token.expires <= time.time():
            return None
        if service is not None and token.service != service:
            return None
        return token

    def expire_all(self, passport: str) -> None:
        for token in self.tokens.values():
            if token.passport == passport:
                token.expires = 0.0


def _derive(key: bytes, magic: bytes) -> bytes:
    def h(data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha1).digest()

    h1 = h(magic)
    return h(h1 + magic) + h(h(h1) + magic)[:4]


def verify_mbi_answer(secret: bytes, nonce: str, response: str) -> bool:
    """Decrypt the cipher with key3 and compare it and the hash with the nonce."""
    try:
        blob = base64.b64decode(response, validate=True)
    except ValueError:
        return False
    if len(blob) < 28 + 8 + 20 + 8:
        return False
    header = [int.from_bytes(blob[i : i + 4], "little") for i in range(0, 28, 4)]
    if header[:6] != [28, 1, 0x6603, 0x8004, 8, 20] or len(blob) != 28 + 8 + 20 + header[6]:
        return False
    iv, digest, cipher = blob[28:36], blob[36:56], blob[56:]
    if len(cipher) % 8:
        return False
    key2 = _derive(secret, b"WS-SecureConversationSESSION KEY HASH")
    key3 = _derive(secret, b"WS-SecureConversationSESSION KEY ENCRYPTION")
    decryptor = Cipher(TripleDES(key3), modes.CBC(iv)).decryptor()
    plain = decryptor.update(cipher) + decryptor.finalize()
    data = nonce.encode("ascii")
    expected = hmac.new(key2, data, hashlib.sha1).digest()
    return hmac.compare_digest(plain, data + b"\x08" * 8) and hmac.compare_digest(digest, expected)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _failed() -> web.Response:
    detail = (
        "<psf:error><psf:value>0x80048821</psf:value><psf:internalerror>"
        "<psf:code>0x80041012</psf:code><psf:text>The entered and stored passwords do not "
        "match.</psf:text></psf:internalerror></psf:error>"
    )
    return fault("wsse:FailedAuthentication", "Authentication Failure", detail=detail)


def make_rst_handler(hub: Hub):  # type: ignore[no-untyped-def]
    async def rst(request: web.Request, root: ET.Element) -> web.Response:
        if find(root, "RequestMultipleSecurityTokens") is None:
            return fault("wsse:InvalidRequest", "no RequestMultipleSecurityTokens")
        passport = text(root, "Username").lower()
        password = text(root, "Password")
        account = hub.directory.get(passport)
        if account is None or account.password is None or account.password != password:
            return _failed()
        responses = []
        for i, rst_el in enumerate(findall(root, "RequestSecurityToken")):
            address = text(rst_el, "Address")
            if not address or address == "http://Passport.NET/tb":
                continue
            ticket, token = hub.sso_tokens.issue(account.passport, address)
            proof = ""
            if address == MESSENGER:
                policy = find(rst_el, "PolicyReference")
                if policy is None or policy.get("URI") != "MBI_KEY_OLD":
                    return fault("wsse:InvalidRequest", "unsupported policy")
                secret = base64.b64encode(token.secret).decode()
                proof = (
                    f"<wst:RequestedProofToken><wst:BinarySecret>{secret}</wst:BinarySecret>"
                    "</wst:RequestedProofToken>"
                )
            now = time.time()
            responses.append(
                "<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact"
                "</wst:TokenType><wsp:AppliesTo><wsa:EndpointReference>"
                f"<wsa:Address>{esc(address)}</wsa:Address></wsa:EndpointReference>"
                f"</wsp:AppliesTo><wst:Lifetime><wsu:Created>{_stamp(now)}</wsu:Created>"
                f"<wsu:Expires>{_stamp(token.expires)}</wsu:Expires></wst:Lifetime>"
                f'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact{i}">'
                f"{esc(ticket)}</wsse:BinarySecurityToken></wst:RequestedSecurityToken>"
                f"{proof}</wst:RequestSecurityTokenResponse>"
            )
        body = (
            "<wst:RequestSecurityTokenResponseCollection>"
            + "".join(responses)
            + "</wst:RequestSecurityTokenResponseCollection>"
        )
        return answer(body, ns=_NS)

    return rst
