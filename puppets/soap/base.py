"""What every SOAP service client shares: the POST, the envelope, XML helpers and the
typed errors (a SOAP fault keeps the service's own fault code)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar
from xml.sax.saxutils import escape

import aiohttp

from ..errors import PuppetError

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_XMLNS_SOAP = f'xmlns:soap="{SOAP_NS}"'


class SoapError(PuppetError):
    """A SOAP service could not be used (base of the two below)."""


class SoapHTTPError(SoapError):
    """The service answered with an HTTP error and no SOAP fault, or not at all."""

    def __init__(self, url: str, status: int | None, message: str) -> None:
        self.url = url
        self.status = status
        super().__init__(f"{url}: {message}")


class SoapFault(SoapError):
    """A ``soap:Fault``: ``code`` is the service's fault code (e.g. ``wsse:FailedAuthentication``
    or the ABCH ``errorcode`` such as ``ContactAlreadyExists``), ``message`` its text."""

    def __init__(
        self, action: str, code: str, message: str, detail: ET.Element | None = None
    ) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.detail = detail
        super().__init__(f"{action} failed: {code}: {message}")

    def detail_text(self, name: str) -> str:
        """The text of a named element of the fault's detail ('' when absent)."""
        return text(self.detail, name) if self.detail is not None else ""


def esc(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def local(tag: str) -> str:
    """``{ns}Name`` -> ``Name``: services in the wild vary their prefixes and namespaces."""
    return tag.rpartition("}")[2]


def find(node: ET.Element, *path: str) -> ET.Element | None:
    """The first descendant along ``path`` of local names (any depth for the first)."""
    current: ET.Element | None = None
    for el in node.iter():
        if local(el.tag) == path[0]:
            current = el
            break
    if current is None:
        return None
    for name in path[1:]:
        current = next((c for c in current if local(c.tag) == name), None)
        if current is None:
            return None
    return current


def text(node: ET.Element | None, *path: str, default: str = "") -> str:
    if node is None:
        return default
    el = find(node, *path) if path else node
    return (el.text or "").strip() if el is not None and el.text is not None else default


def children(node: ET.Element | None, name: str) -> Iterator[ET.Element]:
    if node is None:
        return iter(())
    return (c for c in node if local(c.tag) == name)


def all_named(node: ET.Element, name: str) -> Iterator[ET.Element]:
    return (el for el in node.iter() if local(el.tag) == name)


def envelope(header: str, body: str, extra_ns: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<soap:Envelope {_XMLNS_SOAP} "
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema"{extra_ns}>'
        f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def parse_fault(action: str, root: ET.Element) -> SoapFault | None:
    fault = find(root, "Fault")
    if fault is None:
        return None
    code = text(fault, "faultcode")
    # ABCH and sharing put their own code in detail/errorcode; prefer it.
    detail_code = text(fault, "errorcode") or text(fault, "ErrorCode")
    message = text(fault, "faultstring") or text(fault, "errorstring") or "no message"
    return SoapFault(action, detail_code or code or "unknown", message, fault)


async def post(
    http: aiohttp.ClientSession,
    url: str,
    action: str,
    soap_action: str,
    body: bytes,
    *,
    verify_tls: bool = True,
    timeout: float = 30.0,
) -> ET.Element:
    """POST a SOAP request; the parsed answer, or SoapFault/SoapHTTPError."""
    headers = {"SOAPAction": soap_action, "Content-Type": "text/xml; charset=utf-8"}
    try:
        async with http.post(
            url,
            data=body,
            headers=headers,
            ssl=True if verify_tls else False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise SoapHTTPError(url, None, f"{e.__class__.__name__}: {e}") from e
    try:
        root = ET.fromstring(raw) if raw.strip() else None
    except ET.ParseError:
        root = None
    if root is not None:
        fault = parse_fault(action, root)
        if fault is not None:
            raise fault
    if status != 200:
        raise SoapHTTPError(url, status, f"HTTP {status} for {action}")
    if root is None:
        raise SoapHTTPError(url, status, f"{action}: the answer is not XML")
    return root


T = TypeVar("T")


def ticket_expired(fault: SoapFault) -> bool:
    """Whether a fault says the ticket is stale (renewing it may help)."""
    if fault.code in ("TicketExpired", "BadPassportCredentials"):
        return True
    if fault.detail_text("TweenerChallenge"):
        return True
    return fault.code.endswith("AuthenticationFailed") and not fault.detail_text("LockKeyChallenge")


async def with_ticket(
    ticket: Callable[[], Awaitable[str]], attempt: Callable[[str], Awaitable[T]]
) -> T:
    """``attempt(ticket)``; when the service calls the ticket stale and the ticket source
    can renew (``ticket.renew()``), renew once and try again."""
    try:
        return await attempt(await ticket())
    except SoapFault as e:
        renew = getattr(ticket, "renew", None)
        if renew is None or not ticket_expired(e):
            raise
        await renew()
        return await attempt(await ticket())
