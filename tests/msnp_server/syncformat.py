"""The SYN answer in each generation's form: MSNP2-7 (trid + version on every line),
MSNP8-9 (counts, no trids) and MSNP10-12 (timestamps, N=/F=/C= and guids)."""

from __future__ import annotations

from collections.abc import Callable

from .accounts import LISTS, Account
from .framing import encode_arg, line

PhonesOf = Callable[[str], dict[str, str]]


def _bpr(version: int, ver: int, passport: str, phones: dict[str, str]) -> list[bytes]:
    """A contact's phone numbers after its LST line (MSNP5+): ``BPR ver email PHH x`` up to
    MSNP7, ``BPR PHH x`` from MSNP8 (it applies to the LST just before)."""
    if version < 5:
        return []
    if version <= 7:
        return [line("BPR", ver, passport, k, encode_arg(v)) for k, v in sorted(phones.items())]
    return [line("BPR", k, encode_arg(v)) for k, v in sorted(phones.items())]


def _fl_groups_old(account: Account, passport: str) -> str:
    groups = account.contacts[passport].groups
    return ",".join(str(g) for g in sorted(groups)) if groups else "0"


def _ordered(account: Account) -> list[str]:
    """Every passport on any list, in a stable order (FL first, as the servers did)."""
    seen: dict[str, None] = {}
    for list_name in LISTS:
        for passport in sorted(account.lists[list_name]):
            seen.setdefault(passport, None)
    return list(seen)


def _phone_lines(version: int, trid: int, account: Account) -> list[bytes]:
    if version < 5:
        return []
    out = []
    for kind, value in sorted(account.phones.items()):
        if version <= 7:
            out.append(line("PRP", trid, account.list_version, kind, encode_arg(value)))
        else:
            out.append(line("PRP", kind, encode_arg(value)))
    return out


def sync_old(
    version: int, trid: int, account: Account, client_version: int, phones_of: PhonesOf
) -> list[bytes]:
    """MSNP2-7. An up-to-date client gets the bare ``SYN t ver``."""
    ver = account.list_version
    out = [line("SYN", trid, ver)]
    if client_version == ver:
        return out
    out.append(line("GTC", trid, ver, account.gtc))
    out.append(line("BLP", trid, ver, account.blp))
    out += _phone_lines(version, trid, account)
    if version >= 7:
        groups = sorted(account.groups.values(), key=lambda g: g.id)
        for i, group in enumerate(groups, 1):
            out.append(line("LSG", trid, ver, i, len(groups), group.id, encode_arg(group.name), 0))
    for list_name in LISTS:
        members = sorted(account.lists[list_name])
        if not members:
            out.append(line("LST", trid, list_name, ver, 0, 0))
            continue
        for i, passport in enumerate(members, 1):
            nick = encode_arg(account.contacts[passport].nick)
            parts: list[object] = ["LST", trid, list_name, ver, i, len(members), passport, nick]
            if version >= 7 and list_name == "FL":
                parts.append(_fl_groups_old(account, passport))
            out.append(line(*parts))
            if list_name == "FL":
                out += _bpr(version, ver, passport, phones_of(passport))
    return out


def sync_8(version: int, trid: int, account: Account, phones_of: PhonesOf) -> list[bytes]:
    """MSNP8-9: ``SYN t ver nC nG`` then GTC, BLP, PRP, LSG, LST (+BPR) without trids."""
    contacts = _ordered(account)
    groups = sorted(account.groups.values(), key=lambda g: g.id)
    out = [line("SYN", trid, account.list_version, len(contacts), len(groups))]
    out.append(line("GTC", account.gtc))
    out.append(line("BLP", account.blp))
    out += _phone_lines(version, trid, account)
    for group in groups:
        out.append(line("LSG", group.id, encode_arg(group.name), 0))
    for passport in contacts:
        nick = encode_arg(account.contacts[passport].nick)
        parts: list[object] = ["LST", passport, nick, account.bits(passport)]
        if account.on("FL", passport):
            parts.append(_fl_groups_old(account, passport))
        out.append(line(*parts))
        out += _bpr(version, 0, passport, phones_of(passport))
    return out


def sync_10(version: int, trid: int, account: Account, phones_of: PhonesOf) -> list[bytes]:
    """MSNP10-12: ``SYN t ts ts nC nG``, GTC, BLP, PRP MFN, LSG name guid,
    ``LST N= F= C= bits [1] groupguids`` (MSNP12 adds the network id 1)."""
    contacts = _ordered(account)
    groups = sorted((g for g in account.groups.values() if g.id != 0), key=lambda g: g.id)
    stamp = account.list_stamp
    out = [line("SYN", trid, stamp, stamp, len(contacts), len(groups))]
    out.append(line("GTC", account.gtc))
    out.append(line("BLP", account.blp))
    out.append(line("PRP", "MFN", encode_arg(account.nick)))
    out += _phone_lines(version, trid, account)
    for group in groups:
        out.append(line("LSG", encode_arg(group.name), group.guid))
    for passport in contacts:
        entry = account.contacts[passport]
        parts: list[object] = [f"N={passport}", f"F={encode_arg(entry.nick)}"]
        on_fl = account.on("FL", passport)
        if on_fl:
            parts.append(f"C={entry.guid}")
        parts.append(account.bits(passport))
        if version >= 12:
            parts.append(1)
        if on_fl and entry.groups:
            parts.append(",".join(account.groups[g].guid for g in sorted(entry.groups)))
        out.append(line("LST", *parts))
        out += _bpr(version, 0, passport, phones_of(passport))
    return out
