"""Secrets at rest: round trip, wrong key, damaged values, context binding."""

from __future__ import annotations

import pytest

from msnbridge.secrets import SecretBox, SecretKeyError, generate_secret_key


def test_round_trip_and_fresh_nonce() -> None:
    box = SecretBox(generate_secret_key())
    first = box.encrypt("hunter2 ünïcode", context="@alice:example.com")
    second = box.encrypt("hunter2 ünïcode", context="@alice:example.com")
    assert first != second  # a new nonce each time
    assert "hunter2" not in first
    assert box.decrypt(first, context="@alice:example.com") == "hunter2 ünïcode"
    # The key is derived, not random: a restarted bridge with the same config can decrypt.
    assert SecretBox("same key").decrypt(SecretBox("same key").encrypt("pw")) == "pw"


def test_wrong_key_raises_secret_key_error() -> None:
    stored = SecretBox("old key").encrypt("hunter2")
    with pytest.raises(SecretKeyError, match="key changed"):
        SecretBox("new key").decrypt(stored)


def test_other_context_does_not_decrypt() -> None:
    box = SecretBox("k")
    stored = box.encrypt("hunter2", context="@alice:example.com")
    with pytest.raises(SecretKeyError):
        box.decrypt(stored, context="@mallory:example.com")


@pytest.mark.parametrize("damaged", ["hunter2", "v1:!!!notbase64", "v1:AAAA"])
def test_damaged_values_raise_secret_key_error(damaged: str) -> None:
    with pytest.raises(SecretKeyError):
        SecretBox("k").decrypt(damaged)


def test_key_never_shown() -> None:
    assert "sekrit" not in repr(SecretBox("sekrit"))
    with pytest.raises(SecretKeyError):
        SecretBox("")
