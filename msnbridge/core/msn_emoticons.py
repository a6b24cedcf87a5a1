"""Custom emoticons from MSN: the objects a contact announces before a message are fetched
(through the shared picture cache), handed to the sides that show images (Matrix uploads
each once, by SHA1D), and attached to the contact's next message as (shortcut, mxc) pairs.

Events of an owner are handled in order, so the message waits for its emoticons, but no
longer than ``FETCH_TIMEOUT``: a contact whose emoticons cannot be fetched still gets
their text through, with the shortcuts as typed.
"""

from __future__ import annotations

import logging
import re
from html import escape
from typing import TYPE_CHECKING

from puppets.event.conversation import EmoticonsAnnounced

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger("msnbridge.router.emoticons")

FETCH_TIMEOUT = 10.0
MAX_PER_MESSAGE = 16


class MsnEmoticons:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._pending: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}

    def _uploader(self):  # type: ignore[no-untyped-def]
        return next((s for s in self.router.sides if hasattr(s, "emoticon_url")), None)

    async def announced(self, owner: str, event: EmoticonsAnnounced) -> None:
        side = self._uploader()
        client = self.router.sessions.get(owner)
        if side is None or client is None or not owner.startswith("@"):
            return
        sender = event.sender.lower()
        found: list[tuple[str, str]] = []
        for shortcut, obj in event.emoticons[:MAX_PER_MESSAGE]:
            try:
                data = await client.p2p.manager.fetch_object(sender, obj, FETCH_TIMEOUT)
                url = await side.emoticon_url(obj.sha1d, data, shortcut)
            except Exception as e:  # a missing emoticon is shown as its shortcut
                log.info("Emoticon %r from %s not fetched: %s", shortcut, sender, e)
                continue
            found.append((shortcut, url))
        if found:
            self._pending[(owner, sender)] = tuple(found)

    def take(self, owner: str, sender: str) -> tuple[tuple[str, str], ...]:
        """The emoticons announced for ``sender``'s next message (once)."""
        return self._pending.pop((owner, sender.lower()), ())


def emoticons_in_html(html: str, emoticons: tuple[tuple[str, str], ...]) -> str:
    """``html`` with each shortcut in its text (never inside a tag) as an inline image."""
    if not emoticons:
        return html
    # Longest shortcuts first, so ":cat:" is not cut by a ":c" one.
    ordered = sorted(emoticons, key=lambda pair: -len(pair[0]))
    pattern = re.compile("|".join(re.escape(escape(s, quote=False)) for s, _ in ordered))
    urls = {escape(s, quote=False): (s, url) for s, url in ordered}

    def image(match: re.Match[str]) -> str:
        shortcut, url = urls[match.group(0)]
        alt = escape(shortcut, quote=True)
        return (
            f'<img data-mx-emoticon src="{escape(url, quote=True)}" alt="{alt}" '
            f'title="{alt}" height="32">'
        )

    parts = re.split(r"(<[^>]*>)", html)
    return "".join(p if p.startswith("<") else pattern.sub(image, p) for p in parts)
