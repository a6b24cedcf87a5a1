"""MSNSLP: the SIP-like messages that open and close P2P sessions.

    INVITE MSNMSGR:bob@x.com MSNSLP/1.0        MSNSLP/1.0 200 OK
    To: <msnmsgr:bob@x.com>                    (same headers, echoed)
    From: <msnmsgr:alice@x.com>
    Via: MSNSLP/1.0/TLP ;branch={GUID}
    CSeq: 0
    Call-ID: {GUID}
    Max-Forwards: 0
    Content-Type: application/x-msnmsgr-sessionreqbody
    Content-Length: N                          (body bytes, the final NUL included)

    EUF-GUID: {…}  SessionID: n  AppID: n  Context: base64   (one "Name: value" a line)

:func:`parse_slp` raises :class:`SLPError` on anything that is not such a message.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

__all__ = [
    "CT_SESSION_CLOSE",
    "CT_SESSION_REQUEST",
    "EUF_FILE",
    "EUF_MSNOBJ",
    "SLPError",
    "SLPMessage",
    "new_guid",
    "parse_slp",
]

EUF_MSNOBJ = "{A4268EEC-FEC5-49E5-95C3-F126696BDBF6}"  # display pictures, emoticons
EUF_FILE = "{5D3E02AB-6190-11D3-BBBB-00C04F795683}"  # file transfer
EUF_WEBCAM = "{4BD96FC0-AB17-4425-A14A-439185962DC8}"
APP_MSNOBJ = 1
APP_FILE = 2

CT_SESSION_REQUEST = "application/x-msnmsgr-sessionreqbody"
CT_SESSION_CLOSE = "application/x-msnmsgr-sessionclosebody"
CT_TRANSFER_REQUEST = "application/x-msnmsgr-transreqbody"
CT_TRANSFER_RESPONSE = "application/x-msnmsgr-transrespbody"
NO_DIRECT_CONNECTION = {
    "Bridge": "TCPv1",
    "Listening": "false",
    "Nonce": "{00000000-0000-0000-0000-000000000000}",
}

MAX_SLP = 64 * 1024  # an INVITE with a file preview is a few KiB; more is not SLP
METHODS = frozenset({"INVITE", "BYE", "ACK"})
_REQUEST = re.compile(r"^([A-Z]+) MSNMSGR:(\S*) MSNSLP/1\.0$")
_STATUS = re.compile(r"^MSNSLP/1\.0 (\d{3}) ?(.*)$")
_ADDR = re.compile(r"<msnmsgr:([^>]*)>", re.I)


class SLPError(ValueError):
    """Bytes that are not an MSNSLP message."""


def new_guid() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


@dataclass(slots=True)
class SLPMessage:
    method: str | None = None  # INVITE / BYE / ACK; None for a response
    target: str = ""  # the request line's MSNMSGR: address
    status: int | None = None  # 200, 603… for a response
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def field(self, name: str, default: str = "") -> str:
        lowered = name.lower()
        for key, value in self.body.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def sender(self) -> str:
        m = _ADDR.search(self.get("From"))
        return m.group(1).split(";", 1)[0].lower() if m else ""

    @property
    def recipient(self) -> str:
        m = _ADDR.search(self.get("To"))
        return m.group(1).split(";", 1)[0].lower() if m else ""

    @property
    def branch(self) -> str:
        m = re.search(r"branch=(\{[^}]*\})", self.get("Via"))
        return m.group(1) if m else ""

    @property
    def content_type(self) -> str:
        return self.get("Content-Type").split(";", 1)[0].strip().lower()

    @property
    def session_id(self) -> int | None:
        value = self.field("SessionID")
        return int(value) if value.isdigit() and int(value) < 2**32 else None

    def build(self) -> bytes:
        body = "".join(f"{k}: {v}\r\n" for k, v in self.body.items()) + "\r\n"
        body_bytes = body.encode("utf-8") + b"\x00"
        if self.method is not None:
            first = f"{self.method} MSNMSGR:{self.target} MSNSLP/1.0"
        else:
            first = f"MSNSLP/1.0 {self.status} {self.reason}"
        lines = [first]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(body_bytes)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body_bytes


def request(
    method: str,
    to: str,
    frm: str,
    *,
    call_id: str,
    branch: str | None = None,
    cseq: int = 0,
    content_type: str = CT_SESSION_REQUEST,
    body: dict[str, str] | None = None,
) -> SLPMessage:
    return SLPMessage(
        method=method,
        target=to,
        headers=[
            ("To", f"<msnmsgr:{to}>"),
            ("From", f"<msnmsgr:{frm}>"),
            ("Via", f"MSNSLP/1.0/TLP ;branch={branch or new_guid()}"),
            ("CSeq", str(cseq)),
            ("Call-ID", call_id),
            ("Max-Forwards", "0"),
            ("Content-Type", content_type),
        ],
        body=dict(body or {}),
    )


def response(to_request: SLPMessage, status: int, reason: str, body: dict[str, str]) -> SLPMessage:
    """The answer to ``to_request``: To/From swapped, Via and Call-ID echoed, CSeq + 1."""
    cseq = to_request.get("CSeq", "0").strip()
    return SLPMessage(
        status=status,
        reason=reason,
        headers=[
            ("To", to_request.get("From")),
            ("From", to_request.get("To")),
            ("Via", to_request.get("Via")),
            ("CSeq", str(int(cseq) + 1 if cseq.isdigit() else 1)),
            ("Call-ID", to_request.call_id),
            ("Max-Forwards", "0"),
            ("Content-Type", to_request.get("Content-Type") or CT_SESSION_REQUEST),
        ],
        body=body,
    )


def parse_slp(data: bytes) -> SLPMessage:
    if len(data) > MAX_SLP:
        raise SLPError(f"an SLP message of {len(data)} bytes is too long")
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise SLPError("no blank line after the SLP headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SLPError("SLP headers are not UTF-8") from None
    lines = text.split("\r\n")
    msg = SLPMessage()
    m = _REQUEST.match(lines[0])
    if m is not None:
        msg.method, msg.target = m.group(1), m.group(2)
        if msg.method not in METHODS:
            raise SLPError(f"unknown SLP method {msg.method}")
    else:
        s = _STATUS.match(lines[0])
        if s is None:
            raise SLPError(f"not an SLP start line: {lines[0][:60]!r}")
        msg.status, msg.reason = int(s.group(1)), s.group(2)
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SLPError(f"malformed SLP header {line[:60]!r}")
        msg.headers.append((name.strip(), value.strip()))
    length_text = msg.get("Content-Length", "0").strip()
    if not length_text.isdigit():
        raise SLPError(f"bad Content-Length {length_text[:20]!r}")
    length = int(length_text)
    if length > len(rest):
        raise SLPError(f"Content-Length {length}, only {len(rest)} bytes follow")
    body = rest[:length].rstrip(b"\x00").decode("utf-8", "replace")
    for line in body.replace("\r\n", "\n").split("\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip():
            msg.body.setdefault(name.strip(), value.strip())
    if not msg.call_id:
        raise SLPError("SLP message without Call-ID")
    return msg
