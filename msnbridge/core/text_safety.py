"""Text crossing the bridge carries no control characters: NUL, escape sequences and stray
CRs from one network must not reach the other (terminal clients interpret ESC codes;
some MSN clients cut a message at NUL). Tabs and line breaks stay in messages.

A name (a relayed sender's display name, an MSN nick, a ghost's name) is one line
wherever it goes — MSN text and headers (P4-Context), IRC nicks and relay prefixes,
Matrix display names — so it cannot fake a line of its own (``<Relay\\nP4-Context: …``).
"""

from __future__ import annotations

import re

from ..formatting import RichText

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls and DEL, but \t and \n
# Everything that breaks or hides a line: C0 and C1 controls (with NEL, U+0085), DEL, the
# Unicode line and paragraph separators; other Unicode spaces are folded by split().
_NOT_IN_A_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def without_controls(rich: RichText) -> RichText:
    if not any(_CONTROL.search(span.text) for span in rich.spans):
        return rich
    spans = [span.with_text(_CONTROL.sub("", span.text)) for span in rich.spans]
    return RichText([span for span in spans if span.text], rich.kind)


def one_line(name: str) -> str:
    """``name`` as one line: line breaks, separators and other controls become spaces,
    runs of whitespace one space, none at either end."""
    return " ".join(_NOT_IN_A_NAME.sub(" ", name).split())
