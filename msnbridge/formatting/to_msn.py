"""RichText → MSN text and X-MMS-IM-Format.

MSN carries one format per message. A style is kept only when every visible span has it;
the rest becomes plain text, with readable markers for what MSN cannot say per word.
"""

from __future__ import annotations

from dataclasses import replace

from puppets.message import TextFormat

from .model import MessageKind, RichText, Span

__all__ = ["MARKERS", "as_emote_text", "inline_link", "to_msn"]

# Partial styles become the markers people type by hand; underline has no common one.
MARKERS: tuple[tuple[str, str], ...] = (("bold", "*"), ("italic", "_"), ("strike", "~"))


def inline_link(span: Span) -> str:
    """The span's text, followed by its target in parentheses when the text does not show it."""
    if not span.link:
        return span.text
    label = span.text.strip()
    target = span.link
    if not label or label in (target, target.removeprefix("mailto:")):
        # A bare URL or address: the text already shows the target.
        return span.text if label else target
    return f"{span.text} ({target})"


def _marked(spans: list[Span], shared: Span, markers: bool) -> str:
    """Concatenate span texts; wrap runs of a partial style in its marker."""
    pieces = [inline_link(span) for span in spans]
    text = "".join(pieces)
    if not markers:
        return text
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    for name, mark in MARKERS:
        if getattr(shared, name):
            continue  # carried by the message format instead
        pos = 0
        run_start: int | None = None
        for span, piece in zip(spans, pieces, strict=True):
            on = bool(getattr(span, name))
            if on and run_start is None:
                run_start = pos
            elif not on and run_start is not None:
                _add_run(text, run_start, pos, mark, opens, closes)
                run_start = None
            pos += len(piece)
        if run_start is not None:
            _add_run(text, run_start, pos, mark, opens, closes)
    if not opens:  # one style throughout (most messages): nothing to insert
        return text
    out: list[str] = []
    for index in range(len(text) + 1):
        # Close in reverse order of opening so markers nest when runs coincide.
        out.extend(reversed(closes.get(index, [])))
        out.extend(opens.get(index, []))
        if index < len(text):
            out.append(text[index])
    return "".join(out)


def _add_run(
    text: str,
    start: int,
    end: int,
    mark: str,
    opens: dict[int, list[str]],
    closes: dict[int, list[str]],
) -> None:
    # Markers hug the words: "*bold* text", never "*bold *text".
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        opens.setdefault(start, []).append(mark)
        closes.setdefault(end, []).append(mark)


def to_msn(
    rich: RichText, base: TextFormat | None = None, *, markers: bool = True
) -> tuple[str, TextFormat]:
    """Return the text and format to send. ``base`` supplies the font, charset and pitch.

    Links become ``text (url)``; code stays as it is; styles not shared by the whole
    message become ``*bold*``, ``_italic_``, ``~strike~`` (unless ``markers`` is False).
    """
    spans = rich.merged().spans
    shared = rich.common_style()
    text = _marked(spans, shared, markers)
    fmt = replace(
        base or TextFormat(),
        bold=shared.bold,
        italic=shared.italic,
        underline=shared.underline,
        strike=shared.strike,
        color=shared.color or 0,
    )
    return text, fmt


def as_emote_text(rich: RichText, name: str) -> RichText:
    """``* name waves`` as a plain text message, for an emote sent to MSN (which has none).

    The prefix takes the style the whole message shares, so an all-bold emote stays
    one bold MSN message.
    """
    shared = rich.common_style()
    prefix = replace(shared, text=f"* {name} ", code=False, link=None)
    return RichText([prefix, *rich.spans], MessageKind.TEXT)
