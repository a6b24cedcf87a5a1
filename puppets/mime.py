"""The MIME-like envelope of MSG payloads: header lines, a blank line, a body.

Parsing is tolerant (CRLF or bare LF, a missing blank line, invalid UTF-8) because
payloads come from many clients and servers; it never raises. Building is canonical:
CRLF everywhere and ``MIME-Version: 1.0`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Message", "build_message", "parse_fields", "parse_message", "redacted"]

# Header or field names whose values are credentials: never shown by repr().
_SECRET_NAMES = ("auth", "ticket", "password", "mspprof", "mspsec", "creds")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_NAMES)


def redacted(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` with the values of credential-like names replaced, for logs and repr."""
    return [(k, "<redacted>" if _is_secret(k) else v) for k, v in pairs]


def _header_lines(data: bytes) -> tuple[list[tuple[str, str]], int | None]:
    """Parse ``Name: value`` lines up to the first blank line.

    Returns the pairs and the offset just past the blank line (None when there is none).
    Lines without a colon are skipped; lines starting with whitespace continue the
    previous value (RFC 822 folding, which a few servers use for long values).
    """
    pairs: list[tuple[str, str]] = []
    pos = 0
    size = len(data)
    while pos < size:
        end = data.find(b"\n", pos)
        nxt = size if end < 0 else end + 1
        raw = data[pos : size if end < 0 else end]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        pos = nxt
        if not raw.strip(b" \t"):
            if not raw:
                return pairs, pos
            continue  # a line of spaces only: noise, not the end of the headers
        line = raw.decode("utf-8", "replace")
        if line[0] in " \t":
            if pairs:
                name, value = pairs[-1]
                pairs[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            continue
        pairs.append((name, value.strip()))
    return pairs, None


def parse_fields(data: bytes) -> dict[str, str]:
    """A body made of ``Name: value`` lines (Hotmail notices, invitations) as a dict.

    The first occurrence of a name wins, as with :meth:`Message.get`; blank lines are
    skipped rather than ending the fields.
    """
    fields: dict[str, str] = {}
    seen: set[str] = set()
    rest = data
    while rest:
        pairs, end = _header_lines(rest)
        for name, value in pairs:
            if name.lower() not in seen:
                seen.add(name.lower())
                fields[name] = value
        if end is None:
            break
        rest = rest[end:]
    return fields


@dataclass
class Message:
    """One MSG payload: header pairs in wire order and the raw body."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (case-insensitive), else ``default``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def param(self, name: str, param: str) -> str | None:
        """A ``; key=value`` parameter of a header, e.g. ``param("Content-Type", "charset")``."""
        value = self.get(name)
        if value is None:
            return None
        for part in value.split(";")[1:]:
            key, sep, val = part.partition("=")
            if sep and key.strip().lower() == param.lower():
                return val.strip().strip('"')
        return None

    @property
    def content_type(self) -> str:
        """The lower-cased media type without parameters ("" when absent)."""
        value = self.get("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        return self.param("Content-Type", "charset")

    def __repr__(self) -> str:  # profiles carry MSPAuth: keep it out of logs
        return f"Message(headers={redacted(self.headers)!r}, body=<{len(self.body)} bytes>)"


def parse_message(payload: bytes) -> Message:
    """Split a payload into headers and body. Never raises."""
    headers, end = _header_lines(payload)
    body = b"" if end is None else payload[end:]
    return Message(headers, body)


def _clean(text: str) -> str:
    # A CR or LF inside a header would let a value (a passport, a font) inject headers.
    return text.replace("\r", " ").replace("\n", " ")


def build_message(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Headers and body as wire bytes, with ``MIME-Version: 1.0`` first if absent."""
    lines: list[str] = []
    if not any(k.lower() == "mime-version" for k, _ in headers):
        lines.append("MIME-Version: 1.0")
    lines.extend(f"{_clean(k)}: {_clean(v)}" for k, v in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace") + body
