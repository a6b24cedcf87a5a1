"""How long MSN takes to refuse a wrong password, so that the bridge refusing one itself
(a stranger trying a passport bridged for someone else) takes as long. Answered at once,
the speed of the answer alone would tell the stranger that the passport is bridged."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import deque

# With nothing observed yet: about what a Passport round trip and a refusal take.
DEFAULT_REFUSAL_SECONDS = 1.0


class RefusalTiming:
    def __init__(self, keep: int = 32) -> None:
        self._refusals: deque[float] = deque(maxlen=keep)  # MSN's own "wrong password"
        self._logins: deque[float] = deque(maxlen=keep)  # successful logins, as a fallback

    def observe_refusal(self, seconds: float) -> None:
        self._refusals.append(seconds)

    def observe_login(self, seconds: float) -> None:
        self._logins.append(seconds)

    def typical(self) -> float:
        """The median refusal seen; else half a typical login (a refusal comes at the
        authentication step, before the contact list); else a default."""
        if self._refusals:
            return statistics.median(self._refusals)
        if self._logins:
            return statistics.median(self._logins) / 2
        return DEFAULT_REFUSAL_SECONDS

    async def wait_like_msn(self, started: float) -> None:
        """Sleeps until a refusal begun at ``started`` (time.monotonic()) has taken about
        as long as MSN's, with jitter as real round trips have."""
        target = self.typical() * random.uniform(0.9, 1.2)
        remaining = target - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
