"""MSNP13-18 list commands on the notification server: ``ADL``/``RML`` with their XML
payloads (checked against the address book and memberships the SOAP services keep),
``FQY``, and the pushes that tell someone they were added or removed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from . import presence
from .accounts import Account, valid_passport
from .framing import Incoming, encode_arg, line, payload_line
from .link import Violation

if TYPE_CHECKING:
    from .hub import Hub
    from .notification import NotificationSession

OPPOSITE = {"AL": "BL", "BL": "AL"}
_BITS = {1: "FL", 2: "AL", 4: "BL"}
INVALID_MEMBERSHIP = 241


def parse_ml(payload: bytes) -> list[tuple[str, int, int]]:
    """(passport, list bits, network) of every ``<c>`` of an ``<ml>`` payload."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError as e:
        raise Violation("malformed_ml") from e
    if root.tag != "ml":
        raise Violation("malformed_ml")
    out: list[tuple[str, int, int]] = []
    for domain in root.findall("d"):
        for c in domain.findall("c"):
            user, dom = c.get("n", ""), domain.get("n", "")
            bits, net = c.get("l", "0"), c.get("t", "1")
            if not bits.isdigit() or not net.isdigit():
                raise Violation("malformed_ml")
            passport = f"{user}@{dom}".lower()
            if not valid_passport(passport):
                raise Violation("malformed_ml")
            out.append((passport, int(bits), int(net)))
    return out


def ml_payload(passport: str, bits: int, network: int = 1, nick: str | None = None) -> bytes:
    user, _, domain = passport.partition("@")
    extra = f" f={quoteattr(nick)}" if nick is not None else ""
    return (
        f'<ml><d n="{domain}"><c n="{user}" t="{network}" l="{bits}"{extra}/></d></ml>'
    ).encode()


def notify_rl(hub: Hub, me: Account, other: Account, added: bool) -> None:
    """Tell every signed-in endpoint of ``other`` that ``me`` added or removed them."""
    for target in hub.sessions_of(other.passport):
        if target.version >= 13:
            name = "ADL" if added else "RML"
            data = ml_payload(me.passport, 8, 1, me.nick if added else None)
            target.push(payload_line(name, 0, payload=data))
        elif target.version <= 9:
            tail = [me.passport, encode_arg(me.nick)] if added else [me.passport]
            target.push(line("ADD" if added else "REM", 0, "RL", other.list_version, *tail))
        elif added:
            target.push(line("ADC", 0, "RL", f"N={me.passport}", f"F={encode_arg(me.nick)}"))
        else:
            target.push(line("REM", 0, "RL", f"N={me.passport}"))


def forward_removed(hub: Hub, owner: Account, passport: str) -> None:
    """The owner deleted ``passport`` from the address book: off its RL, and told."""
    other = hub.directory.get(passport)
    if other is not None and owner.passport in other.lists["RL"]:
        other.remove_from("RL", owner.passport)
        other.bump()
        notify_rl(hub, owner, other, added=False)


def cmd_adl(s: NotificationSession, cmd: Incoming) -> None:
    if cmd.args or cmd.payload is None:
        raise Violation("malformed")
    me = s.account
    entries = parse_ml(cmd.payload)
    for passport, bits, _net in entries:
        if bits & ~7 or not bits:
            raise Violation("malformed_ml")
        for bit, list_name in _BITS.items():
            if bits & bit and not me.on(list_name, passport):
                # The real servers refused an ADL naming a contact the address book (or
                # the membership list) does not hold.
                s.error(INVALID_MEMBERSHIP, cmd.trid)
                return
    out: list[bytes] = []
    hub = s.hub
    for passport, bits, _net in entries:
        other = hub.directory.get(passport)
        if other is None or not bits & 1:
            continue
        if me.passport not in other.lists["RL"]:
            other.add_to("RL", me.passport, me.nick)
            other.bump()
            notify_rl(hub, me, other, added=True)
        if s.presence_started and other.visible_to(me.passport):
            out.append(presence.nln(s.version, other))
            if other.psm:
                out.append(presence.ubx(s.version, other))
    s.ml_sent = True
    s.reply("ADL", cmd.trid, "OK")
    s.push(b"".join(out))


def cmd_rml(s: NotificationSession, cmd: Incoming) -> None:
    if cmd.args or cmd.payload is None:
        raise Violation("malformed")
    out: list[bytes] = []
    for passport, bits, _net in parse_ml(cmd.payload):
        if bits & 1:
            out.append(presence.fln(passport, s.version))
    s.reply("RML", cmd.trid, "OK")
    s.push(b"".join(out))


def cmd_fqy(s: NotificationSession, cmd: Incoming) -> None:
    if cmd.args or cmd.payload is None:
        raise Violation("malformed")
    entries = parse_ml(cmd.payload)
    parts = []
    for passport, _bits, _net in entries:
        user, _, domain = passport.partition("@")
        parts.append(f'<d n={quoteattr(domain)}><c n={quoteattr(user)} t="1"/></d>')
    s.push(payload_line("FQY", cmd.trid, payload=f"<ml>{''.join(parts)}</ml>".encode()))
