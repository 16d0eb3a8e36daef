"""A reverse proxy in front of Azurite's table service that can hold back writes: a fault the tests need
(a FeedbackProcessor run that has published its outcomes but not yet recorded them) and Azurite cannot
produce. Reads (GET) always pass; while `hold_writes` is set, every other request waits at the proxy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


@dataclass
class StorageProxy:
    target: str  # e.g. http://127.0.0.1:10002
    port: int = 0
    held: int = 0
    dropped: int = 0
    _release: asyncio.Event | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def hold_writes(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._new_gate)

    def release_writes(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._open_gate)

    def _new_gate(self) -> None:
        self._release = asyncio.Event()

    def _open_gate(self) -> None:
        if self._release is not None:
            self._release.set()
        self._release = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET" and self._release is not None:
            self.held += 1
            await self._release.wait()
            if request.transport is None or request.transport.is_closing():
                # Its sender is gone (the worker was killed): like a request that never reached storage.
                self.dropped += 1
                return web.Response(status=503)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        url = URL(self.target + request.raw_path, encoded=True)  # byte for byte: the path is signed
        async with aiohttp.ClientSession() as session, session.request(
            request.method, url, headers=headers, data=body or None, skip_auto_headers=("Content-Type",)
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, headers=out, body=payload)


@contextmanager
def storage_proxy(target: str) -> Iterator[StorageProxy]:
    """Run the proxy on a free loopback port in a thread of its own."""
    proxy = StorageProxy(target)
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        proxy._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", proxy._forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        proxy.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        proxy._open_gate()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield proxy
    finally:
        assert proxy._loop is not None
        proxy._loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
