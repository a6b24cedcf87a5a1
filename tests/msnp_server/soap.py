"""What the test server's SOAP services share: reading a request, writing an answer or a
fault, dispatching on SOAPAction (an unknown action gets a SOAP fault, as the real
services answered) and checking the ticket a request carries."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

from aiohttp import web

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def find(node: ET.Element, name: str) -> ET.Element | None:
    return next((el for el in node.iter() if local(el.tag) == name), None)


def findall(node: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in node.iter() if local(el.tag) == name]


def text(node: ET.Element | None, name: str, default: str = "") -> str:
    if node is None:
        return default
    el = find(node, name)
    return (el.text or "").strip() if el is not None else default


def esc(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def answer(body: str, header: str = "", ns: str = "") -> web.Response:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema"{ns}>'
        f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
    return web.Response(body=xml.encode(), content_type="text/xml", charset="utf-8")


def fault(code: str, message: str, errorcode: str | None = None, detail: str = "") -> web.Response:
    """A SOAP 1.1 fault with HTTP 500, as ASP.NET services sent them; ``errorcode`` is the
    ABCH-style detail code."""
    inner = detail
    if errorcode:
        inner += f"<errorcode>{esc(errorcode)}</errorcode><errorstring>{esc(message)}</errorstring>"
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" '
        'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault">'
        "<soap:Body><soap:Fault>"
        f"<faultcode>{esc(code)}</faultcode><faultstring>{esc(message)}</faultstring>"
        f"<detail>{inner}</detail></soap:Fault></soap:Body></soap:Envelope>"
    )
    return web.Response(status=500, body=xml.encode(), content_type="text/xml", charset="utf-8")


Handler = Callable[[ET.Element], Awaitable[web.Response]]


def dispatcher(
    actions: dict[str, Callable[[web.Request, ET.Element], Awaitable[web.Response]]],
    counter: Callable[[str], None] | None = None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        action = request.headers.get("SOAPAction", "").strip('"').rpartition("/")[2]
        try:
            root = ET.fromstring(await request.read())
        except ET.ParseError:
            return fault("soap:Client", "the request is not XML")
        if counter is not None:
            counter(action)
        handler = actions.get(action)
        if handler is None:
            return fault(
                "soap:Client",
                f"Server did not recognize the value of HTTP Header SOAPAction: {action}.",
            )
        return await handler(request, root)

    return handle
