"""MSNObject: the XML element that names a display picture or custom emoticon.

``<msnobj Creator="a@b.c" Size="1234" Type="3" Location="0" Friendly="AAA="
SHA1D="…" SHA1C="…"/>``. SHA1D is base64 of SHA-1 of the data; SHA1C is base64 of SHA-1
of the field names and values (Creator, Size, Type, Location, Friendly, SHA1D)
concatenated in that order. A contact's object comes in ``NLN``/``ILN``/``CHG`` and in
emoticon payloads; the data itself is fetched over MSNSLP (:mod:`puppets.p2p`).

:func:`parse` refuses anything that is not a well-formed object with :class:`InvalidMSNObject`;
a missing SHA1C is tolerated (MSNP9-era clients leave it out), a wrong one is not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

__all__ = [
    "TYPE_AVATAR",
    "TYPE_DISPLAY_PICTURE",
    "TYPE_EMOTICON",
    "InvalidMSNObject",
    "MSNObject",
    "parse",
    "sha1d",
]

TYPE_EMOTICON = 2
TYPE_DISPLAY_PICTURE = 3
TYPE_AVATAR = 1  # unused by Messenger after 6.0; kept so such objects parse
TYPE_BACKGROUND = 5
TYPE_WINK = 8
TYPE_VOICE_CLIP = 11
KNOWN_TYPES = frozenset({1, 2, 3, 4, 5, 7, 8, 11, 12, 14})

MAX_TEXT = 4096  # an object is a few hundred bytes; anything far longer is garbage
_ELEMENT = re.compile(r"^\s*<msnobj\b(?P<attrs>[^<>]*?)/?>(?:\s*</msnobj>)?\s*\x00?\s*$", re.S)
_ATTR = re.compile(r'\s*([A-Za-z0-9]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}


class InvalidMSNObject(ValueError):
    """The text is not an MSNObject we can trust (says which part is wrong)."""


def sha1d(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def _unescape(value: str) -> str:
    return re.sub(r"&(amp|lt|gt|quot|apos);", lambda m: _ENTITIES[m.group(0)], value)


def _b64_sha1(value: str, field: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMSNObject(f"{field} is not base64: {value[:40]!r}") from None
    if len(raw) != 20:
        raise InvalidMSNObject(f"{field} is {len(raw)} bytes, not a 20-byte SHA-1")
    return raw


@dataclass(frozen=True, slots=True)
class MSNObject:
    creator: str
    size: int
    type: int
    location: str
    friendly: str  # base64 of the UTF-16LE name, as on the wire ("AAA=" for none)
    sha1d: str
    sha1c: str = ""  # "" when the sender left it out; build() always fills it
    extra: tuple[tuple[str, str], ...] = ()  # stamp, contenttype…: kept, not checked

    @classmethod
    def for_data(
        cls,
        creator: str,
        data: bytes,
        type: int = TYPE_DISPLAY_PICTURE,
        *,
        location: str = "TFR2C.tmp",
        friendly: str = "",
    ) -> MSNObject:
        """The object describing ``data`` (its SHA1D and SHA1C computed)."""
        name = base64.b64encode((friendly + "\x00").encode("utf-16-le")).decode()
        obj = cls(creator.lower(), len(data), type, location, name, sha1d(data))
        return obj.with_checksum()

    def computed_sha1c(self) -> str:
        text = (
            f"Creator{self.creator}Size{self.size}Type{self.type}"
            f"Location{self.location}Friendly{self.friendly}SHA1D{self.sha1d}"
        )
        return base64.b64encode(hashlib.sha1(text.encode("utf-8")).digest()).decode()

    def with_checksum(self) -> MSNObject:
        return MSNObject(
            self.creator,
            self.size,
            self.type,
            self.location,
            self.friendly,
            self.sha1d,
            self.computed_sha1c(),
            self.extra,
        )

    @property
    def friendly_name(self) -> str:
        try:
            raw = base64.b64decode(self.friendly, validate=True)
            return raw.decode("utf-16-le", "replace").rstrip("\x00")
        except (binascii.Error, ValueError):
            return ""

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` is what this object describes (size and SHA1D)."""
        return len(data) == self.size and sha1d(data) == self.sha1d

    def build(self) -> str:
        """The XML text (unencoded; URL-encode it as a command argument)."""
        sha1c = self.sha1c or self.computed_sha1c()
        pairs = [
            ("Creator", self.creator),
            ("Size", str(self.size)),
            ("Type", str(self.type)),
            ("Location", self.location),
            ("Friendly", self.friendly),
            ("SHA1D", self.sha1d),
            ("SHA1C", sha1c),
            *self.extra,
        ]
        return "<msnobj " + " ".join(f"{k}={quoteattr(v)}" for k, v in pairs) + "/>"

    def __str__(self) -> str:
        return self.build()


def parse(text: str) -> MSNObject:
    """Read an MSNObject; raise :class:`InvalidMSNObject` saying what is wrong."""
    if len(text) > MAX_TEXT:
        raise InvalidMSNObject(f"an MSNObject of {len(text)} characters is too long")
    m = _ELEMENT.match(text)
    if m is None:
        raise InvalidMSNObject(f"not an <msnobj/> element: {text[:60]!r}")
    attrs: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    rest = m.group("attrs")
    pos = 0
    while pos < len(rest):
        am = _ATTR.match(rest, pos)
        if am is None:
            if rest[pos:].strip():
                raise InvalidMSNObject(f"malformed attribute near {rest[pos : pos + 30]!r}")
            break
        name = am.group(1)
        value = _unescape(am.group(2) if am.group(2) is not None else am.group(3))
        if name in attrs or any(k == name for k, _ in extra):
            raise InvalidMSNObject(f"attribute {name} appears twice")
        if name in ("Creator", "Size", "Type", "Location", "Friendly", "SHA1D", "SHA1C"):
            attrs[name] = value
        else:
            extra.append((name, value))
        pos = am.end()
    for required in ("Creator", "Size", "Type", "Location", "SHA1D"):
        if required not in attrs:
            raise InvalidMSNObject(f"the MSNObject has no {required}")
    creator = attrs["Creator"].strip()
    if "@" not in creator or any(c.isspace() for c in creator):
        raise InvalidMSNObject(f"Creator {creator[:60]!r} is not a passport")
    try:
        size = int(attrs["Size"])
        kind = int(attrs["Type"])
    except ValueError:
        raise InvalidMSNObject("Size and Type must be integers") from None
    if not 0 <= size < 2**31:
        raise InvalidMSNObject(f"Size {size} is out of range")
    if kind not in KNOWN_TYPES:
        raise InvalidMSNObject(f"unknown MSNObject Type {kind}")
    _b64_sha1(attrs["SHA1D"], "SHA1D")
    obj = MSNObject(
        creator,
        size,
        kind,
        attrs["Location"],
        attrs.get("Friendly", ""),
        attrs["SHA1D"],
        attrs.get("SHA1C", ""),
        tuple(extra),
    )
    if obj.sha1c:
        _b64_sha1(obj.sha1c, "SHA1C")
        if obj.sha1c != obj.computed_sha1c():
            raise InvalidMSNObject("SHA1C does not match the object's fields")
    return obj


def parse_optional(text: str | None) -> MSNObject | None:
    """``parse`` for presence lines: "0" or empty means no object, garbage means none."""
    if not text or text == "0":
        return None
    try:
        return parse(text)
    except InvalidMSNObject:
        return None


def parse_emoticon_list(body: str) -> list[tuple[str, MSNObject]]:
    """A ``text/x-mms-emoticon`` body: ``shortcut<TAB>msnobj<TAB>…``; invalid pairs dropped."""
    parts = body.replace("\r\n", "").split("\t")
    out: list[tuple[str, MSNObject]] = []
    for i in range(0, len(parts) - 1, 2):
        shortcut, text = parts[i].strip(), parts[i + 1]
        if not shortcut:
            continue
        try:
            out.append((shortcut, parse(text)))
        except InvalidMSNObject:
            continue
    return out


def build_emoticon_list(pairs: list[tuple[str, MSNObject]]) -> str:
    return "".join(f"{shortcut}\t{obj.build()}\t" for shortcut, obj in pairs)
