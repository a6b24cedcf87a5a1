"""A cache of MSNObject data (display pictures, emoticons) by SHA1D.

One cache may serve many clients: a picture several owners' contacts share is fetched
once, and a fetch already under way is joined rather than repeated. With a directory
the data lives on disk (one file per SHA1D); without one, in memory up to a bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..msnobject import MSNObject

__all__ = ["PictureCache"]


class PictureCache:
    def __init__(self, directory: str | Path | None = None, max_memory: int = 16 << 20) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.max_memory = max_memory
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self.fetches = 0  # how many times data was actually fetched (for tests, metrics)

    def _path(self, sha1d: str) -> Path:
        assert self.directory is not None
        name = base64.b64decode(sha1d).hex()  # SHA1D is checked base64 of 20 bytes
        return self.directory / f"{name}.bin"

    def get(self, obj: MSNObject) -> bytes | None:
        data = self._memory.get(obj.sha1d)
        if data is None and self.directory is not None:
            with contextlib.suppress(OSError):
                data = self._path(obj.sha1d).read_bytes()
        if data is not None and not obj.matches(data):
            return None
        return data

    def put(self, obj: MSNObject, data: bytes) -> None:
        if not obj.matches(data):
            raise ValueError("the data does not match the MSNObject's SHA1D")
        if self.directory is not None:
            path = self._path(obj.sha1d)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            return
        if obj.sha1d in self._memory or len(data) > self.max_memory:
            return
        self._memory[obj.sha1d] = data
        self._used += len(data)
        while self._used > self.max_memory:
            _, old = self._memory.popitem(last=False)
            self._used -= len(old)

    async def get_or_fetch(self, obj: MSNObject, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached data, else the result of ``fetch()`` (one fetch per SHA1D at a time)."""
        cached = self.get(obj)
        if cached is not None:
            return cached
        running = self._inflight.get(obj.sha1d)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[obj.sha1d] = fut
        try:
            self.fetches += 1
            data = await fetch()
            self.put(obj, data)
            fut.set_result(data)
            return data
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: joiners re-raise it, nobody else needs to
            raise
        finally:
            self._inflight.pop(obj.sha1d, None)
