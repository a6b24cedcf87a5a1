"""MSG payloads: what a switchboard or notification MSG carries, as typed values.

:func:`parse_payload` turns a payload into a :class:`TextMessage`, :class:`TypingNotice`,
:class:`Nudge`, Hotmail notice… and never raises: anything it does not know, or cannot
read, comes back as :class:`UnknownPayload`. The ``build_*`` functions and
:func:`split_text` produce payloads that switchboards accept (at most ``MAX_PAYLOAD``
bytes each, headers included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.header import decode_header

from .chunks import ChunkAssembler
from .mime import Message, build_message, parse_fields, parse_message, redacted
from .textcut import cluster_end, space_before
from .textformat import TextFormat

__all__ = [
    "MAX_PAYLOAD",
    "ChunkAssembler",
    "Datacast",
    "InitialMail",
    "Invitation",
    "Message",
    "NewMail",
    "Nudge",
    "Payload",
    "Profile",
    "SystemMessage",
    "TextFormat",
    "TextMessage",
    "TypingNotice",
    "UnknownPayload",
    "build_message",
    "build_nudge",
    "build_text",
    "build_typing",
    "parse_message",
    "parse_payload",
    "split_text",
]

MAX_PAYLOAD = 1664  # bytes, MIME headers included, as switchboards enforce


@dataclass
class TextMessage:
    text: str  # "\n" line breaks; CRLF on the wire
    format: TextFormat = field(default_factory=TextFormat)
    # P4-Context: the name of whoever the sender relays for (gateways and bots set it).
    context: str = ""


@dataclass
class TypingNotice:
    passport: str


@dataclass
class Nudge:
    pass


@dataclass
class Datacast:
    """A datacast other than a nudge: 2 wink, 3 voice clip, 4 action message."""

    id: int
    data: str


@dataclass(repr=False)
class Profile:
    """text/x-msmsgsprofile, sent after login. ``fields`` hold MSPAuth: never log them."""

    fields: dict[str, str]

    def __repr__(self) -> str:
        return f"Profile(fields={dict(redacted(list(self.fields.items())))!r})"


@dataclass
class InitialMail:
    inbox_unread: int
    folders_unread: int
    fields: dict[str, str]


@dataclass
class NewMail:
    sender: str
    sender_address: str
    subject: str
    folder: str
    fields: dict[str, str]


@dataclass
class SystemMessage:
    """application/x-msmsgssystemmessage; Type 1 announces maintenance in ``minutes``."""

    type: int
    minutes: int | None


@dataclass
class Invitation:
    """text/x-msmsgsinvite (MSNFTP file transfer and other legacy applications)."""

    command: str
    cookie: str
    application: str | None
    fields: dict[str, str]


@dataclass
class UnknownPayload:
    content_type: str
    message: Message


Payload = (
    TextMessage
    | TypingNotice
    | Nudge
    | Datacast
    | Profile
    | InitialMail
    | NewMail
    | SystemMessage
    | Invitation
    | UnknownPayload
)


# -- parsing -------------------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    digits = value[1:] if value[:1] in "+-" else value
    if digits.isascii() and digits.isdigit() and len(digits) < 19:
        return int(value)
    return None


def _get(fields: dict[str, str], name: str, default: str = "") -> str:
    lowered = name.lower()
    for key, value in fields.items():
        if key.lower() == lowered:
            return value
    return default


def _decode(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, falling back to UTF-8; never raises."""
    if charset and charset.lower() not in ("utf-8", "utf8"):
        try:
            return data.decode(charset, "replace")
        except (LookupError, UnicodeError, ValueError):  # unknown or not a text codec
            pass
    return data.decode("utf-8", "replace")


_QUOTED_CHARSET = re.compile(r'=\?"([^"?]*)"\?')


def _decode_rfc2047(value: str) -> str:
    """Decode encoded words (Hotmail sends ``=?"us-ascii"?Q?...?=``). Never raises."""
    if "=?" not in value:
        return value
    try:
        parts = decode_header(_QUOTED_CHARSET.sub(r"=?\1?", value))
    except Exception:  # email.header is strict about malformed words; show them raw
        return value
    out: list[str] = []
    for chunk, charset in parts:
        out.append(chunk if isinstance(chunk, str) else _decode(chunk, charset))
    return "".join(out)


def _text(msg: Message) -> TextMessage:
    text = _newlines(_decode(msg.body, msg.charset))
    return TextMessage(
        text,
        TextFormat.parse(msg.get("X-MMS-IM-Format") or ""),
        _decode_rfc2047(msg.get("P4-Context") or ""),
    )


def _datacast(msg: Message) -> Payload:
    fields = parse_fields(msg.body)
    ident = _int(_get(fields, "ID"))
    if ident is None:
        return UnknownPayload(msg.content_type, msg)
    if ident == 1:
        return Nudge()
    return Datacast(ident, _get(fields, "Data"))


def _header_fields(msg: Message) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in msg.headers:
        if key.lower() not in ("mime-version", "content-type"):
            fields.setdefault(key, value)
    return fields


def _body_or_header_fields(msg: Message) -> dict[str, str]:
    # Hotmail notices keep their fields in the body; a few servers put them in headers.
    return parse_fields(msg.body) or _header_fields(msg)


def _initial_mail(msg: Message) -> InitialMail:
    fields = _body_or_header_fields(msg)
    return InitialMail(
        _int(_get(fields, "Inbox-Unread")) or 0,
        _int(_get(fields, "Folders-Unread")) or 0,
        fields,
    )


def _new_mail(msg: Message) -> NewMail:
    fields = _body_or_header_fields(msg)
    return NewMail(
        _decode_rfc2047(_get(fields, "From")),
        _get(fields, "From-Addr"),
        _decode_rfc2047(_get(fields, "Subject")),
        _get(fields, "Dest-Folder"),
        fields,
    )


def _system(msg: Message) -> Payload:
    fields = _body_or_header_fields(msg)
    kind = _int(_get(fields, "Type"))
    if kind is None:
        return UnknownPayload(msg.content_type, msg)
    return SystemMessage(kind, _int(_get(fields, "Arg1")))


def _invitation(msg: Message) -> Invitation:
    fields = parse_fields(msg.body)
    return Invitation(
        _get(fields, "Invitation-Command"),
        _get(fields, "Invitation-Cookie"),
        _get(fields, "Application-Name") or None,
        fields,
    )


def _profile(msg: Message) -> Profile:
    fields = _header_fields(msg)
    for key, value in parse_fields(msg.body).items():
        fields.setdefault(key, value)
    return Profile(fields)


_PARSERS = {
    "text/plain": _text,
    "text/x-msmsgscontrol": lambda m: TypingNotice(m.get("TypingUser") or ""),
    "text/x-msnmsgr-datacast": _datacast,
    "text/x-msmsgsprofile": _profile,
    "text/x-msmsgsinitialemailnotification": _initial_mail,
    "text/x-msmsgsemailnotification": _new_mail,
    "application/x-msmsgssystemmessage": _system,
    "text/x-msmsgsinvite": _invitation,
}


def parse_payload(
    payload: bytes,
    *,
    sender: str | None = None,
    assembler: ChunkAssembler | None = None,
) -> Payload | None:
    """The typed value of a MSG payload. Never raises.

    With an ``assembler`` (and the ``sender`` it is keyed by), parts of a chunked message
    are held and None is returned until the last one completes it. Without one, a part
    of a chunked message is an :class:`UnknownPayload`.
    """
    msg = parse_message(payload)
    if assembler is not None:
        whole = assembler.feed_parsed(sender or "", payload, msg)
        if whole is None:
            return None
        if whole is not payload:  # reassembled from its parts
            msg = parse_message(whole)
    if msg.get("Chunks") is not None or msg.get("Chunk") is not None:
        return UnknownPayload(msg.content_type, msg)
    parser = _PARSERS.get(msg.content_type)
    if parser is None:
        return UnknownPayload(msg.content_type, msg)
    return parser(msg)


# -- building ------------------------------------------------------------------------------


Headers = list[tuple[str, str]]


def _text_headers(fmt: TextFormat | None, extra: Headers | None = None) -> Headers:
    return [
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("X-MMS-IM-Format", (fmt or TextFormat()).header()),
        *(extra or ()),
    ]


def _newlines(text: str) -> str:
    # CRLF, and a lone CR (old Mac clients), both become "\n".
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _wire_text(text: str) -> bytes:
    return _newlines(text).replace("\n", "\r\n").encode("utf-8", "replace")


def build_text(
    text: str, fmt: TextFormat | None = None, extra_headers: Headers | None = None
) -> bytes:
    """A text/plain payload. ``text`` may use "\\n" or "\\r\\n" line breaks.
    ``extra_headers`` (e.g. ``[("P4-Context", "nick")]``) follow the format header.

    Does not check the size: use :func:`split_text` for text of any length.
    """
    return build_message(_text_headers(fmt, extra_headers), _wire_text(text))


def build_typing(passport: str) -> bytes:
    """A typing notice; send it with ack mode U every few seconds while typing."""
    return build_message(
        [("Content-Type", "text/x-msmsgscontrol"), ("TypingUser", passport)], b"\r\n"
    )


def build_nudge() -> bytes:
    return build_message([("Content-Type", "text/x-msnmsgr-datacast")], b"ID: 1\r\n\r\n")


def _wire_size(ch: str) -> int:
    return 2 if ch == "\n" else len(ch.encode("utf-8", "replace"))


def _cut(text: str, start: int, budget: int) -> int:
    """End index of the next part of ``text`` from ``start``: at most ``budget`` wire bytes.

    Ends after a newline in the window's last three quarters, else after a space in its
    second half, else at the last grapheme-cluster boundary (textcut), so a part never
    ends inside a character as readers see it, nor mid-word when a space is near.
    """
    size = len(text)
    if size - start <= budget:  # at least a byte a character: only then can the rest fit
        rest = text[start:]
        if len(rest.encode("utf-8", "replace")) + rest.count("\n") <= budget:
            return size  # the rest fits (most messages): no walk character by character
    used = 0
    end = start
    while end < size:
        cost = _wire_size(text[end])
        if used + cost > budget:
            break
        used += cost
        end += 1
    if end == size:
        return end
    span = end - start
    newline = text.rfind("\n", start, end)
    if newline >= start + span // 4:
        return newline + 1
    space = space_before(text, start + span // 2, end)
    if space >= 0:
        return space + 1
    return cluster_end(text, start, end)


def split_text(
    text: str,
    fmt: TextFormat | None = None,
    limit: int = MAX_PAYLOAD,
    extra_headers: Headers | None = None,
) -> list[bytes]:
    """``text`` as text/plain payloads of at most ``limit`` bytes each (headers included).

    Cuts only between grapheme clusters (so never inside a UTF-8 sequence, a CRLF, a
    letter with its combining marks or an emoji sequence), preferring a newline, then
    whitespace. The cut character stays at the end of the earlier part,
    so the parts' texts concatenated give back ``text`` (with "\\n" line breaks).
    Empty text gives no payload. Raises ValueError when ``limit`` leaves no room for text.
    """
    text = _newlines(text)
    if not text:
        return []
    budget = limit - len(build_text("", fmt, extra_headers))
    if budget < 4:  # room for the longest code point
        raise ValueError(f"a {limit}-byte limit leaves no room for text with these headers")
    payloads: list[bytes] = []
    start = 0
    while start < len(text):
        end = _cut(text, start, budget)
        payloads.append(build_text(text[start:end], fmt, extra_headers))
        start = end
    return payloads
