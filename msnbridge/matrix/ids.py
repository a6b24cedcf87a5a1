"""Matrix user IDs for MSN passports (the spec's mapping from other character sets)."""

from __future__ import annotations

import re

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789.-/")


def escape_passport(passport: str) -> str:
    """alice@example.com → alice=40example.com. Passports are case-insensitive, so they are
    lower-cased rather than case-escaped; `_` doubles and other bytes become =xx."""
    out = []
    for byte in passport.strip().lower().encode():
        if byte in _PLAIN:
            out.append(chr(byte))
        elif byte == ord("_"):
            out.append("__")
        else:
            out.append(f"={byte:02x}")
    return "".join(out)


def unescape_passport(escaped: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(escaped):
        char = escaped[i]
        if char == "=" and re.fullmatch(r"[0-9a-f]{2}", escaped[i + 1 : i + 3]):
            raw.append(int(escaped[i + 1 : i + 3], 16))
            i += 3
        elif escaped.startswith("__", i):
            raw.append(ord("_"))
            i += 2
        else:
            raw.extend(char.encode())
            i += 1
    return raw.decode(errors="replace")


class GhostIds:
    """Turns passports into ghost user IDs and back, from appservice.username_template."""

    CACHED = 10_000  # user IDs whose answer passport() keeps (it is asked per event)

    def __init__(self, template: str, domain: str) -> None:
        self.prefix, self.suffix = template.split("{passport}")
        self.domain = domain
        self._passports: dict[str, str | None] = {}

    def localpart(self, passport: str) -> str:
        return f"{self.prefix}{escape_passport(passport)}{self.suffix}"

    def mxid(self, passport: str) -> str:
        return f"@{self.localpart(passport)}:{self.domain}"

    def passport(self, mxid: str) -> str | None:
        """The passport a ghost user ID stands for, or None if it is not one of ours."""
        try:
            return self._passports[mxid]
        except KeyError:
            pass
        if len(self._passports) >= self.CACHED:
            self._passports.clear()
        found = self._passports[mxid] = self._passport(mxid)
        return found

    def _passport(self, mxid: str) -> str | None:
        localpart, sep, domain = mxid.removeprefix("@").partition(":")
        if not sep or domain != self.domain:
            return None
        if not localpart.startswith(self.prefix) or not localpart.endswith(self.suffix):
            return None
        inner = localpart[len(self.prefix) : len(localpart) - len(self.suffix)]
        return unescape_passport(inner) if inner else None

    def regex(self) -> str:
        """The registration's user namespace: every ghost, and nothing else."""
        return f"@{re.escape(self.prefix)}.*{re.escape(self.suffix)}:{re.escape(self.domain)}"
