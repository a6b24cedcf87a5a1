"""The intermediate form every converter reads or writes: styled spans of text.

MSN formats whole messages, Matrix and IRC format runs of text; converting through one
shared form keeps each converter to one reader or one writer.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

__all__ = ["STYLE_FIELDS", "MessageKind", "RichText", "Span", "clean_link"]

# What a browser's URL parser drops before reading a link (WHATWG URL: tab and newline
# anywhere, C0 controls and spaces at either end); "java\nscript:" is "javascript:".
_URL_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_URL_EDGE = "".join(map(chr, range(0x21)))


def clean_link(link: str) -> str:
    """``link`` as a browser would read it, so no newline reaches an href or link text."""
    return _URL_TAB_OR_NEWLINE.sub("", link).strip(_URL_EDGE)


class MessageKind(enum.Enum):
    TEXT = "text"
    EMOTE = "emote"  # Matrix m.emote, IRC CTCP ACTION
    NOTICE = "notice"  # Matrix m.notice, IRC NOTICE


@dataclass(frozen=True)
class Span:
    """A run of text with one style. ``color`` is 0xRRGGBB; None means the default colour."""

    text: str
    bold: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    color: int | None = None
    code: bool = False
    link: str | None = None

    def style(self) -> tuple[object, ...]:
        """Every attribute but the text, to compare styles."""
        return tuple(getattr(self, name) for name in STYLE_FIELDS)

    def with_text(self, text: str) -> Span:
        return replace(self, text=text)

    @property
    def plain_style(self) -> bool:
        return self.style() == _PLAIN


STYLE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Span) if f.name != "text")
_EMPTY = Span("")
_PLAIN = _EMPTY.style()


def _merge(spans: Iterable[Span]) -> list[Span]:
    # Collect runs first and join once: repeated concatenation is quadratic on long input.
    runs: list[tuple[Span, list[str]]] = []
    for span in spans:
        if not span.text:
            continue
        if runs and runs[-1][0].style() == span.style():
            runs[-1][1].append(span.text)
        else:
            runs.append((span, [span.text]))
    return [span if len(texts) == 1 else span.with_text("".join(texts)) for span, texts in runs]


@dataclass(eq=False)
class RichText:
    """A message: spans in order plus its kind. Equality ignores how text is cut into spans."""

    spans: list[Span] = field(default_factory=list)
    kind: MessageKind = MessageKind.TEXT

    @classmethod
    def from_plain(cls, text: str, kind: MessageKind = MessageKind.TEXT) -> RichText:
        return cls([Span(text)] if text else [], kind)

    def plain(self) -> str:
        return "".join(span.text for span in self.spans)

    def merged(self) -> RichText:
        """A copy with empty spans dropped and neighbours of equal style joined."""
        return RichText(_merge(self.spans), self.kind)

    def is_plain(self) -> bool:
        """True when no span carries any style."""
        return all(span.plain_style for span in self.spans if span.text)

    def common_style(self) -> Span:
        """An empty span holding the style every visible (non-blank) span shares.

        Blank spans are ignored: the space between two bold words need not be bold for
        the whole line to read as bold.
        """
        visible = [span for span in self.spans if span.text.strip()]
        if not visible:
            return Span("")
        shared: dict[str, object] = {}
        for name in STYLE_FIELDS:
            values = {getattr(span, name) for span in visible}
            shared[name] = values.pop() if len(values) == 1 else getattr(_EMPTY, name)
        return Span("", **shared)  # type: ignore[arg-type]

    def lines(self) -> list[RichText]:
        """Split at "\\n" (the caller's line breaks); each line keeps its spans' styles."""
        result: list[RichText] = [RichText([], self.kind)]
        for span in self.spans:
            parts = span.text.split("\n")
            for index, part in enumerate(parts):
                if index:
                    result.append(RichText([], self.kind))
                if part:
                    result[-1].spans.append(span.with_text(part))
        return result

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RichText):
            return NotImplemented
        return self.kind == other.kind and _merge(self.spans) == _merge(other.spans)

    __hash__ = None  # type: ignore[assignment]  # mutable
