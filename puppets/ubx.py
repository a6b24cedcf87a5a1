"""The XML payloads of ``UUX`` (what we publish) and ``UBX`` (what others publish):
personal message and current media (MSNP11+), and MSNP16-18 endpoint data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape


def parse_ubx(payload: bytes) -> tuple[str, str]:
    """The PSM and current media of a UBX payload; tolerant of junk."""
    if not payload.strip():
        return "", ""
    try:
        root = ET.fromstring(payload.decode("utf-8", "replace"))
    except ET.ParseError:
        return "", ""
    return (root.findtext("PSM") or "", root.findtext("CurrentMedia") or "")


def psm_payload(text: str) -> bytes:
    return f"<Data><PSM>{escape(text)}</PSM><CurrentMedia></CurrentMedia></Data>".encode()


def endpoint_payloads(caps: str, name: str, status: str) -> list[bytes]:
    """MSNP18 UUX endpoint data: capabilities (``caps:extcaps``), then the private part
    with the name the owner's other endpoints show for this one."""
    return [
        f"<EndpointData><Capabilities>{caps}</Capabilities></EndpointData>".encode(),
        (
            f"<PrivateEndpointData><EpName>{escape(name)}</EpName><Idle>false</Idle>"
            f"<ClientType>1</ClientType><State>{status}</State></PrivateEndpointData>"
        ).encode(),
    ]


def endpoints_of(payload: bytes) -> tuple[dict[str, str], str | None]:
    """MSNP16+ own UBX: (machine GUID -> endpoint name, the PSM or None)."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError:
        return {}, None
    found: dict[str, str] = {}
    for el in root.iter("EndpointData"):
        guid = (el.get("id") or "").lower()
        if guid:
            found.setdefault(guid, "")
    for el in root.iter("PrivateEndpointData"):
        guid = (el.get("id") or "").lower()
        if guid:
            found[guid] = el.findtext("EpName") or ""
    return found, root.findtext("PSM")
