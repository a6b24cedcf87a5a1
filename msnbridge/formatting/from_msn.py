"""MSN text message → RichText. MSN formats a whole message, so the result is one span."""

from __future__ import annotations

from puppets.message import TextMessage

from .model import MessageKind, RichText, Span

__all__ = ["from_msn"]


def from_msn(message: TextMessage) -> RichText:
    """Convert a received text message.

    Colour 0 (black) is every client's default and is read as "no colour", so plain MSN
    messages do not turn into black text on dark Matrix themes. The font is dropped:
    neither Matrix nor IRC users pick fonts per message.
    """
    text = message.text.replace("\r\n", "\n").replace("\r", "\n")
    fmt = message.format
    span = Span(
        text,
        bold=fmt.bold,
        italic=fmt.italic,
        underline=fmt.underline,
        strike=fmt.strike,
        color=(fmt.color & 0xFFFFFF) or None,
    )
    return RichText([span] if text else [], MessageKind.TEXT)
