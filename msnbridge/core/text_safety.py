"""Text crossing the bridge carries no control characters: NUL, escape sequences and stray
CRs from one network must not reach the other (terminal clients interpret ESC codes;
some MSN clients cut a message at NUL). Tabs and line breaks stay."""

from __future__ import annotations

import re

from ..formatting import RichText

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls and DEL, but \t and \n


def without_controls(rich: RichText) -> RichText:
    if not any(_CONTROL.search(span.text) for span in rich.spans):
        return rich
    spans = [span.with_text(_CONTROL.sub("", span.text)) for span in rich.spans]
    return RichText([span for span in spans if span.text], rich.kind)
