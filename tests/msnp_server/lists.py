"""List and group commands: ADD/REM (MSNP2-9), ADC/REM (MSNP10+), ADG/RMG/REG, GTC/BLP,
and the RL notice to the person who was added or removed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ml, presence
from .accounts import MAX_NICK_BYTES, Account, Group, valid_passport
from .framing import Incoming, decode_arg, encode_arg
from .link import Violation

if TYPE_CHECKING:
    from .notification import NotificationSession

_OPPOSITE = {"AL": "BL", "BL": "AL"}
MAX_GROUP_NAME_BYTES = 61


def _version_part(s: NotificationSession, account: Account) -> list[object]:
    """MSNP2-9 replies carry the new list version; MSNP10+ replies do not."""
    version = account.bump()
    return [version] if s.version <= 9 else []


def _notify_rl(s: NotificationSession, other: Account, added: bool) -> None:
    """Tell ``other`` (every signed-in endpoint) that ``s``'s user added or removed them."""
    ml.notify_rl(s.hub, s.account, other, added)


def _add(s: NotificationSession, list_name: str, other: Account, nick: str) -> bytes:
    """Put ``other`` on a list of ``s``'s user, with the side effects real servers had.
    Returns the presence of ``other`` to push after the reply (on FL adds)."""
    me = s.account
    before = s.hub.seen_by(me)
    entry = me.add_to(list_name, other.passport, nick)
    if list_name == "FL":
        entry.nick = nick
        other.add_to("RL", me.passport, me.nick)
        other.bump()
        _notify_rl(s, other, added=True)
    s.hub.announce(me, before, changed=False)
    if list_name == "FL" and s.presence_started and other.visible_to(me.passport):
        return presence.nln(s.version, other) + (
            presence.ubx(s.version, other) if other.psm else b""
        )
    return b""


def _remove(s: NotificationSession, list_name: str, other_passport: str) -> None:
    me = s.account
    before = s.hub.seen_by(me)
    me.remove_from(list_name, other_passport)
    other = s.hub.directory.get(other_passport)
    if list_name == "FL" and other is not None:
        other.remove_from("RL", me.passport)
        other.bump()
        _notify_rl(s, other, added=False)
    s.hub.announce(me, before, changed=False)


def _list_name(s: NotificationSession, cmd: Incoming, token: str) -> str | None:
    if token in ("FL", "AL", "BL"):
        return token
    if token in ("RL", "PL"):
        s.error(201, cmd.trid)
        return None
    raise Violation("malformed")


def _target(s: NotificationSession, cmd: Incoming, passport: str) -> Account | None:
    if not valid_passport(passport):
        s.error(201, cmd.trid)
        return None
    other = s.hub.directory.get(passport)
    if other is None:
        s.error(205, cmd.trid)
    return other


def _nick(s: NotificationSession, cmd: Incoming, raw: str) -> str | None:
    if len(raw.encode()) > MAX_NICK_BYTES:
        s.error(209, cmd.trid)
        return None
    return decode_arg(raw)


def _add_to_group(
    s: NotificationSession, cmd: Incoming, passport: str, group_id: int, echo: list[object]
) -> None:
    me = s.account
    entry = me.contacts[passport]
    if group_id in entry.groups or (group_id == 0 and not entry.groups):
        s.error(215, cmd.trid)
        return
    if group_id != 0:
        entry.groups.add(group_id)
    s.reply("ADD", cmd.trid, "FL", me.bump(), *echo)


# -- MSNP2-9 ----------------------------------------------------------------------
def cmd_add(s: NotificationSession, cmd: Incoming) -> None:
    """``ADD t LIST email nick [gid]`` -> ``ADD t LIST ver email nick [gid]``."""
    args = cmd.args
    if not 3 <= len(args) <= 4:
        raise Violation("malformed")
    list_name = _list_name(s, cmd, args[0])
    if list_name is None:
        return
    if len(args) == 4 and (list_name != "FL" or s.version < 7 or not args[3].isdigit()):
        raise Violation("malformed")
    passport = args[1].lower()
    other = _target(s, cmd, passport)
    nick = _nick(s, cmd, args[2])
    if other is None or nick is None:
        return
    me = s.account
    group_id = int(args[3]) if len(args) == 4 else 0
    if group_id not in me.groups:
        s.error(224, cmd.trid)
        return
    opposite = _OPPOSITE.get(list_name)
    if opposite and me.on(opposite, passport):
        s.error(219, cmd.trid)
        return
    echo: list[object] = [passport, encode_arg(nick)] + ([group_id] if len(args) == 4 else [])
    if me.on(list_name, passport):
        if list_name == "FL" and len(args) == 4:
            _add_to_group(s, cmd, passport, group_id, echo)
        else:
            s.error(215, cmd.trid)
        return
    follow = _add(s, list_name, other, nick)
    if group_id:
        me.contacts[passport].groups.add(group_id)
    s.reply("ADD", cmd.trid, list_name, me.bump(), *echo)
    s.push(follow)


def _rem_old(s: NotificationSession, cmd: Incoming) -> None:
    """``REM t LIST email [gid]`` -> ``REM t LIST ver email [gid]``."""
    args = cmd.args
    if not 2 <= len(args) <= 3:
        raise Violation("malformed")
    list_name = _list_name(s, cmd, args[0])
    if list_name is None:
        return
    if len(args) == 3 and (list_name != "FL" or s.version < 7 or not args[2].isdigit()):
        raise Violation("malformed")
    passport = args[1].lower()
    me = s.account
    if not me.on(list_name, passport):
        s.error(216, cmd.trid)
        return
    if len(args) == 3:
        group_id = int(args[2])
        if group_id not in me.groups:
            s.error(224, cmd.trid)
            return
        entry = me.contacts[passport]
        if group_id in entry.groups:
            entry.groups.discard(group_id)
            s.reply("REM", cmd.trid, "FL", me.bump(), passport, group_id)
            return
        if group_id != 0 or entry.groups:
            s.error(225, cmd.trid)
            return
    _remove(s, list_name, passport)
    s.reply("REM", cmd.trid, list_name, me.bump(), passport, *args[2:])


# -- MSNP10+ ----------------------------------------------------------------------
def _kv(args: list[str]) -> tuple[dict[str, str], list[str]]:
    pairs: dict[str, str] = {}
    rest: list[str] = []
    for arg in args:
        if len(arg) > 2 and arg[1] == "=" and arg[0] in "NFC":
            pairs[arg[0]] = arg[2:]
        else:
            rest.append(arg)
    return pairs, rest


def cmd_adc(s: NotificationSession, cmd: Incoming) -> None:
    """``ADC t FL N=email F=nick`` -> ``... C=guid``; ``ADC t FL C=guid gguid``;
    ``ADC t AL|BL N=email``."""
    if not cmd.args:
        raise Violation("malformed")
    list_name = _list_name(s, cmd, cmd.args[0])
    if list_name is None:
        return
    pairs, rest = _kv(cmd.args[1:])
    me = s.account
    if list_name == "FL" and "C" in pairs:
        if set(pairs) != {"C"} or len(rest) != 1:
            raise Violation("malformed")
        contact = me.contact_by_guid(pairs["C"])
        group = me.group_by_guid(rest[0])
        if contact is None:
            s.error(208, cmd.trid)
            return
        if group is None:
            s.error(224, cmd.trid)
            return
        if group.id in contact.groups:
            s.error(215, cmd.trid)
            return
        contact.groups.add(group.id)
        me.bump()
        s.reply("ADC", cmd.trid, "FL", f"C={contact.guid}", group.guid)
        return
    want = {"N", "F"} if list_name == "FL" else {"N"}
    if set(pairs) != want or rest:
        raise Violation("malformed")
    passport = pairs["N"].lower()
    other = _target(s, cmd, passport)
    nick = _nick(s, cmd, pairs.get("F", passport))
    if other is None or nick is None:
        return
    opposite = _OPPOSITE.get(list_name)
    if opposite and me.on(opposite, passport):
        s.error(219, cmd.trid)
        return
    if me.on(list_name, passport):
        s.error(215, cmd.trid)
        return
    follow = _add(s, list_name, other, nick)
    me.bump()
    if list_name == "FL":
        guid = me.contacts[passport].guid
        s.reply("ADC", cmd.trid, "FL", f"N={passport}", f"F={encode_arg(nick)}", f"C={guid}")
    else:
        s.reply("ADC", cmd.trid, list_name, f"N={passport}")
    s.push(follow)


def _rem_new(s: NotificationSession, cmd: Incoming) -> None:
    """``REM t FL guid [gguid]``; ``REM t AL|BL email``."""
    args = cmd.args
    if not 2 <= len(args) <= 3:
        raise Violation("malformed")
    list_name = _list_name(s, cmd, args[0])
    if list_name is None:
        return
    me = s.account
    if list_name != "FL":
        if len(args) != 2:
            raise Violation("malformed")
        passport = args[1].lower()
        if not me.on(list_name, passport):
            s.error(216, cmd.trid)
            return
        _remove(s, list_name, passport)
        me.bump()
        s.reply("REM", cmd.trid, list_name, passport)
        return
    contact = me.contact_by_guid(args[1])
    if contact is None:
        s.error(216, cmd.trid)
        return
    if len(args) == 3:
        group = me.group_by_guid(args[2])
        if group is None:
            s.error(224, cmd.trid)
            return
        if group.id not in contact.groups:
            s.error(225, cmd.trid)
            return
        contact.groups.discard(group.id)
        me.bump()
        s.reply("REM", cmd.trid, "FL", contact.guid, group.guid)
        return
    _remove(s, "FL", contact.passport)
    me.bump()
    s.reply("REM", cmd.trid, "FL", contact.guid)


def cmd_rem(s: NotificationSession, cmd: Incoming) -> None:
    if s.version <= 9:
        _rem_old(s, cmd)
    else:
        _rem_new(s, cmd)


# -- groups -----------------------------------------------------------------------
def _group_name(s: NotificationSession, cmd: Incoming, raw: str) -> str | None:
    if len(raw.encode()) > MAX_GROUP_NAME_BYTES:
        s.error(229, cmd.trid)
        return None
    return decode_arg(raw)


def cmd_adg(s: NotificationSession, cmd: Incoming) -> None:
    """``ADG t name 0`` -> ``ADG t ver name gid 0`` (7-9); ``ADG t name`` -> ``ADG t name
    guid`` (10+, the trailing 0 tolerated)."""
    args = cmd.args
    if s.version <= 9 and (len(args) != 2 or args[1] != "0"):
        raise Violation("malformed")
    if s.version >= 10 and not (len(args) == 1 or (len(args) == 2 and args[1] == "0")):
        raise Violation("malformed")
    name = _group_name(s, cmd, args[0])
    if name is None:
        return
    me = s.account
    if any(g.name == name for g in me.groups.values()):
        s.error(228, cmd.trid)
        return
    group = me.new_group(name)
    if s.version <= 9:
        s.reply("ADG", cmd.trid, me.bump(), encode_arg(name), group.id, 0)
    else:
        me.bump()
        s.reply("ADG", cmd.trid, encode_arg(name), group.guid)


def _group_ref(s: NotificationSession, cmd: Incoming, ref: str) -> Group | None:
    """A group by number (MSNP7-9) or guid (MSNP10+); 224 when there is none."""
    me = s.account
    if s.version <= 9:
        if not ref.isdigit():
            raise Violation("malformed")
        group = me.groups.get(int(ref))
    else:
        group = me.group_by_guid(ref)
    if group is None:
        s.error(224, cmd.trid)
    return group


def cmd_rmg(s: NotificationSession, cmd: Incoming) -> None:
    if len(cmd.args) != 1:
        raise Violation("malformed")
    group = _group_ref(s, cmd, cmd.args[0])
    if group is None:
        return
    if group.id == 0:
        s.error(230, cmd.trid)
        return
    me = s.account
    del me.groups[group.id]
    for contact in me.contacts.values():
        contact.groups.discard(group.id)
    if s.version <= 9:
        s.reply("RMG", cmd.trid, me.bump(), group.id)
    else:
        me.bump()
        s.reply("RMG", cmd.trid, group.guid)


def cmd_reg(s: NotificationSession, cmd: Incoming) -> None:
    """``REG t gid name [0]`` -> ``REG t ver gid name 0``; ``REG t guid name``."""
    args = cmd.args
    if not (len(args) == 2 or (len(args) == 3 and args[2] == "0")):
        raise Violation("malformed")
    group = _group_ref(s, cmd, args[0])
    if group is None:
        return
    name = _group_name(s, cmd, args[1])
    if name is None:
        return
    group.name = name
    me = s.account
    if s.version <= 9:
        s.reply("REG", cmd.trid, me.bump(), group.id, encode_arg(name), 0)
    else:
        me.bump()
        s.reply("REG", cmd.trid, group.guid, encode_arg(name))


# -- privacy ----------------------------------------------------------------------
def _setting(s: NotificationSession, cmd: Incoming, attr: str, allowed: tuple[str, str]) -> None:
    if len(cmd.args) != 1 or cmd.args[0] not in allowed:
        raise Violation("malformed")
    me = s.account
    value = cmd.args[0]
    if getattr(me, attr) == value:
        s.error(218, cmd.trid)
        return
    before = s.hub.seen_by(me)
    setattr(me, attr, value)
    s.hub.announce(me, before, changed=False)
    s.reply(cmd.name, cmd.trid, *_version_part(s, me), value)


def cmd_gtc(s: NotificationSession, cmd: Incoming) -> None:
    _setting(s, cmd, "gtc", ("A", "N"))


def cmd_blp(s: NotificationSession, cmd: Incoming) -> None:
    _setting(s, cmd, "blp", ("AL", "BL"))
