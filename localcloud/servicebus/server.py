"""The emulator as a Python object: AMQP listener, admin HTTP listener, timers, fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .admin import AdminApi
from .amqp_server import Broker
from .auth import DEFAULT_KEY, DEFAULT_KEY_NAME, SasValidator
from .broker import Namespace
from .config import NamespaceConfig, load_config
from .engine import EngineConnection
from .persistence import Journal
from .store import MessageStore

log = logging.getLogger(__name__)


@dataclass
class EmulatorSettings:
    host: str = "127.0.0.1"
    amqp_port: int = 5672
    admin_port: int = 5673  # negative disables the admin API; 0 (here and for amqp_port) picks a free port
    key_name: str = DEFAULT_KEY_NAME
    key: str = field(default=DEFAULT_KEY, repr=False)
    config: NamespaceConfig = field(default_factory=load_config)
    tick_interval: float = 0.05
    data_file: Path | None = None  # SQLite file for persistence; None keeps everything in memory


@dataclass
class Faults:
    """Connection-level fault injection."""

    refuse_until: float = 0.0

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until


class ServiceBusEmulator:
    """Start with `await start()`; `amqp_port`/`admin_port` hold the bound ports afterwards."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = Faults()
        self.journal = Journal(settings.data_file) if settings.data_file is not None else None
        self._broker: Broker | None = None  # restoring persisted messages notifies before it exists
        self.broker = self._broker = Broker(
            Namespace(settings.config, on_available=self._on_available, journal=self.journal),
            SasValidator(settings.key_name, settings.key),
            clock=time.time,
        )
        self.amqp_port = 0
        self.admin_port = 0
        self._server: asyncio.Server | None = None
        self._admin: AdminApi | None = None
        self._ticker: asyncio.Task[None] | None = None

    def _on_available(self, store: MessageStore) -> None:
        if self._broker is not None:
            self._broker.notify_available(store)

    @property
    def namespace(self) -> Namespace:
        return self.broker.namespace

    def connection_string(self, host: str = "localhost") -> str:
        return (
            f"Endpoint=sb://{host}:{self.amqp_port};SharedAccessKeyName={self.settings.key_name};"
            f"SharedAccessKey={self.settings.key};UseDevelopmentEmulator=true"
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.broker.bind_loop(loop)
        self._server = await loop.create_server(self._accept, self.settings.host, self.settings.amqp_port)
        self.amqp_port = self._server.sockets[0].getsockname()[1]
        if self.settings.admin_port >= 0:
            self._admin = AdminApi(self)
            self.admin_port = await self._admin.start(self.settings.host, self.settings.admin_port)
        self._ticker = loop.create_task(self._tick_forever())
        log.info(
            "Service Bus emulator: AMQP on %s:%d, admin on %d", self.settings.host, self.amqp_port, self.admin_port
        )

    def _accept(self) -> asyncio.Protocol:
        if self.faults.refusing():
            return _Refuser()
        conn = EngineConnection(self.broker, container_id="localcloud-servicebus")
        self.broker.connections.add(conn)
        return conn

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            try:
                self.broker.tick()
            except Exception:  # a timer bug must be visible but must not stop the broker
                log.exception("tick failed")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
            self.broker.drop_connections()
            await self._server.wait_closed()
        if self._admin is not None:
            await self._admin.stop()
        if self.journal is not None:
            self.journal.close()

    # -- faults (also exposed over the admin API) ---------------------------------------------
    def drop_connections(self) -> int:
        """Abort every open AMQP socket (clients see a connection reset)."""
        return self.broker.drop_connections()

    def refuse_connections(self, seconds: float) -> None:
        """Close new AMQP sockets right after accepting them for `seconds`; also drops open ones."""
        self.faults.refuse_until = time.monotonic() + seconds
        self.drop_connections()


class _Refuser(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()
