"""Presence lines (ILN, NLN, FLN, UBX) in the form of each protocol version."""

from __future__ import annotations

from .accounts import Account
from .framing import encode_arg, line, payload_line


def _tail(version: int, account: Account) -> list[object]:
    """What follows the nick: caps from MSNP8, the MSNObject from MSNP9 (when set)."""
    parts: list[object] = []
    if version >= 8:
        parts.append(account.caps)
        if version >= 9 and account.msnobj:
            parts.append(encode_arg(account.msnobj))
    return parts


def nln(version: int, account: Account) -> bytes:
    return line(
        "NLN", account.status, account.passport, encode_arg(account.nick), *_tail(version, account)
    )


def iln(version: int, trid: int, account: Account) -> bytes:
    return line(
        "ILN",
        trid,
        account.status,
        account.passport,
        encode_arg(account.nick),
        *_tail(version, account),
    )


def fln(passport: str) -> bytes:
    return line("FLN", passport)


def ubx(version: int, account: Account) -> bytes:
    """The personal message push (MSNP11+); empty bytes for older watchers."""
    if version < 11:
        return b""
    return payload_line("UBX", account.passport, payload=account.psm)


def psm_payload(text: str, media: str = "") -> bytes:
    from xml.sax.saxutils import escape

    return (
        f"<Data><PSM>{escape(text)}</PSM><CurrentMedia>{escape(media)}</CurrentMedia></Data>"
    ).encode()
