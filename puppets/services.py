"""What an MSNP13-18 account keeps across reconnects: one HTTP session, its SSO tokens
(renewed before they expire), the SOAP service clients, the machine GUID and the ids of
offline messages already delivered."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import aiohttp

from . import challenge
from .config import ClientConfig
from .soap.addressbook import AddressBookService
from .soap.oim import OIMService
from .soap.rsi import RSIService
from .soap.sharing import SharingService
from .sso import CONTACTS, SECURE, WEB, TokenStore


def new_machine_guid() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


class _TicketSource:
    """The current ticket of one service; ``renew()`` when a service calls it stale."""

    def __init__(self, services: AccountServices, service: str) -> None:
        self._services = services
        self._service = service

    async def __call__(self) -> str:
        return (await self._services.tokens.get(self._service)).ticket

    async def renew(self) -> None:
        await self._services.tokens.refresh()


class AccountServices:
    def __init__(
        self,
        config: ClientConfig,
        http: aiohttp.ClientSession | None = None,
        seen_offline_ids: Iterable[str] = (),
    ) -> None:
        self.config = config
        self._http = http
        self._own_http: aiohttp.ClientSession | None = None
        self._tokens: TokenStore | None = None
        self.machine_guid = config.machine_guid or new_machine_guid()
        self.seen_offline_ids: set[str] = set(seen_offline_ids)
        self.urls = config.service_urls

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is not None:
            return self._http
        if self._own_http is None or self._own_http.closed:
            self._own_http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
        return self._own_http

    @property
    def tokens(self) -> TokenStore:
        if self._tokens is None:
            self._tokens = TokenStore(
                self.http,
                self.urls.rst,
                self.config.passport,
                self.config.password,
                verify_tls=self.config.verify_tls,
                timeout=self.config.timeout,
            )
        return self._tokens

    def _ticket(self, service: str) -> _TicketSource:
        return _TicketSource(self, service)

    def _kw(self) -> dict[str, object]:
        return {"verify_tls": self.config.verify_tls, "timeout": self.config.timeout}

    def addressbook(self) -> AddressBookService:
        return AddressBookService(self.http, self.urls.abch, self._ticket(CONTACTS), **self._kw())  # type: ignore[arg-type]

    def sharing(self) -> SharingService:
        return SharingService(self.http, self.urls.sharing, self._ticket(CONTACTS), **self._kw())  # type: ignore[arg-type]

    def rsi(self) -> RSIService:
        return RSIService(self.http, self.urls.rsi, self._ticket(WEB), **self._kw())  # type: ignore[arg-type]

    def oim(self, protocol: int) -> OIMService:
        product = (
            (self.config.product_id, self.config.product_key)
            if self.config.product_id and self.config.product_key
            else challenge.default_product(max(protocol, 15))
        )
        return OIMService(
            self.http,
            self.urls.oim,
            self._ticket(SECURE),
            self.config.passport,
            product,
            protocol,
            **self._kw(),  # type: ignore[arg-type]
        )

    async def close(self) -> None:
        if self._own_http is not None:
            await self._own_http.close()
            self._own_http = None
            self._tokens = None  # bound to the closed session; a restart fetches anew
