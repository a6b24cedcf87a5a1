"""Rate-limited logging: a condition that repeats (a flood of stranger presence, puppets
over a connection cap) is logged once per burst, not once per occurrence.

The first occurrence of a key is logged at once; later ones within ``interval`` seconds
are only counted, and the next line logged for that key says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Hashable

MAX_KEYS = 1024  # keys remembered; the least recently logged one is forgotten first


class ThrottledLog:
    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, level: int = logging.INFO
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        # key → (when it was last logged, occurrences left out since)
        self._seen: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def log(self, key: Hashable, msg: str, *args: object) -> bool:
        """Logs ``msg % args`` unless ``key`` was logged less than ``interval`` ago;
        True when it was logged."""
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            msg += " (%d more like this in the last %.0f s not logged)"
            args = (*args, last[1], now - last[0])
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_KEYS:
            self._seen.popitem(last=False)
        self.logger.log(self.level, msg, *args)
        return True

    def suppressed(self, key: Hashable) -> int:
        """Occurrences of ``key`` counted but not logged since its last line."""
        last = self._seen.get(key)
        return last[1] if last is not None else 0
