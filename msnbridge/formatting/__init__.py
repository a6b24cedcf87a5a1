"""Message formatting between MSN, Matrix HTML and mIRC codes, through :class:`RichText`.

Each converter module reads one format or writes one (``from_msn``, ``to_html``…); the
functions here chain them for the bridge's common paths.
"""

from __future__ import annotations

from puppets.message import TextFormat, TextMessage

from .from_html import from_html, parse_color, strip_reply_fallback
from .from_mirc import from_mirc, strip_mirc
from .from_msn import from_msn
from .mirc_colors import nearest as nearest_mirc_color
from .model import MessageKind, RichText, Span
from .to_html import to_html
from .to_mirc import to_mirc, to_mirc_lines
from .to_msn import as_emote_text, inline_link, to_msn

__all__ = [
    "MessageKind",
    "RichText",
    "Span",
    "as_emote_text",
    "from_html",
    "from_mirc",
    "from_msn",
    "html_to_mirc",
    "html_to_msn",
    "inline_link",
    "mirc_to_html",
    "mirc_to_msn",
    "msn_to_html",
    "msn_to_mirc",
    "nearest_mirc_color",
    "parse_color",
    "rich_to_html",
    "strip_mirc",
    "strip_reply_fallback",
    "to_html",
    "to_mirc",
    "to_mirc_lines",
    "to_msn",
]


def rich_to_html(rich: RichText) -> tuple[str, str | None]:
    """Matrix ``body`` and ``formatted_body``; the latter None when there is no formatting."""
    return rich.plain(), (None if rich.is_plain() else to_html(rich))


def _from_html_or_plain(html: str | None, plain_fallback: str) -> RichText:
    rich = from_html(html) if html else RichText()
    if not rich.plain().strip():
        # No HTML, or HTML with nothing readable in it (an image, only a reply fallback).
        rich = RichText.from_plain(plain_fallback)
    return rich


def msn_to_html(message: TextMessage) -> tuple[str, str | None]:
    """An MSN text message as Matrix (body, formatted_body or None)."""
    return rich_to_html(from_msn(message))


def html_to_msn(
    html: str | None, plain_fallback: str, base: TextFormat | None = None
) -> tuple[str, TextFormat]:
    """A Matrix message (formatted_body, body) as MSN text and format.

    ``base`` supplies the font. A plain ``body`` is used as it is: strip a reply's
    fallback with :func:`strip_reply_fallback` first if it is a reply.
    """
    return to_msn(_from_html_or_plain(html, plain_fallback), base)


def msn_to_mirc(message: TextMessage, *, hex_colors: bool = False) -> str:
    """An MSN text message as IRC text; lines separated by "\\n", each self-contained."""
    return to_mirc(from_msn(message), hex_colors=hex_colors)


def mirc_to_msn(line: str, base: TextFormat | None = None) -> tuple[str, TextFormat]:
    """An IRC message as MSN text and format."""
    return to_msn(from_mirc(line), base)


def html_to_mirc(html: str | None, plain_fallback: str = "", *, hex_colors: bool = False) -> str:
    """A Matrix message as IRC text; lines separated by "\\n", each self-contained."""
    return to_mirc(_from_html_or_plain(html, plain_fallback), hex_colors=hex_colors)


def mirc_to_html(line: str) -> tuple[str, str | None]:
    """An IRC message as Matrix (body, formatted_body or None)."""
    return rich_to_html(from_mirc(line))
