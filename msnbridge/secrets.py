"""Encryption of secrets at rest (MSN passwords, needed again for every TWN login).

AES-256-GCM with a key derived by HKDF-SHA256 from `bridge.secret_key`. The stored form is
`v1:` + base64url(nonce ‖ ciphertext ‖ tag). An optional context (the owner's ID) is bound
as associated data, so a ciphertext copied to another user's row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "v1:"
_NONCE_SIZE = 12
_HKDF_INFO = b"msnbridge stored secrets v1"


class SecretKeyError(Exception):
    """A stored secret cannot be decrypted: the key changed, or the value is damaged."""


def generate_secret_key() -> str:
    return _random.token_urlsafe(32)


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise SecretKeyError("bridge.secret_key is empty; run msnbridge -g to generate one")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            secret_key.encode()
        )
        self._aead = AESGCM(derived)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: str, context: str = "") -> str:
        nonce = os.urandom(_NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, context: str = "") -> str:
        if not stored.startswith(_PREFIX):
            raise SecretKeyError("stored secret is not in a known format (expected 'v1:…')")
        try:
            raw = base64.urlsafe_b64decode(stored[len(_PREFIX) :].encode())
        except (binascii.Error, ValueError):
            raise SecretKeyError("stored secret is damaged (not base64)") from None
        if len(raw) < _NONCE_SIZE + 16:
            raise SecretKeyError("stored secret is damaged (too short)")
        try:
            plain = self._aead.decrypt(raw[:_NONCE_SIZE], raw[_NONCE_SIZE:], context.encode())
        except InvalidTag:
            raise SecretKeyError(
                "stored secret cannot be decrypted with bridge.secret_key: the key changed "
                "since it was stored (or the value was damaged); the user must log in again"
            ) from None
        return plain.decode()
