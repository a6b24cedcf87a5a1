"""Small helpers for the bot's sentences: counts with the right plural."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``plural(1, "contact")`` → "1 contact"; ``plural(2, "contact")`` → "2 contacts"."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count} {word}"
