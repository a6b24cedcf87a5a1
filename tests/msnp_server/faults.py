"""Hostile server behaviour for fault-injection tests: lines a misbehaving or malicious
notification server pushes down one account's connection."""

from __future__ import annotations

from .framing import encode_arg, line


def stranger_presence(version: int, index: int, prefix: str = "stranger") -> bytes:
    """One NLN for a passport nobody has on a list (the caps field from MSNP8)."""
    passport = f"{prefix}{index}@example.net"
    tail: list[object] = [0] if version >= 8 else []
    status = ("NLN", "AWY", "BSY", "IDL")[index % 4]
    return line("NLN", status, passport, encode_arg(f"Stranger {index}"), *tail)


def invitation(
    host: str, port: int, inviter: str, nick: str, session_id: str = "1", cookie: str = "0.0"
) -> bytes:
    """An RNG into a switchboard at host:port (which may well be a closed port)."""
    return line("RNG", session_id, f"{host}:{port}", "CKI", cookie, inviter, encode_arg(nick))
