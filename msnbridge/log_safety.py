"""Tokens never reach the log: the homeserver may send the hs_token as ``?access_token=``,
and aiohttp's access log writes each request line whole. A filter on that logger
replaces the value of every token-carrying query parameter (and the same in the
record's ``extra`` fields, which formatters may print) before any handler sees it."""

from __future__ import annotations

import logging
import re
from typing import Any

_TOKEN_PARAM = re.compile(r"((?:access_token|hs_token|as_token|token)=)[^&\s\"']+", re.I)
REDACTED = "<redacted>"
ACCESS_LOGGER = "aiohttp.access"


def redact(text: str) -> str:
    return _TOKEN_PARAM.sub(rf"\1{REDACTED}", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    return value


class TokenQueryFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _scrub(record.msg)
        if record.args:
            record.args = _scrub(record.args)
        for key, value in list(vars(record).items()):
            if key not in ("msg", "args") and isinstance(value, str | dict):
                setattr(record, key, _scrub(value))
        return True


def install() -> None:
    """Once per process: the access logger gets the filter (kept across dictConfig)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, TokenQueryFilter) for f in logger.filters):
        logger.addFilter(TokenQueryFilter())
