"""Offline messages of MSNP13-18: ``StoreMessage`` on ``/OimWS/oim.asmx`` (with its
lock-key challenge, answered with the CHL algorithm), the RSI service on
``/rsi/rsi.asmx`` (``GetMetadata``, ``GetMessage``, ``DeleteMessages``) and the NS
notices that tell a signed-in recipient there is something to fetch."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from puppets.challenge import PRODUCT_KEYS
from puppets.challenge import answer as qry_answer

from .accounts import Account
from .framing import payload_line
from .soap import answer, esc, fault, find, findall, text

if TYPE_CHECKING:
    from .hub import Hub

OIM_NS = "http://messenger.msn.com/ws/2004/09/oim/"
RSI_NS = "http://www.hotmail.msn.com/ws/2004/09/oim/rsi"
OIM_SERVICE = "messengersecure.live.com"
RSI_SERVICE = "messenger.msn.com"
_KEYS = {pid: key for (low, _h), pairs in PRODUCT_KEYS.items() if low >= 11 for pid, key in pairs}


@dataclass(slots=True)
class StoredOIM:
    id: str
    sender: str
    nick: str
    text: str
    sent_at: float
    run_id: str = ""
    sequence: int = 1


def _notice(kind: str) -> bytes:
    body = (
        f"MIME-Version: 1.0\r\nContent-Type: {kind}; charset=UTF-8\r\n\r\n"
        "Mail-Data: too-large\r\n\r\n"
    ).encode()
    return payload_line("MSG", "Hotmail", "Hotmail", payload=body)


def initial_notice(account: Account) -> bytes:
    """Sent at login (MSNP13+): the client fetches the metadata itself."""
    return _notice("text/x-msmsgsinitialmdatamsg")


def notify_new(hub: Hub, account: Account) -> None:
    for session in hub.sessions_of(account.passport):
        if session.version >= 13:
            session.push(_notice("text/x-msmsgsoimnotification"))


def add_oim(hub: Hub, to: str, sender: str, nick: str, body: str, sent_at: float) -> StoredOIM:
    account = hub.directory[to]
    oim = StoredOIM(str(uuid.uuid4()).upper(), sender.lower(), nick, body, sent_at)
    account.oims.append(oim)
    notify_new(hub, account)
    return oim


def _word(value: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(value.encode()).decode() + "?="


def mime(oim: StoredOIM, to: str) -> str:
    when = datetime.fromtimestamp(oim.sent_at, UTC)
    arrival = when.strftime("%d %b %Y %H:%M:%S") + f".{when.microsecond // 100:04d} (UTC)"
    headers = [
        f"From: {_word(oim.nick)} <{oim.sender}>",
        f"To: {to}",
        "Subject: ",
        "X-OIM-originatingSource: 127.0.0.1",
        f"X-OriginalArrivalTime: {arrival} FILETIME=[00000000:00000000]",
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S')} -0000",
        "Return-Path: ndr@oim.messenger.msn.com",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: base64",
        "X-OIM-Message-Type: OfflineMessage",
        f"X-OIM-Run-Id: {oim.run_id or '{' + str(uuid.uuid4()).upper() + '}'}",
        f"X-OIM-Sequence-Num: {oim.sequence}",
    ]
    return "\r\n".join(headers) + "\r\n\r\n" + base64.b64encode(oim.text.encode()).decode()


def _parse_content(content: str) -> tuple[str, str, int] | None:
    head, _, body = content.replace("\r\n", "\n").partition("\n\n")
    headers = {}
    for line in head.split("\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("content-transfer-encoding", "").lower() != "base64":
        return None
    try:
        text_ = base64.b64decode("".join(body.split()), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    seq = headers.get("x-oim-sequence-num", "1")
    return text_, headers.get("x-oim-run-id", ""), int(seq) if seq.isdigit() else 1


def make_oim_handlers(hub: Hub):  # type: ignore[no-untyped-def]
    challenges: dict[str, str] = {}  # sender -> the lock-key challenge it must answer

    async def store(request: web.Request, root: ET.Element) -> web.Response:
        from_el, to_el, ticket_el = find(root, "From"), find(root, "To"), find(root, "Ticket")
        if from_el is None or to_el is None or ticket_el is None:
            return fault("soap:Client", "missing From, To or Ticket")
        sender = from_el.get("memberName", "").lower()
        token = hub.sso_tokens.check(ticket_el.get("passport", ""), OIM_SERVICE)
        if token is None or token.passport != sender:
            return fault(
                "q0:AuthenticationFailed",
                "Exception of type 'System.Web.Services.Protocols.SoapException' was thrown.",
                detail=f'<TweenerChallenge xmlns="{OIM_NS}">ct=1,rver=1,wp=FS_40SEC_0_COMPACT,'
                "lc=1033,id=3485</TweenerChallenge>",
            )
        appid, lockkey = ticket_el.get("appid", ""), ticket_el.get("lockkey", "")
        expected = challenges.get(sender)
        key = _KEYS.get(appid)
        if expected is None or key is None or lockkey != qry_answer(expected, 11, appid, key):
            challenges[sender] = "".join(str(secrets.randbelow(10)) for _ in range(20))
            return fault(
                "q0:AuthenticationFailed",
                "Exception of type 'System.Web.Services.Protocols.SoapException' was thrown.",
                detail=f'<LockKeyChallenge xmlns="{OIM_NS}">{challenges[sender]}'
                "</LockKeyChallenge>",
            )
        recipient = hub.directory.get(to_el.get("memberName", ""))
        if recipient is None or recipient.password is None:
            return fault("q0:InvalidRecipient", "the recipient is not a Messenger user")
        if not recipient.allows(sender):
            return fault("q0:SystemUnavailable", "the recipient does not accept messages")
        parsed = _parse_content(text(root, "Content"))
        if parsed is None:
            return fault("q0:InvalidContent", "the content is not base64 text")
        body, run_id, sequence = parsed
        nick_word = from_el.get("friendlyName", "")
        nick = _decode_word(nick_word) or sender
        oim = StoredOIM(
            str(uuid.uuid4()).upper(), sender, nick, body, time.time(), run_id, sequence
        )
        recipient.oims.append(oim)
        hub.stats.oims_stored += 1
        notify_new(hub, recipient)
        return answer(f'<StoreMessageResponse xmlns="{OIM_NS}"/>')

    return {"Store2": store, "Store": store, "StoreMessage": store}


def _decode_word(value: str) -> str:
    if value.startswith("=?utf-8?B?") and value.endswith("?="):
        try:
            return base64.b64decode(value[10:-2]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
    return value


def _rsi_account(hub: Hub, root: ET.Element) -> Account | web.Response:
    ticket = f"t={text(root, 't')}&p={text(root, 'p')}"
    token = hub.sso_tokens.check(ticket, RSI_SERVICE)
    if token is None:
        return fault("q0:AuthenticationFailed", "Ticket is expired or invalid")
    return hub.directory[token.passport]


def make_rsi_handlers(hub: Hub):  # type: ignore[no-untyped-def]
    async def get_metadata(request: web.Request, root: ET.Element) -> web.Response:
        account = _rsi_account(hub, root)
        if isinstance(account, web.Response):
            return account
        items = "".join(
            f"<M><T>11</T><S>6</S><RT>{datetime.fromtimestamp(o.sent_at, UTC).isoformat()}</RT>"
            f"<RS>0</RS><SZ>{len(o.text)}</SZ><E>{esc(o.sender)}</E><I>{o.id}</I>"
            f"<F>00000000-0000-0000-0000-000000000009</F><N>{esc(_word(o.nick))}</N></M>"
            for o in account.oims
        )
        body = (
            f'<GetMetadataResponse xmlns="{RSI_NS}"><MD><E><I>{len(account.oims)}</I>'
            f"<IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q>"
            f"{items}</MD></GetMetadataResponse>"
        )
        return answer(body)

    async def get_message(request: web.Request, root: ET.Element) -> web.Response:
        account = _rsi_account(hub, root)
        if isinstance(account, web.Response):
            return account
        wanted = text(root, "messageId")
        for oim in account.oims:
            if oim.id == wanted:
                body = (
                    f'<GetMessageResponse xmlns="{RSI_NS}"><GetMessageResult>'
                    f"{esc(mime(oim, account.passport))}</GetMessageResult></GetMessageResponse>"
                )
                return answer(body)
        return fault("q0:MessageDoesNotExist", "no such message")

    async def delete_messages(request: web.Request, root: ET.Element) -> web.Response:
        account = _rsi_account(hub, root)
        if isinstance(account, web.Response):
            return account
        ids = {(el.text or "").strip() for el in findall(root, "messageId")}
        account.oims = [o for o in account.oims if o.id not in ids]
        return answer(f'<DeleteMessagesResponse xmlns="{RSI_NS}"/>')

    return {
        "GetMetadata": get_metadata,
        "GetMessage": get_message,
        "DeleteMessages": delete_messages,
    }
