"""The Passport 1.4 Nexus and login server over plain HTTP (aiohttp):
``GET /rdr/pprdr.asp`` names the login URL, ``GET /login2.srf`` trades credentials
plus the TWN challenge for a ticket."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import unquote

from aiohttp import web

from . import addressbook, offline
from .hub import Hub
from .soap import dispatcher, fault
from .sso import make_rst_handler

_FAILED = (
    "Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,"
    "cburl=http://www.passport.com/images/logo.gif,cbtxt=Passport"
)


def _parse_authorization(header: str) -> dict[str, str] | None:
    """``Passport1.4 k=v,k=v,...`` -> dict (values URL-decoded); None when malformed."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != "Passport1.4" or not rest:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = unquote(value)
    return fields


def make_app(hub: Hub) -> web.Application:
    async def nexus(request: web.Request) -> web.Response:
        login = f"{hub.config.host}:{hub.http_port}/login2.srf"
        urls = (
            f"DARealm=Passport.Net,DALogin={login},"
            "DAReg=http://register.passport.net/uixpwiz.srf,"
            "Properties=https://register.passport.net/editprof.srf,"
            "Privacy=http://www.passport.com/consumer/privacypolicy.asp,"
            "GeneralRedir=http://nexusrdr.passport.com/redir.asp,"
            "Help=http://memberservices.passport.net/memberservice.srf,ConfigVersion=12"
        )
        return web.Response(status=200, headers={"PassportURLs": urls})

    async def login(request: web.Request) -> web.Response:
        fields = _parse_authorization(request.headers.get("Authorization", ""))
        ok = (
            fields is not None
            and fields.get("OrgVerb") == "GET"
            and "OrgURL" in fields
            and hub.tickets.known_challenge(fields.get("tpf", ""))
        )
        account = hub.directory.get(fields.get("sign-in", "")) if fields and ok else None
        if (
            fields is None
            or account is None
            or account.password is None
            or fields.get("pwd") != account.password
        ):
            return web.Response(status=401, headers={"WWW-Authenticate": _FAILED})
        ticket = hub.tickets.issue(account.passport)
        info = (
            "Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,"
            f"from-PP='{ticket}',ru=http://messenger.msn.com"
        )
        return web.Response(status=200, headers={"Authentication-Info": info})

    rst_handler = make_rst_handler(hub)

    async def rst(request: web.Request) -> web.Response:
        try:
            root = ET.fromstring(await request.read())
        except ET.ParseError:
            return fault("soap:Client", "the request is not XML")
        hub.stats.soap["RequestMultipleSecurityTokens"] += 1
        return await rst_handler(request, root)

    def count(action: str) -> None:
        hub.stats.soap[action] += 1

    app = web.Application()
    app.router.add_post("/RST.srf", rst)
    app.router.add_post(
        "/abservice/abservice.asmx", dispatcher(addressbook.make_abch_handlers(hub), count)
    )
    app.router.add_post(
        "/abservice/SharingService.asmx",
        dispatcher(addressbook.make_sharing_handlers(hub), count),
    )
    app.router.add_post("/OimWS/oim.asmx", dispatcher(offline.make_oim_handlers(hub), count))
    app.router.add_post("/rsi/rsi.asmx", dispatcher(offline.make_rsi_handlers(hub), count))
    app.router.add_get("/rdr/pprdr.asp", nexus)
    app.router.add_get("/login2.srf", login)
    return app
