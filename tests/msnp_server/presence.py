"""Presence lines (ILN, NLN, FLN, UBX) in the form of each protocol version: MSNP14-17
put the network id after the passport (``NLN ST email 1 nick caps``), MSNP18 writes it
before (``NLN ST 1:email nick caps``) and sends no ILN."""

from __future__ import annotations

from .accounts import Account
from .framing import encode_arg, line, payload_line


def caps_of(version: int, account: Account) -> object:
    """Client caps as a watcher of ``version`` sees them: ``caps:extcaps`` from MSNP16."""
    return f"{account.caps}:{account.ext_caps}" if version >= 16 else account.caps


def _tail(version: int, account: Account) -> list[object]:
    """What follows the nick: caps from MSNP8, the MSNObject from MSNP9 (when set)."""
    parts: list[object] = []
    if version >= 8:
        parts.append(caps_of(version, account))
        if version >= 9 and account.msnobj:
            parts.append(encode_arg(account.msnobj))
    return parts


def who(version: int, passport: str, network: int = 1) -> list[object]:
    if version >= 18:
        return [f"{network}:{passport}"]
    if version >= 14:
        return [passport, network]
    return [passport]


def nln(version: int, account: Account) -> bytes:
    return line(
        "NLN",
        account.status,
        *who(version, account.passport),
        encode_arg(account.nick),
        *_tail(version, account),
    )


def iln(version: int, trid: int, account: Account) -> bytes:
    if version >= 18:
        return nln(version, account)
    return line(
        "ILN",
        trid,
        account.status,
        *who(version, account.passport),
        encode_arg(account.nick),
        *_tail(version, account),
    )


def fln(passport: str, version: int = 0) -> bytes:
    return line("FLN", *who(version, passport))


def ubx(version: int, account: Account) -> bytes:
    """The personal message push (MSNP11+); empty bytes for older watchers."""
    if version < 11:
        return b""
    return payload_line("UBX", *who(version, account.passport), payload=account.psm)


def psm_payload(text: str, media: str = "") -> bytes:
    from xml.sax.saxutils import escape

    return (
        f"<Data><PSM>{escape(text)}</PSM><CurrentMedia>{escape(media)}</CurrentMedia></Data>"
    ).encode()
