"""Wires the endpoints together in one asyncio process: start(), ports, stop()."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..certs import CertPaths
from .admin import build_admin_app
from .amqp_server import AmqpEndpoint
from .config import HubConfig
from .connect_proxy import ConnectProxy
from .http_api import build_device_app
from .hub import Hub
from .mqtt_server import MqttEndpoint

log = logging.getLogger(__name__)

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class BoundPorts:
    amqp: int = 0
    mqtt: int = 0
    https: int = 0
    admin: int = 0
    connect_proxy: int = 0


@dataclass
class Emulator:
    config: HubConfig
    certs: CertPaths
    hub: Hub = field(init=False)
    ports: BoundPorts = field(default_factory=BoundPorts)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _ticker: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.hub = Hub(self.config)
        self.amqp = AmqpEndpoint(self.hub)
        self.mqtt = MqttEndpoint(self.hub)

    async def _listen(self, handler: StreamHandler, port: int, tls: ssl.SSLContext | None) -> int:
        server = await asyncio.start_server(handler, self.config.bind_host, port, ssl=tls, backlog=512)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _serve_app(self, app: web.Application, port: int, tls: ssl.SSLContext | None) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.config.bind_host, port, ssl_context=tls, backlog=512)
        await site.start()
        return runner.addresses[-1][1]

    async def start(self) -> None:
        tls = self.certs.server_ssl_context()
        p = self.config.ports
        self.ports.amqp = await self._listen(self.amqp.handle, p.amqp, tls)
        self.ports.mqtt = await self._listen(self.mqtt.handle, p.mqtt, tls)
        self.ports.https = await self._serve_app(build_device_app(self.hub, self.amqp, self.mqtt), p.https, tls)
        self.ports.admin = await self._serve_app(build_admin_app(self), p.admin, None)
        proxy = ConnectProxy(
            self.config.bind_host, {5671: self.ports.amqp, 8883: self.ports.mqtt, 443: self.ports.https}
        )
        self.ports.connect_proxy = await self._listen(proxy.handle, p.connect_proxy, None)
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.limits.tick_s)
            try:
                self.hub.store.tick()
            except Exception:  # keep the timers alive, but never silently
                log.exception("store tick failed")

    def drop_connections(self, protocol: str = "all") -> int:
        """Abort open AMQP and/or MQTT connections (protocol: all | amqp | mqtt)."""
        dropped = 0
        if protocol in ("all", "amqp"):
            dropped += self.amqp.drop_connections()
        if protocol in ("all", "mqtt"):
            dropped += self.mqtt.drop_connections()
        return dropped

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for server in self._servers:
            server.close()
        self.drop_connections()
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)
        for runner in self._runners:
            await runner.cleanup()
