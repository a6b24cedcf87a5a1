"""Which event loop the daemon runs on: uvloop when it is installed (the `uvloop` extra),
asyncio's own otherwise. MSNBRIDGE_EVENT_LOOP=asyncio keeps asyncio's loop even then;
MSNBRIDGE_EVENT_LOOP=uvloop insists on uvloop (an error if it is missing).

uvloop carries the same MSNP traffic for about 0.6x the CPU (benchmarks/event_loop.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import StartupError

T = TypeVar("T")
CHOICES = ("auto", "asyncio", "uvloop")


def chosen() -> str:
    """'uvloop' or 'asyncio', as MSNBRIDGE_EVENT_LOOP and what is installed decide."""
    choice = os.environ.get("MSNBRIDGE_EVENT_LOOP", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise StartupError(
            f"MSNBRIDGE_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {choice!r}"
        )
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise StartupError(
                "MSNBRIDGE_EVENT_LOOP=uvloop but uvloop is not installed "
                "(pip install 'msnbridge[uvloop]')"
            ) from None
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        loop = chosen()
    except StartupError:
        main.close()
        raise
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
