"""The Service Bus emulator as a Python object: AMQP (and optionally AMQPS) listeners, the admin API,
timers and controls. `await start()`; the bound ports are in `bound_ports()` afterwards."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.amqp.endpoint import AmqpEndpoint
from localcloud.amqp.sasl import Mechanism
from localcloud.amqp.service import AmqpService
from localcloud.amqp.tokens import ExpiryAction, TokenPolicy
from localcloud.certs import ensure_certs
from localcloud.emulator.admin_api import build_admin_app
from localcloud.emulator.faults import Faults
from localcloud.emulator.listeners import Listeners
from localcloud.emulator.ticker import Ticker
from localcloud.paths import STATE_DIR

from .admin import servicebus_admin_routes
from .config import NamespaceConfig, load_config
from .consumers import Consumers
from .links import ServiceBusLinks
from .namespace import Namespace
from .persistence import Journal
from .tokens import DEFAULT_KEY, DEFAULT_KEY_NAME, NamespaceKeys

log = logging.getLogger(__name__)

CONTAINER_ID = "localcloud-servicebus"


@dataclass(frozen=True)
class Limits:
    """Run-time limits (`POST /admin/limits`); reset restores the configured ones."""

    enforce_token_expiry: bool = True  # detach links when the CBS token that authorised them expires
    max_token_lifetime_s: float | None = None  # treat every CBS token as expiring this long after put-token


@dataclass
class EmulatorSettings:
    host: str = "127.0.0.1"
    amqp_port: int = 5672  # 0 (for every port here): a free port
    amqps_port: int = -1  # AMQP over TLS with the local CA's localhost certificate; negative: off
    admin_port: int = 5673  # negative: no admin API
    key_name: str = DEFAULT_KEY_NAME
    key: str = field(default=DEFAULT_KEY, repr=False)
    config: NamespaceConfig = field(default_factory=load_config)
    tick_interval: float = 0.05
    data_file: Path | None = None  # SQLite file for persistence; None keeps everything in memory
    state_dir: Path = STATE_DIR  # where the local CA and certificate live (AMQPS)
    limits: Limits = field(default_factory=Limits)


class ServiceBusEmulator:
    service = "servicebus"
    protocols = ("amqp",)

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = Faults()
        self.current_limits = settings.limits
        self.journal = Journal(settings.data_file) if settings.data_file is not None else None
        clock = time.time
        consumers = Consumers(clock, commit=lambda: namespace.commit())
        namespace = Namespace(settings.config, on_available=consumers.notify_available, journal=self.journal)
        self.links = ServiceBusLinks(namespace, consumers, clock)
        keys = NamespaceKeys(settings.key_name, settings.key)
        service = AmqpService(
            container_id=CONTAINER_ID,
            sasl_mechanisms=(Mechanism.MSSBCBS, Mechanism.PLAIN, Mechanism.ANONYMOUS),
            links=self.links,
            tokens=keys,
            expiry_action=ExpiryAction.DETACH_LINKS,
            management=self.links,
            plain=keys.sasl_plain,
        )
        self.amqp = AmqpEndpoint(service, self.faults, self._token_policy, clock)
        self.amqp_port = 0
        self.amqps_port = 0
        self.admin_port = 0
        self._listeners = Listeners(settings.host)
        self._ticker = Ticker(self._tick, lambda: settings.tick_interval)

    def _token_policy(self) -> TokenPolicy:
        return TokenPolicy(self.current_limits.enforce_token_expiry, self.current_limits.max_token_lifetime_s)

    @property
    def namespace(self) -> Namespace:
        return self.links.namespace

    def connection_string(self, host: str = "localhost") -> str:
        """Plain AMQP on `amqp_port` (`UseDevelopmentEmulator=true`, which the SDK reads as "no TLS, keep the port")."""
        return (
            f"Endpoint=sb://{host}:{self.amqp_port};SharedAccessKeyName={self.settings.key_name};"
            f"SharedAccessKey={self.settings.key};UseDevelopmentEmulator=true"
        )

    def tls_connection_string(self, host: str = "localhost") -> str:
        """AMQPS: the SDK drops the port of such a string; pass `custom_endpoint_address` (see the README)."""
        return f"Endpoint=sb://{host}/;SharedAccessKeyName={self.settings.key_name};SharedAccessKey={self.settings.key}"

    async def start(self) -> None:
        settings = self.settings
        listen = self._listeners
        self.amqp_port = await listen.protocol(self.amqp.protocol, settings.amqp_port, None)
        if settings.amqps_port >= 0:
            tls = ensure_certs(settings.state_dir).server_ssl_context()
            self.amqps_port = await listen.protocol(self.amqp.protocol, settings.amqps_port, tls)
        if settings.admin_port >= 0:
            app = build_admin_app(self, servicebus_admin_routes(self.namespace))
            self.admin_port = await listen.http(app, settings.admin_port, None)
        self._ticker.start()
        log.info("Service Bus emulator listening: %s", self.bound_ports())

    def _tick(self) -> None:
        """Lock expiry, TTL and scheduled messages; then deliver what became available."""
        self.namespace.tick(time.time())
        self.links.consumers.pump_if_dirty()
        self.namespace.commit()

    async def stop(self) -> None:
        await self._ticker.stop()
        await self._listeners.close(self.drop_connections)
        if self.journal is not None:
            self.journal.close()

    # ---- EmulatorControl (also the Python API) ----------------------------------------------
    def drop_connections(self, protocol: str = "all") -> int:
        """Abort every open AMQP socket (clients see a connection reset)."""
        return self.amqp.drop_connections()

    def refuse_connections(self, seconds: float) -> None:
        """Drop new AMQP sockets right after accepting them for `seconds` (open ones stay)."""
        self.faults.refuse_for(seconds)

    def limits(self) -> dict[str, Any]:
        return dataclasses.asdict(self.current_limits)

    def set_limits(self, overrides: dict[str, Any]) -> dict[str, Any]:
        self.current_limits = dataclasses.replace(self.current_limits, **overrides)
        self.amqp.check_tokens()
        return self.limits()

    def reset(self) -> None:
        self.namespace.reset()
        self.faults.clear()
        self.current_limits = self.settings.limits
        self.amqp.reset_stats()
        self.amqp.check_tokens()

    def state(self) -> dict[str, Any]:
        return {**self.namespace.snapshot(), "amqp": self.amqp.snapshot()}

    # ---- ServedEmulator ---------------------------------------------------------------------
    def bound_ports(self) -> dict[str, int]:
        ports = {"amqp": self.amqp_port}
        if self.settings.amqps_port >= 0:
            ports["amqps"] = self.amqps_port
        if self.settings.admin_port >= 0:
            ports["admin"] = self.admin_port
        return ports

    def banner(self) -> list[str]:
        host = self.settings.host
        lines = [f"Service Bus emulator '{self.namespace.name}' on {host}: {self.bound_ports()}"]
        lines.append(f"AMQP:  {self.connection_string()}")
        if self.settings.amqps_port >= 0:
            lines.append(f"AMQPS: port {self.amqps_port}: custom_endpoint_address=sb://localhost:{self.amqps_port} and")
            lines.append(f"       {self.tls_connection_string()}")
        if self.settings.admin_port >= 0:
            lines.append(f"admin: http://{host}:{self.admin_port}/admin/state")
        return lines
