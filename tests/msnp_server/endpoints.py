"""MSNP16-18 multiple points of presence: which sign-ins may stay side by side, the
endpoint data a client sends in ``UUX``, and the owner's own ``UBX`` listing every
signed-in endpoint (machine GUID, endpoint name)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from .accounts import Account
from .framing import payload_line
from .presence import who

if TYPE_CHECKING:
    from .hub import Hub
    from .notification import NotificationSession

_GUID = re.compile(
    r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$"
)


def valid_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def may_coexist(hub: Hub, old: NotificationSession, new: NotificationSession) -> bool:
    """Two sign-ins of one account stay together only with MPOP on both sides (16+)
    from different machines; otherwise the older one gets ``OUT OTH``."""
    return (
        hub.config.mpop
        and old.version >= 16
        and new.version >= 16
        and bool(old.machine_guid)
        and bool(new.machine_guid)
        and old.machine_guid != new.machine_guid
        and len(hub.sessions_of(old.account.passport)) < hub.config.endpoint_limit
    )


def is_endpoint_data(payload: bytes) -> bool:
    try:
        root = ET.fromstring(payload)
    except ET.ParseError:
        return False
    return root.tag in ("EndpointData", "PrivateEndpointData")


def take_uux(session: NotificationSession, payload: bytes) -> None:
    root = ET.fromstring(payload)
    if root.tag == "PrivateEndpointData":
        session.ep_name = (root.findtext("EpName") or "")[:64]


def _psm(account: Account) -> tuple[str, str]:
    if not account.psm:
        return "", ""
    try:
        root = ET.fromstring(account.psm)
    except ET.ParseError:
        return "", ""
    return root.findtext("PSM") or "", root.findtext("CurrentMedia") or ""


def own_ubx(
    account: Account, sessions: list[NotificationSession], viewer: NotificationSession
) -> bytes:
    psm, media = _psm(account)
    parts = [
        f"<Data><PSM>{escape(psm)}</PSM><CurrentMedia>{escape(media)}</CurrentMedia>",
        f"<MachineGuid>{viewer.machine_guid}</MachineGuid>",
    ]
    for s in sessions:
        if not s.machine_guid:
            continue
        parts.append(
            f'<EndpointData id="{s.machine_guid}"><Capabilities>'
            f"{account.caps}:{account.ext_caps}"
            "</Capabilities></EndpointData>"
        )
        parts.append(
            f'<PrivateEndpointData id="{s.machine_guid}"><EpName>{escape(s.ep_name)}</EpName>'
            f"<Idle>false</Idle><ClientType>1</ClientType><State>{account.status}</State>"
            "</PrivateEndpointData>"
        )
    parts.append("</Data>")
    return payload_line(
        "UBX", *who(viewer.version, account.passport), payload="".join(parts).encode()
    )


def announce_own(hub: Hub, account: Account) -> None:
    sessions = hub.sessions_of(account.passport)
    for s in sessions:
        if s.version >= 16:
            s.push(own_ubx(account, sessions, s))
