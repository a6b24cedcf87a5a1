"""Outage notices: an owner whose MSN session is reconnecting hears about it.

The puppet session retries on its own (backing off); the owner is told once when it has
been down longer than ``msn.outage_notice_after`` seconds, and once when it is back (only
if they were told it was down). A short blip (a server restart) stays quiet. ``status``
reads the next retry time from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from puppets import SessionState
from puppets.event.session import SessionStateChanged

from .wording import plural

Emit = Callable[[str, object], None]  # (owner, event): Sessions forwards it to the router


@dataclass(frozen=True, slots=True)
class ConnectionNotice:
    """To tell the owner (the bot's room / an IRC notice): their session is down or back."""

    text: str
    back: bool


@dataclass
class _Outage:
    since: float  # wall clock, when the link was lost
    retry_at: float | None = None  # wall clock of the next attempt, while backing off
    reason: str | None = None
    told: bool = False
    timer: asyncio.TimerHandle | None = None


def clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")


class OutageWatch:
    def __init__(self, notice_after: float, emit: Emit) -> None:
        self.notice_after = notice_after
        self._emit = emit
        self._outages: dict[str, _Outage] = {}

    def retry_at(self, owner: str) -> float | None:
        outage = self._outages.get(owner)
        return outage.retry_at if outage is not None else None

    def down_since(self, owner: str) -> float | None:
        outage = self._outages.get(owner)
        return outage.since if outage is not None else None

    def forget(self, owner: str) -> None:
        """The session is gone (logout, failed login): no notice about it any more."""
        outage = self._outages.pop(owner, None)
        if outage is not None and outage.timer is not None:
            outage.timer.cancel()

    def observe(self, owner: str, event: SessionStateChanged) -> None:
        state = event.state
        outage = self._outages.get(owner)
        if state is SessionState.BACKING_OFF:
            now = time.time()
            if outage is None:
                outage = self._outages[owner] = _Outage(since=now)
                outage.timer = asyncio.get_running_loop().call_later(
                    self.notice_after, self._down_long, owner, outage
                )
            outage.reason = event.reason
            outage.retry_at = now + event.retry_in if event.retry_in is not None else None
        elif state is SessionState.CONNECTING:
            if outage is not None:
                outage.retry_at = None  # trying right now
        elif state is SessionState.ONLINE:
            if outage is not None:
                self.forget(owner)
                if outage.told:
                    down = round(time.time() - outage.since)
                    self._emit(
                        owner,
                        ConnectionNotice(
                            f"Your MSN connection is back (it was down for "
                            f"{plural(down, 'second')}).",
                            back=True,
                        ),
                    )
        elif state is SessionState.STOPPED:
            self.forget(owner)  # a stop is told by its own notice (or was asked for)

    def _down_long(self, owner: str, outage: _Outage) -> None:
        if self._outages.get(owner) is not outage:
            return
        outage.told = True
        outage.timer = None
        down = round(time.time() - outage.since)
        why = f" ({outage.reason})" if outage.reason else ""
        retry = (
            f" Next try at {clock_time(outage.retry_at)}."
            if outage.retry_at is not None and outage.retry_at > time.time()
            else ""
        )
        with contextlib.suppress(Exception):
            self._emit(
                owner,
                ConnectionNotice(
                    f"Your MSN connection is down{why} for {plural(down, 'second')} now; the "
                    f"bridge keeps reconnecting and will tell you when it is back.{retry} "
                    f"Messages sent meanwhile wait for it or are reported as not delivered.",
                    back=False,
                ),
            )
