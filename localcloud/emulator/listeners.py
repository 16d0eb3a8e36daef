"""The sockets an emulator listens on: bound one by one (port 0 = a free port), closed together."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BACKLOG = 512


class Listeners:
    def __init__(self, host: str) -> None:
        self.host = host
        self._servers: list[asyncio.Server] = []
        self._runners: list[web.AppRunner] = []

    async def protocol(self, factory: Callable[[], asyncio.Protocol], port: int, tls: ssl.SSLContext | None) -> int:
        """An asyncio.Protocol per connection (the AMQP endpoints); returns the bound port."""
        server = await asyncio.get_running_loop().create_server(factory, self.host, port, ssl=tls, backlog=BACKLOG)
        return self._bound(server)

    async def streams(self, handler: StreamHandler, port: int, tls: ssl.SSLContext | None) -> int:
        """A coroutine per connection over asyncio streams (MQTT, the CONNECT proxy)."""
        server = await asyncio.start_server(handler, self.host, port, ssl=tls, backlog=BACKLOG)
        return self._bound(server)

    async def http(self, app: web.Application, port: int, tls: ssl.SSLContext | None) -> int:
        """An aiohttp application (HTTPS endpoints, the admin API)."""
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self.host, port, ssl_context=tls, backlog=BACKLOG).start()
        return int(runner.addresses[-1][1])

    def _bound(self, server: asyncio.Server) -> int:
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()

    async def close(self, drop_connections: Callable[[], object]) -> None:
        """Stop accepting, drop the open connections (`drop_connections`), wait for the servers, stop the apps."""
        self.stop_accepting()
        drop_connections()
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)
        for runner in self._runners:
            await runner.cleanup()
        self._servers.clear()
        self._runners.clear()
