"""Sending offline messages (``oim.asmx``, ``StoreMessage``). The first try of a session
is answered with a lock-key challenge; the lock key is the CHL/QRY answer to it."""

from __future__ import annotations

import base64
import uuid

import aiohttp

from .. import challenge
from .base import SoapFault, envelope, esc, post, ticket_expired

OIM_NS = "http://messenger.msn.com/ws/2004/09/oim/"
_ACTION = "http://messenger.live.com/ws/2006/09/oim/Store2"


class OIMService:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        ticket: object,  # async callable: the messengersecure ticket
        passport: str,
        product: tuple[str, str],  # (product id, key) for the lock key
        protocol: int,
        *,
        verify_tls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self.url = url
        self._ticket = ticket
        self.passport = passport
        self._product = product
        self._protocol = protocol
        self._verify_tls = verify_tls
        self._timeout = timeout
        self.lock_key = ""
        self._run_id = "{" + str(uuid.uuid4()).upper() + "}"
        self._sequence = 0

    def _request(self, ticket: str, to: str, nick: str, body: str) -> bytes:
        name = base64.b64encode(nick.encode()).decode()
        header = (
            f'<From memberName="{esc(self.passport)}" friendlyName="=?utf-8?B?{name}?=" '
            f'xml:lang="en-US" proxy="MSNMSGR" xmlns="{OIM_NS}" '
            f'msnpVer="MSNP{self._protocol}" buildVer="8.5.1288"/>'
            f'<To memberName="{esc(to)}" xmlns="{OIM_NS}"/>'
            f'<Ticket passport="{esc(ticket)}" appid="{esc(self._product[0])}" '
            f'lockkey="{esc(self.lock_key)}" xmlns="{OIM_NS}"/>'
            '<Sequence xmlns="http://schemas.xmlsoap.org/ws/2003/03/rm">'
            '<Identifier xmlns="http://schemas.xmlsoap.org/ws/2002/07/utility">'
            "http://messenger.msn.com</Identifier>"
            f"<MessageNumber>{self._sequence}</MessageNumber></Sequence>"
        )
        content = (
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            "Content-Transfer-Encoding: base64\r\nX-OIM-Message-Type: OfflineMessage\r\n"
            f"X-OIM-Run-Id: {self._run_id}\r\nX-OIM-Sequence-Num: {self._sequence}\r\n\r\n"
            + base64.b64encode(body.encode()).decode()
        )
        inner = (
            f'<MessageType xmlns="{OIM_NS}">text</MessageType>'
            f'<Content xmlns="{OIM_NS}">{esc(content)}</Content>'
        )
        return envelope(header, inner)

    async def store(self, to: str, body: str, nick: str = "") -> None:
        """StoreMessage, answering one lock-key challenge on the way."""
        self._sequence += 1
        renewed = False
        for _ in range(3):
            ticket = await self._ticket()  # type: ignore[operator]
            try:
                await post(
                    self.http,
                    self.url,
                    "StoreMessage",
                    _ACTION,
                    self._request(ticket, to, nick or self.passport, body),
                    verify_tls=self._verify_tls,
                    timeout=self._timeout,
                )
                return
            except SoapFault as e:
                lock = e.detail_text("LockKeyChallenge")
                renew = getattr(self._ticket, "renew", None)
                if lock:
                    product_id, key = self._product
                    self.lock_key = challenge.answer(lock, 11, product_id, key)
                elif ticket_expired(e) and renew is not None and not renewed:
                    await renew()
                    renewed = True
                else:
                    raise
        raise SoapFault("StoreMessage", "AuthenticationFailed", "lock key refused again")
