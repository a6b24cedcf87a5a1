"""Matrix ``formatted_body`` (org.matrix.custom.html) → RichText.

A small html.parser converter rather than mautrix's MatrixParser: we need only styles,
links, line structure and the reply fallback dropped, and this keeps the formatting
package free of the Matrix library. It never raises on malformed markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from html.parser import HTMLParser

from .model import MessageKind, RichText, Span, clean_link

__all__ = ["from_html", "parse_color", "strip_reply_fallback"]

_WHITESPACE = re.compile(r"([ \t\n\r\f]+)")  # HTML whitespace; NBSP is text
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SKIP = frozenset({"mx-reply", "script", "style", "head", "title", "template"})
_STYLE_TAGS: dict[str, dict[str, object]] = {
    "b": {"bold": True},
    "strong": {"bold": True},
    "i": {"italic": True},
    "em": {"italic": True},
    "u": {"underline": True},
    "ins": {"underline": True},
    "s": {"strike": True},
    "del": {"strike": True},
    "strike": {"strike": True},
    "code": {"code": True},
    "tt": {"code": True},
    "kbd": {"code": True},
    "samp": {"code": True},
    "pre": {"code": True},
    **{f"h{level}": {"bold": True} for level in range(1, 7)},
}
# Blocks separated by a blank line, and blocks that only start a new line.
_PARAGRAPH = frozenset({"p", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"})
_LINE = frozenset({"div", "li", "tr", "dt", "dd", "table", "details", "summary", "hr"})
_NAMED_COLORS = {
    "black": 0x000000,
    "silver": 0xC0C0C0,
    "gray": 0x808080,
    "grey": 0x808080,
    "white": 0xFFFFFF,
    "maroon": 0x800000,
    "red": 0xFF0000,
    "purple": 0x800080,
    "fuchsia": 0xFF00FF,
    "magenta": 0xFF00FF,
    "green": 0x008000,
    "lime": 0x00FF00,
    "olive": 0x808000,
    "yellow": 0xFFFF00,
    "navy": 0x000080,
    "blue": 0x0000FF,
    "teal": 0x008080,
    "aqua": 0x00FFFF,
    "cyan": 0x00FFFF,
    "orange": 0xFFA500,
}
# Mentions ("pills") link to the user; the name alone reads better outside Matrix.
_USER_PILL = re.compile(r"^https://matrix\.to/#/[@]", re.IGNORECASE)


def parse_color(value: str | None) -> int | None:
    """``#rrggbb``, ``#rgb`` or a basic colour name → 0xRRGGBB; None when unreadable."""
    if not value:
        return None
    value = value.strip().lower()
    if value in _NAMED_COLORS:
        return _NAMED_COLORS[value]
    digits = value.removeprefix("#")
    if not all(c in "0123456789abcdef" for c in digits):
        return None
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits, 16) if len(digits) == 6 else None


def strip_reply_fallback(body: str) -> str:
    """Drop the ``> <@user> quoted`` lines and blank line a Matrix reply's plain body starts with.

    Call it only for events that are replies (m.relates_to has m.in_reply_to): an
    ordinary message may legitimately start with a quote.
    """
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index == 0:
        return body
    if index < len(lines) and not lines[index].strip():
        index += 1
    return "\n".join(lines[index:])


# Deeper nesting than this is abuse, not formatting; ignoring it keeps parsing linear.
_MAX_DEPTH = 200


@dataclass
class _Element:
    tag: str
    style: Span  # the style in effect inside the element
    skip: bool = False
    pre: bool = False
    quote: bool = False
    list: bool = False
    block_after: int = 0  # line breaks wanted after the element


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[Span] = []
        self.stack: list[_Element] = []
        self.skip = 0
        self.pre = 0
        self.quote = 0
        self.lists: list[list[int]] = []  # per open list: [ordered (0/1), next number]
        self.newlines = 0  # line breaks owed before the next text
        self.break_quote = 0  # quote depth when they were first owed (for blank lines)
        self.space: Span | None = None  # a collapsed space owed before the next text, styled
        self.emitted = False
        self.item_prefix = ""
        self.after_pre_tag = False

    # -- output ------------------------------------------------------------------

    def _style(self) -> Span:
        return self.stack[-1].style if self.stack else Span("")

    def _break(self, count: int) -> None:
        # Breaks are owed, not written, so trailing blocks leave no trailing newlines.
        if self.emitted:
            self._owe(max(self.newlines, count))

    def _owe(self, newlines: int) -> None:
        # A blank line between a quote and what follows belongs to neither: it takes the
        # shallowest quote depth seen while the break was pending.
        self.break_quote = min(self.break_quote, self.quote) if self.newlines else self.quote
        self.newlines = newlines
        self.space = None

    def _emit(self, text: str, style: Span) -> None:
        at_line_start = not self.emitted
        if self.newlines and self.emitted:
            quote_mark = ("> " * min(self.quote, self.break_quote)).rstrip()
            self.spans.append(Span("\n"))
            for _ in range(self.newlines - 1):
                self.spans.append(Span(quote_mark + "\n"))
            at_line_start = True
        self.newlines = 0
        if at_line_start:
            prefix = "> " * self.quote + self.item_prefix
            self.item_prefix = ""
            if prefix:
                self.spans.append(Span(prefix))
        elif self.space is not None:
            self.spans.append(self.space)
        self.space = None
        self.spans.append(style.with_text(text))
        self.emitted = True

    # -- parser callbacks ----------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value for name, value in attrs if value is not None}
        if tag in _VOID:
            if not self.skip:
                self._void(tag, attributes)
            return
        if len(self.stack) >= _MAX_DEPTH:
            return
        element = _Element(tag, self._style())
        self.stack.append(element)
        if self.skip or tag in _SKIP:
            element.skip = True
            self.skip += 1
            return
        style: dict[str, object] = dict(_STYLE_TAGS.get(tag, {}))
        if tag in ("font", "span"):
            color = parse_color(attributes.get("data-mx-color") or attributes.get("color"))
            if color is not None:
                style["color"] = color
        elif tag == "a":
            href = clean_link(attributes.get("href") or "")
            if href and not _USER_PILL.match(href):
                style["link"] = href
        if style:
            element.style = replace(element.style, **style)  # type: ignore[arg-type]
        if tag == "pre":
            element.pre = True
            self.pre += 1
            self.after_pre_tag = True
        if tag in _PARAGRAPH or (tag in ("ul", "ol") and not self.lists):
            self._break(2)
            element.block_after = 2
        elif tag in _LINE:
            self._break(1)
            element.block_after = 1
        if tag == "blockquote":
            element.quote = True
            self.quote += 1
        elif tag in ("ul", "ol"):
            element.list = True
            start = 1
            if tag == "ol":
                try:
                    start = int(attributes.get("start", "1"))
                except ValueError:
                    start = 1
            self.lists.append([tag == "ol", start])
            self._break(1)
        elif tag == "li":
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0]:
                self.item_prefix = f"{indent}{self.lists[-1][1]}. "
                self.lists[-1][1] += 1
            else:
                self.item_prefix = f"{indent}- "
        elif tag in ("td", "th") and self.emitted and not self.newlines:
            self.space = Span(" ")

    def _void(self, tag: str, attributes: dict[str, str]) -> None:
        if tag == "br":
            if self.emitted:
                self._owe(self.newlines + 1)
        elif tag == "img":
            # Custom emoji and inline images: their alt text stands in for them.
            alt = attributes.get("alt") or attributes.get("title")
            if alt:
                self.handle_data(alt)
        elif tag == "hr":
            self._break(1)
            self._emit("---", Span(""))
            self._break(1)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index].tag == tag:
                break
        else:
            return  # a stray end tag: ignore it, as browsers do
        while len(self.stack) > index:
            self._close(self.stack.pop())

    def _close(self, element: _Element) -> None:
        if element.skip:
            self.skip -= 1
            return
        if element.pre:
            self.pre -= 1
        if element.quote:
            self.quote -= 1
        if element.list:
            self.lists.pop()
        if element.block_after:
            self._break(element.block_after)
        if element.tag == "li":
            self.item_prefix = ""

    def handle_data(self, data: str) -> None:
        if self.skip or not data:
            return
        style = self._style()
        if self.pre:
            if self.after_pre_tag:
                data = data.removeprefix("\r\n").removeprefix("\n")
            self.after_pre_tag = False
            data = data.replace("\r\n", "\n").replace("\r", "\n")
            for index, line in enumerate(data.split("\n")):
                if index and self.emitted:
                    self._owe(self.newlines + 1)
                if line:
                    self._emit(line, style)
            return
        for piece in _WHITESPACE.split(data):
            if not piece:
                continue
            if piece[0] in " \t\n\r\f":
                if self.emitted and not self.newlines and self.space is None:
                    self.space = style.with_text(" ")
            else:
                self._emit(piece, style)


def from_html(html: str, kind: MessageKind = MessageKind.TEXT) -> RichText:
    """Convert Matrix HTML. The reply fallback (``<mx-reply>``) and scripts are dropped."""
    converter = _Converter()
    converter.feed(html)
    converter.close()
    return RichText(converter.spans, kind).merged()
