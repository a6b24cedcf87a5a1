"""The version-specific forms of contact-list commands, read into plain values.

MSNP2-7 carry list names, versions and counters (``LST t FL ver i n email nick``), MSNP8-9
send the SYN burst without trids (``LST email nick bits groups``), MSNP10+ use ``N=``/
``F=``/``C=`` fields and group GUIDs, MSNP12 adds a network id. The notification session
applies these values to the model; this module only reads arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from .command import decode_arg
from .contacts import _NO_GROUPS, Lists
from .errors import ProtocolError

_LIST_BITS = 0x1F


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except ValueError:
        return default


# Capabilities (ILN/NLN) take a few distinct values across every contact of every session:
# one int object per value rather than one per contact (bounded: junk cannot grow it).
_SHARED_INTS: dict[int, int] = {}


def _shared_int(value: str) -> int:
    n = _int(value)
    if len(_SHARED_INTS) < 1024:
        return _SHARED_INTS.setdefault(n, n)
    return _SHARED_INTS.get(n, n)


def groups_of(value: str) -> frozenset[str]:
    # Group 0 ("Other Contacts", MSNP7-9) is where ungrouped contacts live: in the model
    # they have no group, as in MSNP10+, so every version yields the same model.
    groups = [g for g in value.split(",") if g and g != "0"]
    # No group is the common case: one shared empty set rather than ~200 bytes per contact.
    return frozenset(groups) if groups else _NO_GROUPS


def _fields(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``N=x F=y C=z`` fields from plain arguments (MSNP10+)."""
    fields: dict[str, str] = {}
    plain: list[str] = []
    for a in args:
        if len(a) > 2 and a[1] == "=":
            fields[a[:2]] = a[2:]
        else:
            plain.append(a)
    return fields, plain


def _list(name: str) -> Lists:
    try:
        return Lists.from_name(name)
    except ValueError:
        raise ProtocolError(f"unknown list {name[:10]!r}") from None


@dataclass(slots=True)
class ListEntry:
    """One LST line. ``lists`` is the full bitmask (8+) or the one list named (2-7)."""

    passport: str | None  # None: an empty-list marker (2-7: ``LST t RL ver 0 0``)
    nick: str = ""
    lists: Lists = Lists.NONE
    replace: bool = True  # 8+: the bits are the whole truth; 2-7: add one list
    groups: frozenset[str] | None = None
    guid: str | None = None
    last_of: Lists | None = None  # 2-7: the last entry of this list


def parse_lst(protocol: int, args: list[str]) -> ListEntry:
    if protocol < 8:  # LST t LIST ver i n [email nick [groups]]
        if len(args) < 4:
            raise ProtocolError("short LST")
        lst = _list(args[0])
        last = lst if args[2] == args[3] else None
        if len(args) < 6 or args[3] == "0":
            return ListEntry(None, last_of=last)
        groups = groups_of(args[6]) if lst is Lists.FL and len(args) >= 7 else None
        return ListEntry(args[4], decode_arg(args[5]), lst, False, groups, last_of=last)
    if protocol >= 10:  # LST N=email F=nick C=guid bits [netid (12)] [groups]
        fields, rest = _fields(args)
        passport = fields.get("N=")
        if not passport or not rest:
            raise ProtocolError("LST without N= or list bits")
        tail = rest[1:]
        if protocol >= 12 and tail and tail[0].isdigit() and len(tail[0]) < 3:
            tail = tail[1:]  # network id (1 = MSN)
        return ListEntry(
            passport,
            decode_arg(fields.get("F=", passport)),
            Lists(_int(rest[0]) & _LIST_BITS),
            True,
            groups_of(tail[0]) if tail else _NO_GROUPS,
            fields.get("C="),
        )
    if len(args) < 3:  # LST email nick bits [groups]
        raise ProtocolError("short LST")
    return ListEntry(
        args[0],
        decode_arg(args[1]),
        Lists(_int(args[2]) & _LIST_BITS),
        True,
        groups_of(args[3]) if len(args) >= 4 else _NO_GROUPS,
    )


def parse_lsg(protocol: int, args: list[str]) -> tuple[str, str]:
    """(group id, name) of an LSG line."""
    if protocol < 8:  # LSG t ver i n gid name 0
        if len(args) < 5:
            raise ProtocolError("short LSG")
        return args[3], decode_arg(args[4])
    if len(args) < 2:
        raise ProtocolError("short LSG")
    if protocol >= 10:  # LSG name guid
        return args[1], decode_arg(args[0])
    return args[0], decode_arg(args[1])  # LSG id name 0


@dataclass(slots=True)
class ListChange:
    """ADD/ADC/REM, pushed or as a reply: who (passport or guid), which list, which group."""

    list: Lists
    passport: str | None
    guid: str | None = None
    nick: str | None = None
    group: str | None = None


def parse_add(protocol: int, name: str, args: list[str]) -> ListChange:
    if not args:
        raise ProtocolError(f"short {name}")
    lst = _list(args[0])
    if name == "ADC":  # ADC t LIST N=email [F=nick] [C=guid] [gid]
        fields, plain = _fields(args[1:])
        if "N=" not in fields and "C=" not in fields:
            raise ProtocolError("ADC without N= or C=")
        nick = fields.get("F=")
        return ListChange(
            lst,
            fields.get("N="),
            fields.get("C="),
            decode_arg(nick) if nick is not None else None,
            plain[0] if plain else None,
        )
    if len(args) < 4:  # ADD t LIST ver email nick [gid]
        raise ProtocolError("short ADD")
    return ListChange(lst, args[2], None, decode_arg(args[3]), args[4] if len(args) >= 5 else None)


def parse_rem(protocol: int, args: list[str]) -> ListChange:
    # ≤9: REM t LIST ver email [gid]; MSNP10+: REM t LIST guid|email [gid]
    if len(args) < 2:
        raise ProtocolError("short REM")
    lst = _list(args[0])
    rest = args[2:] if protocol < 10 else args[1:]
    if not rest:
        raise ProtocolError("REM without a contact")
    who = rest[0]
    group = rest[1] if len(rest) >= 2 else None
    if "@" in who:
        return ListChange(lst, who, group=group)
    return ListChange(lst, None, who, group=group)


@dataclass(slots=True)
class Presence:
    status: str
    passport: str
    nick: str | None = None
    caps: int | None = None
    msnobject: str | None = None
    ext_caps: int = 0  # MSNP16+: the extended capabilities after ``caps:``


def parse_presence(args: list[str]) -> Presence:
    """ILN (after its trid) and NLN: ``ST email nick [caps [msnobject]]``; from MSNP16
    caps are ``caps:extcaps``."""
    if len(args) < 2:
        raise ProtocolError("short presence line")
    caps: int | None = None
    ext_caps = 0
    if len(args) >= 4:
        base, _, ext = args[3].partition(":")
        caps, ext_caps = _shared_int(base), _shared_int(ext)
    return Presence(
        args[0],
        args[1],
        decode_arg(args[2]) if len(args) >= 3 else None,
        caps,
        decode_arg(args[4]) if len(args) >= 5 else None,
        ext_caps,
    )


def parse_group_change(protocol: int, name: str, args: list[str]) -> tuple[str, str | None]:
    """(group id, new name or None) of an ADG/RMG/REG reply."""
    if name == "RMG":  # ≤9: RMG t ver gid ; 10+: RMG t guid
        if not args:
            raise ProtocolError("short RMG")
        return args[-1], None
    rest = args[1:] if protocol < 10 else args  # drop the list version
    if len(rest) < 2:
        raise ProtocolError(f"short {name}")
    if name == "ADG":  # ≤9: ADG t ver name gid 0 ; 10+: ADG t name guid
        return rest[1], decode_arg(rest[0])
    return rest[0], decode_arg(rest[1])  # REG: ≤9 REG t ver gid name 0 ; 10+ REG t guid name
