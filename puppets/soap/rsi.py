"""Reading offline messages (``rsi.asmx``): ``GetMetadata`` lists them, ``GetMessage``
fetches one (a MIME message), ``DeleteMessages`` removes them from the server."""

from __future__ import annotations

import base64
import calendar
import email.utils
import quopri
import re
import time
from dataclasses import dataclass
from email.header import decode_header, make_header

import aiohttp

from .base import all_named, envelope, esc, post, text, with_ticket

RSI_NS = "http://www.hotmail.msn.com/ws/2004/09/oim/rsi"


@dataclass(frozen=True, slots=True)
class OIMInfo:
    """One entry of the metadata: who sent what, and when it arrived."""

    id: str
    sender: str
    nick: str
    received: str  # the RT field, ISO 8601


@dataclass(frozen=True, slots=True)
class OfflineMessageData:
    id: str
    sender: str
    nick: str
    text: str
    sent_at: float  # unix time the message was sent (X-OriginalArrivalTime / Date)


def _decode_word(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value


_ARRIVAL = re.compile(r"^(\d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2})")


def _arrival(value: str) -> float | None:
    match = _ARRIVAL.match(value.strip())
    if match is None:
        return None
    try:
        return float(calendar.timegm(time.strptime(match.group(1), "%d %b %Y %H:%M:%S")))
    except ValueError:
        return None


def parse_message(message_id: str, mime: str) -> OfflineMessageData:
    head, _, body = mime.replace("\r\n", "\n").partition("\n\n")
    headers: dict[str, str] = {}
    last = ""
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        last = name.strip().lower()
        headers[last] = value.strip()
    nick, sender = email.utils.parseaddr(_decode_word(headers.get("from", "")))
    encoding = headers.get("content-transfer-encoding", "").lower()
    raw = body.strip().encode("ascii", "replace")
    if encoding == "base64":
        data = base64.b64decode(re.sub(rb"\s+", b"", raw) + b"==", validate=False)
    elif encoding == "quoted-printable":
        data = quopri.decodestring(raw)
    else:
        data = body.encode()
    sent = _arrival(headers.get("x-originalarrivaltime", ""))
    if sent is None:
        parsed = email.utils.parsedate_to_datetime(headers["date"]) if "date" in headers else None
        sent = parsed.timestamp() if parsed is not None else time.time()
    return OfflineMessageData(
        message_id,
        sender.lower(),
        nick,
        data.decode("utf-8", "replace").replace("\r\n", "\n"),
        sent,
    )


class RSIService:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        ticket: object,  # async callable: the messenger.msn.com ticket (t=...&p=...)
        *,
        verify_tls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self._http = http
        self.url = url
        self._ticket = ticket
        self._verify_tls = verify_tls
        self._timeout = timeout

    async def _call(self, action: str, inner: str):  # type: ignore[no-untyped-def]
        async def attempt(ticket: str):  # type: ignore[no-untyped-def]
            fields = dict(p.split("=", 1) for p in ticket.split("&") if "=" in p)
            header = (
                f'<PassportCookie xmlns="{RSI_NS}"><t>{esc(fields.get("t", ""))}</t>'
                f"<p>{esc(fields.get('p', ''))}</p></PassportCookie>"
            )
            return await post(
                self._http,
                self.url,
                action,
                f"{RSI_NS}/{action}",
                envelope(header, f'<{action} xmlns="{RSI_NS}">{inner}</{action}>'),
                verify_tls=self._verify_tls,
                timeout=self._timeout,
            )

        return await with_ticket(self._ticket, attempt)  # type: ignore[arg-type]

    async def get_metadata(self) -> list[OIMInfo]:
        root = await self._call("GetMetadata", "")
        found = []
        for m in all_named(root, "M"):
            message_id = text(m, "I")
            if message_id:
                found.append(
                    OIMInfo(
                        message_id, text(m, "E").lower(), _decode_word(text(m, "N")), text(m, "RT")
                    )
                )
        return found

    async def get_message(self, message_id: str) -> OfflineMessageData:
        root = await self._call(
            "GetMessage",
            f"<messageId>{esc(message_id)}</messageId><alsoMarkAsRead>false</alsoMarkAsRead>",
        )
        return parse_message(message_id, text(root, "GetMessageResult"))

    async def delete_messages(self, message_ids: list[str]) -> None:
        ids = "".join(f"<messageId>{esc(i)}</messageId>" for i in message_ids)
        await self._call("DeleteMessages", f"<messageIds>{ids}</messageIds>")
