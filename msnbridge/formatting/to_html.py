"""RichText → Matrix HTML (org.matrix.custom.html). Every piece of text is escaped."""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from .model import RichText, Span, clean_link

__all__ = ["SAFE_SCHEMES", "to_html"]

# The link schemes the Matrix spec lets clients render; anything else (javascript:…)
# stays visible as text but is never made a link.
SAFE_SCHEMES = frozenset({"http", "https", "ftp", "mailto", "magnet", "matrix"})


def _safe_link(link: str) -> str | None:
    try:
        scheme = urlsplit(link).scheme.lower()
    except ValueError:
        return None
    return link if scheme in SAFE_SCHEMES else None


def _span_html(span: Span) -> str:
    text = span.text.replace("\r\n", "\n").replace("\r", "\n")
    body = escape(text, quote=False).replace("\n", "<br>")
    if span.code:
        body = f"<code>{body}</code>"
    if span.strike:
        body = f"<del>{body}</del>"
    if span.underline:
        body = f"<u>{body}</u>"
    if span.italic:
        body = f"<em>{body}</em>"
    if span.bold:
        body = f"<strong>{body}</strong>"
    if span.color is not None:
        body = f'<font color="#{span.color & 0xFFFFFF:06x}">{body}</font>'
    # Spans reach here from MSN and IRC too, so the link is cleaned here, not only in from_html.
    target = clean_link(span.link) if span.link else ""
    link = _safe_link(target) if target else None
    if link:
        body = f'<a href="{escape(link, quote=True)}">{body}</a>'
    elif target:
        body += escape(f" ({target})", quote=False)
    return body


def to_html(rich: RichText) -> str:
    """HTML for ``rich``: styles as tags, newlines as ``<br>``, text always escaped."""
    return "".join(_span_html(span) for span in rich.merged().spans)
