"""Tiny synchronous JSON-over-HTTP helper (the sandbox orchestrates with blocking calls)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class HTTPError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body

    @property
    def errcode(self) -> str | None:
        try:
            return json.loads(self.body).get("errcode")
        except (ValueError, AttributeError):
            return None


def request(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        raise HTTPError(e.code, e.read().decode(errors="replace")) from None
    return json.loads(text or "{}")


def get_status(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
