"""Lines of an allowed IRC user without an MSN login, on their way to MSN.

Such a user is relayed through the owner's session as ``<nick> text``; lines they send
in quick succession (``irc.relay.merge_seconds``) are merged into one MSN message, one
line each, an action as ``* nick text``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ..formatting import MessageKind, RichText, Span, from_mirc

Held = list[tuple[str, MessageKind]]  # (mIRC text, kind) in the order sent
Key = tuple[str, str]  # (lower channel name, lower nick)


def merged_text(nick: str, held: Held) -> RichText:
    """The held lines as one MSN message."""
    spans: list[Span] = []
    for i, (text, kind) in enumerate(held):
        if i:
            spans.append(Span("\n"))
        if kind is MessageKind.EMOTE:
            spans.append(Span("* " + nick + " "))
        spans.extend(from_mirc(text, kind).spans)
    return RichText([s for s in spans if s.text], MessageKind.TEXT)


class LineMerger:
    """Holds each (channel, nick)'s lines for ``delay`` seconds from the first, then
    hands them to ``send(channel_key, nick, held)`` (run through ``spawn``)."""

    def __init__(
        self,
        delay: float,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        send: Callable[[str, str, Held], Coroutine[Any, Any, None]],
    ) -> None:
        self.delay = delay
        self._spawn = spawn
        self._send = send
        self._held: dict[Key, Held] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def add(self, channel_name: str, nick: str, text: str, kind: MessageKind) -> None:
        key = (channel_name.lower(), nick.lower())
        self._held.setdefault(key, []).append((text, kind))
        if key not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(
                self.delay, lambda: self._spawn(self._flush(key, nick))
            )

    async def _flush(self, key: Key, nick: str) -> None:
        self._timers.pop(key, None)
        held = self._held.pop(key, [])
        if held:
            await self._send(key[0], nick, held)

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
