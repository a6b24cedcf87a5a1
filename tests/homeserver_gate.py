"""An HTTP proxy between the bridge and Synapse that can hold the bridge's messages:
while closed, every `PUT …/send/m.room.message/…` waits (everything else passes), so a
test can kill the bridge while a message it took is still on its way to Matrix."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

# Hop-by-hop headers and those aiohttp sets itself.
_SKIP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


class HomeserverGate:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.held = 0  # message sends waiting at the gate now
        self.held_total = 0
        self._open = asyncio.Event()
        self._open.set()
        self._dropped = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._http = aiohttp.ClientSession(auto_decompress=True)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.drop_held()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def close(self) -> None:
        """Hold message sends from now on."""
        self._open.clear()
        self._dropped = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    def drop_held(self) -> None:
        """Answer the sends held so far with 502, never passing them on (their sender was
        killed: a real homeserver would never have seen them)."""
        self._dropped.set()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.method == "PUT" and "/send/m.room.message/" in request.path:
            if not self._open.is_set():
                dropped = self._dropped
                self.held += 1
                self.held_total += 1
                try:
                    opened = asyncio.ensure_future(self._open.wait())
                    dropping = asyncio.ensure_future(dropped.wait())
                    await asyncio.wait([opened, dropping], return_when=asyncio.FIRST_COMPLETED)
                    opened.cancel()
                    dropping.cancel()
                finally:
                    self.held -= 1
                if dropped.is_set():
                    return web.Response(status=502, text="dropped at the gate")
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
        async with self._http.request(
            request.method,
            self.upstream + request.raw_path,  # as sent: ids stay encoded
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        ) as upstream:
            data = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP}
            return web.Response(status=upstream.status, body=data, headers=out)
