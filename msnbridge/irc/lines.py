"""Pure text helpers for the IRC wire: line splitting, nick and channel names, relay text.

Nothing here does I/O. Sizes are UTF-8 bytes, because that is what the 512-byte limit
counts; splits happen only at code-point boundaries so no receiver sees a broken character.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator, Mapping

from puppets.textcut import cluster_end, space_before

MAX_LINE_BYTES = 512  # RFC 1459/2812, including the trailing CRLF
CRLF_BYTES = 2
# Assumed when the server has not told us our own user@host yet: ~ plus USERLEN (10) and
# the longest hostname (63). Over-estimating only makes lines a little shorter.
DEFAULT_USER_LEN = 11
DEFAULT_HOST_LEN = 63

# mIRC formatting codes a receiver renders: bold, colour, reset, monospace, reverse,
# italics, strikethrough, underline. Every other C0 control (NUL, CTCP's \x01, BEL…)
# is removed; TAB becomes a space so words stay apart.
FORMAT_CODES = frozenset("\x02\x03\x0f\x11\x16\x1d\x1e\x1f")
_C0 = {chr(c) for c in range(0x20)} | {"\x7f"}
_REMOVE = {ord(c): None for c in _C0 - FORMAT_CODES - {"\t", "\r", "\n"}}
_REMOVE[ord("\t")] = " "
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A colour code: \x03 then up to two digits, optionally a comma and up to two digits.
_COLOUR = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?")

ZWSP = "\u200b"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def clean_text(text: str) -> str:
    """Remove the controls IRC must not carry (keeps CR/LF for :func:`split_lines`).
    Lone surrogates (from badly decoded input) become U+FFFD: they cannot be encoded."""
    return _SURROGATE.sub("\ufffd", text.translate(_REMOVE))


def split_lines(text: str) -> list[str]:
    """Split on CR, LF or CRLF after cleaning; empty lines are dropped (IRC cannot send
    an empty message)."""
    return [line for line in _LINE_BREAK.split(clean_text(text)) if line]


def message_prefix_length(
    nick: str,
    command: str,
    target: str,
    *,
    user_len: int = DEFAULT_USER_LEN,
    host_len: int = DEFAULT_HOST_LEN,
) -> int:
    """Bytes of ``:nick!user@host COMMAND target :`` as receivers see it, plus CRLF."""
    return (
        1
        + utf8_len(nick)
        + 1
        + user_len
        + 1
        + host_len
        + 1
        + len(command)
        + 1
        + utf8_len(target)
        + 2
        + CRLF_BYTES
    )


def payload_budget(prefix_len: int, extra: int = 0) -> int:
    """Bytes left for text in one line after the prefix (and e.g. CTCP framing)."""
    return max(MAX_LINE_BYTES - prefix_len - extra, 1)


def _colour_safe_cut(text: str, cut: int) -> int:
    """Move ``cut`` back so it never falls inside a colour code (\\x03 12,04)."""
    start = max(text.rfind("\x03", 0, cut), 0)
    for match in _COLOUR.finditer(text, start, min(len(text), cut + 6)):
        if match.start() < cut < match.end():
            return match.start()
        if match.start() >= cut:
            break
    return cut


def split_utf8(line: str, max_bytes: int) -> list[str]:
    """Split one line into chunks of at most ``max_bytes`` UTF-8 bytes each.

    Where the line has a space in the latter half of a chunk's room, it splits there and
    the one whitespace character at the split is dropped (servers such as ngIRCd trim
    trailing spaces, so it would not survive anyway); otherwise it cuts at the last
    grapheme-cluster boundary that fits (never inside a character, a letter with its
    combining marks or an emoji sequence; see puppets.textcut), outside colour codes.
    Nothing else is lost.
    """
    if max_bytes < 4:
        raise ValueError("max_bytes must leave room for one UTF-8 code point")
    chunks: list[str] = []
    rest = line
    while utf8_len(rest) > max_bytes:
        # Largest code-point prefix that fits.
        cut = len(rest.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
        # Whitespace at index ``cut`` is fine too: it is dropped, the chunk before it fits.
        space = space_before(rest, cut // 2 + 1, cut + 1)
        if space > 0:
            chunks.append(rest[:space])
            rest = rest[space + 1 :]
            continue
        cut = cluster_end(rest, 0, cut)
        cut = _colour_safe_cut(rest, cut) or cut
        chunks.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        chunks.append(rest)
    return chunks


def split_message(
    text: str, max_bytes: int, max_lines: int | None = None
) -> tuple[list[str], bool]:
    """Text → IRC message bodies of at most ``max_bytes`` each.

    Returns ``(lines, truncated)``; ``truncated`` is true when ``max_lines`` cut lines off.
    """
    lines: list[str] = []
    for line in split_lines(text):
        lines.extend(split_utf8(line, max_bytes))
    if max_lines is not None and len(lines) > max_lines:
        return lines[:max_lines], True
    return lines, False


# Nicks (RFC 2812 2.3.1): a letter or special first, then letters, digits, specials, '-'.
_NICK_SPECIAL = "[]\\`_^{|}"
_NICK_FIRST = re.compile(r"[A-Za-z\[\]\\`_^{|}]")
_NICK_BAD = re.compile(r"[^A-Za-z0-9\[\]\\`_^{|}\-]+")


def _ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def sanitize_nick(wanted: str, nicklen: int = 9, *, suffix: str = "", fallback: str = "msn") -> str:
    """A valid nick as close to ``wanted`` as IRC allows, at most ``nicklen`` long.

    Accents are folded (``é`` → ``e``), runs of other characters become one ``_``, and a
    ``suffix`` (e.g. ``|msn``) is kept whole while the base is shortened to make room.
    """
    suffix = _NICK_BAD.sub("_", _ascii_fold(suffix))
    base = _NICK_BAD.sub("_", _ascii_fold(wanted)).strip("_") or fallback
    if not _NICK_FIRST.match(base):
        base = "_" + base
    room = max(nicklen - len(suffix), 1)
    nick = base[:room] + suffix
    return nick[:nicklen]


def is_nick(text: str, nicklen: int = 64) -> bool:
    """Whether ``text`` is a plain IRC nick (so it can go into INVITE/KICK/MODE lines)."""
    return (
        0 < len(text) <= nicklen
        and _NICK_FIRST.match(text) is not None
        and _NICK_BAD.search(text) is None
    )


def nick_alternatives(nick: str, nicklen: int = 9) -> Iterator[str]:
    """Collision fallbacks for ``nick``: ``nick_``, then ``nick1``, ``nick2``… each cut
    to ``nicklen`` by shortening the base. Never yields ``nick`` or a repeat; ends when
    the numbers no longer fit."""
    seen = {nick}
    first = (nick[: nicklen - 1] + "_") if len(nick) >= nicklen else nick + "_"
    numbered = (nick[: nicklen - len(str(n))] + str(n) for n in range(1, 10 ** (nicklen - 1)))
    for candidate in itertools.chain((first,), numbered):
        if candidate and candidate not in seen:
            seen.add(candidate)
            yield candidate


# Channel names may not hold space, comma, BEL, NUL, CR, LF; ':' confuses some servers.
_CHANNEL_BAD = re.compile(r"[\x00-\x20,:\x7f]+")


def sanitize_channel(name: str, channellen: int = 50, chantypes: str = "#") -> str:
    """A valid channel name for ``name``: prefixed with a channel type when missing,
    forbidden characters replaced by ``_``, cut to ``channellen`` UTF-8 bytes (servers
    such as ngIRCd count bytes) on a code-point boundary."""
    types = chantypes or "#"
    body = _CHANNEL_BAD.sub("_", clean_text(name))
    if not body or body[0] not in types:
        body = types[0] + body
    if len(body) == 1:
        body += "_"
    channel = body.encode("utf-8")[:channellen].decode("utf-8", "ignore")
    return channel if len(channel) > 1 else channel + "_"


def dehighlight(nick: str) -> str:
    """Insert a zero-width space in the middle of ``nick`` so relaying a name does not
    highlight (ping) the IRC user who has it."""
    if len(nick) < 2:
        return nick + ZWSP
    middle = len(nick) // 2
    return nick[:middle] + ZWSP + nick[middle:]


def relay_prefix(nick: str, *, action: bool = False) -> str:
    """``<Ni​ck> `` (or ``* Ni​ck `` for an action): what relay mode puts before text."""
    shown = dehighlight(nick)
    return f"* {shown} " if action else f"<{shown}> "


def relay_message(
    nick: str, text: str, max_bytes: int, max_lines: int | None = None, *, action: bool = False
) -> tuple[list[str], bool]:
    """Like :func:`split_message`, but every line carries the relay prefix, so each line
    still says who wrote it."""
    prefix = relay_prefix(nick, action=action)
    room = max_bytes - utf8_len(prefix)
    lines: list[str] = []
    for line in split_lines(text):
        lines.extend(prefix + chunk for chunk in split_utf8(line, room))
    if max_lines is not None and len(lines) > max_lines:
        return lines[:max_lines], True
    return lines, False


# draft/relaymsg: characters servers must refuse in a spoofed nick (they would break the
# ``nick!user@host`` prefix or look like a channel/status), besides whitespace.
_RELAYMSG_RESERVED = re.compile(r"[!+%@&#$:'\"?*,.\s\x00-\x1f\x7f]")
RELAYMSG_NAME_MAX = 30  # characters of the name before the separator


def relaymsg_nick(name: str, separators: str | None, suffix: str = "msn") -> str:
    """The spoofed nick for ``RELAYMSG``: ``Bob/msn``. It must hold one of the server's
    separators (the cap's value; ``/`` when it gave none), which ordinary nicks cannot
    contain, so nobody on IRC can take it."""
    clean = _RELAYMSG_RESERVED.sub("", unicodedata.normalize("NFC", name))
    clean = clean[:RELAYMSG_NAME_MAX] or "msn"
    separator = (separators or "/")[0]
    return f"{clean}{separator}{suffix}"


def relaymsg_lines(
    channel: str,
    nick: str,
    text: str,
    max_lines: int | None = None,
    *,
    action: bool = False,
) -> tuple[list[str], bool]:
    """``RELAYMSG <channel> <nick> :<text>`` lines. Each becomes ``:nick!user@host PRIVMSG
    <channel> :<text>`` for the receivers, so its budget is that of a PRIVMSG by ``nick``."""
    extra = len("\x01ACTION \x01") if action else 0
    budget = payload_budget(message_prefix_length(nick, "PRIVMSG", channel), extra)
    bodies, truncated = split_message(text, budget, max_lines)
    if action:
        bodies = [f"\x01ACTION {body}\x01" for body in bodies]
    return [f"RELAYMSG {channel} {nick} :{body}" for body in bodies], truncated


_TAG_ESCAPES = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


def format_tags(tags: Mapping[str, str | None]) -> str:
    """``key=value;key2`` with IRCv3 value escaping (no leading ``@``)."""
    return ";".join(
        key if value is None or value == "" else f"{key}={value.translate(_TAG_ESCAPES)}"
        for key, value in tags.items()
    )
