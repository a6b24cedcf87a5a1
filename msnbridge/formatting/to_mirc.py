"""RichText → mIRC-formatted IRC text.

Formatting on IRC ends with the line, so every line re-opens the styles it continues;
the caller may split the result at "\\n" and send each line on its own.
"""

from __future__ import annotations

import re
import string

from .from_mirc import BOLD, COLOR, HEX_COLOR, ITALIC, MONOSPACE, STRIKE, UNDERLINE
from .mirc_colors import nearest
from .model import RichText, Span
from .to_msn import inline_link

__all__ = ["to_mirc", "to_mirc_lines"]

_TOGGLES = (("bold", BOLD), ("italic", ITALIC), ("underline", UNDERLINE), ("strike", STRIKE))
_TOGGLES += (("code", MONOSPACE),)
# Control characters in the text would act as codes (or CTCP, or end the line): drop them.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# After a colour code, text starting with these would be read as part of the code.
_AMBIGUOUS = frozenset(string.digits + ",")
_AMBIGUOUS_HEX = frozenset(string.hexdigits + ",")
_GUARD = BOLD + BOLD  # two toggles that cancel out and end the colour code


def _color_code(color: int | None, previous: int | None, hex_colors: bool) -> str:
    if color is None:
        return HEX_COLOR if hex_colors and previous is not None else COLOR
    if hex_colors:
        return f"{HEX_COLOR}{color & 0xFFFFFF:06X}"
    return f"{COLOR}{nearest(color):02d}"


def _line(spans: list[Span], hex_colors: bool) -> str:
    out: list[str] = []
    state = Span("")
    for span in spans:
        text = _CONTROL.sub("", inline_link(span))
        if not text:
            continue
        for name, code in _TOGGLES:
            if getattr(span, name) != getattr(state, name):
                out.append(code)
        color_code = ""
        if span.color != state.color:
            color_code = _color_code(span.color, state.color, hex_colors)
            if not hex_colors and span.color is not None and state.color is not None:
                if nearest(span.color) == nearest(state.color):
                    color_code = ""  # two colours, one mIRC colour: nothing to say
            out.append(color_code)
        if color_code:
            ambiguous = _AMBIGUOUS_HEX if color_code == HEX_COLOR else _AMBIGUOUS
            if text[0] in ambiguous:
                out.append(_GUARD)
        out.append(text)
        state = span
    return "".join(out)


def to_mirc_lines(rich: RichText, *, hex_colors: bool = False) -> list[str]:
    """One formatted string per line of ``rich``; none contains CR, LF or NUL.

    Colours go to the nearest of the 16 classic mIRC colours, or exactly as ``\\x04RRGGBB``
    when ``hex_colors`` says the audience's clients understand it.
    """
    return [_line(line.spans, hex_colors) for line in rich.merged().lines()]


def to_mirc(rich: RichText, *, hex_colors: bool = False) -> str:
    """The lines of :func:`to_mirc_lines` joined by "\\n"."""
    return "\n".join(to_mirc_lines(rich, hex_colors=hex_colors))
