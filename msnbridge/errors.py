"""Errors the daemon reports to the operator as one line, without a traceback."""

from __future__ import annotations


class StartupError(Exception):
    """The bridge cannot start; the message says what to check."""
