"""The IoT Hub emulator in one asyncio process: its endpoints, timers and controls (start, ports, stop)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from localcloud.certs import CertPaths
from localcloud.emulator.admin_api import build_admin_app
from localcloud.emulator.faults import Faults
from localcloud.emulator.listeners import Listeners
from localcloud.emulator.ticker import Ticker

from .admin import hub_admin_routes
from .amqp_links import amqp_endpoint
from .channel import WebSocketChannel
from .config import HubConfig
from .connect_proxy import ConnectProxy
from .http_api import build_device_app
from .hub import Hub
from .mqtt_server import MqttEndpoint


@dataclass
class BoundPorts:
    amqp: int = 0
    mqtt: int = 0
    https: int = 0
    admin: int = 0
    connect_proxy: int = 0


class IoTHubEmulator:
    service = "iothub"
    protocols = ("amqp", "mqtt")

    def __init__(self, config: HubConfig, certs: CertPaths) -> None:
        self.config = config
        self.certs = certs
        self.hub = Hub(config)
        self.amqp = amqp_endpoint(self.hub)
        self.mqtt = MqttEndpoint(self.hub)
        self.ports = BoundPorts()
        self._listeners = Listeners(config.bind_host)
        self._ticker = Ticker(self.hub.store.tick, lambda: self.hub.store.limits.tick_s)

    @property
    def faults(self) -> Faults:
        return self.hub.faults

    async def start(self) -> None:
        tls = self.certs.server_ssl_context()
        wanted = self.config.ports
        listen = self._listeners
        self.ports.amqp = await listen.protocol(self.amqp.protocol, wanted.amqp, tls)
        self.ports.mqtt = await listen.streams(self.mqtt.handle, wanted.mqtt, tls)
        device_app = build_device_app(self.hub, self._serve_amqp_over_websocket, self.mqtt.serve)
        self.ports.https = await listen.http(device_app, wanted.https, tls)
        self.ports.admin = await listen.http(build_admin_app(self, hub_admin_routes(self.hub)), wanted.admin, None)
        proxy = ConnectProxy(
            self.config.bind_host, {5671: self.ports.amqp, 8883: self.ports.mqtt, 443: self.ports.https}
        )
        self.ports.connect_proxy = await listen.streams(proxy.handle, wanted.connect_proxy, None)
        self._ticker.start()

    async def _serve_amqp_over_websocket(self, channel: WebSocketChannel) -> None:
        await self.amqp.serve(channel, "websocket")

    async def stop(self) -> None:
        await self._ticker.stop()
        await self._listeners.close(self.drop_connections)

    # ---- EmulatorControl --------------------------------------------------------------------
    def drop_connections(self, protocol: str = "all") -> int:
        """Abort open AMQP and/or MQTT connections (protocol: all | amqp | mqtt)."""
        dropped = 0
        if protocol in ("all", "amqp"):
            dropped += self.amqp.drop_connections()
        if protocol in ("all", "mqtt"):
            dropped += self.mqtt.drop_connections()
        return dropped

    def limits(self) -> dict[str, Any]:
        return dataclasses.asdict(self.hub.store.limits)

    def set_limits(self, overrides: dict[str, Any]) -> dict[str, Any]:
        store = self.hub.store
        store.limits = dataclasses.replace(store.limits, **overrides)
        self.amqp.check_tokens()
        return self.limits()

    def reset(self) -> None:
        self.hub.store.reset()
        self.hub.faults.clear()
        self.amqp.reset_stats()
        self.amqp.check_tokens()

    def state(self) -> dict[str, Any]:
        return {**self.hub.store.snapshot(), "amqp": self.amqp.snapshot()}

    # ---- ServedEmulator ---------------------------------------------------------------------
    def bound_ports(self) -> dict[str, int]:
        return dataclasses.asdict(self.ports)

    def connection_string(self) -> str:
        return self.config.service_connection_string(self.config.policies[0].name)

    def banner(self) -> list[str]:
        cfg, ports = self.config, self.ports
        lines = [
            f"IoT Hub emulator '{cfg.hub_name}' on {cfg.bind_host}: AMQPS {ports.amqp}, MQTTS {ports.mqtt}, "
            f"HTTPS {ports.https}, admin http://{cfg.bind_host}:{ports.admin}/admin/state, "
            f"CONNECT proxy {ports.connect_proxy}",
            f"service: {self.connection_string()}",
            *(f"device:  {cfg.device_connection_string(d.device_id, d.primary_key)}" for d in cfg.devices),
            self.certs.ssl_cert_file_hint(),
        ]
        if ports.amqp != 5671:
            lines.append(f"non-default AMQP port: set uamqp.constants.DEFAULT_AMQPS_PORT = {ports.amqp} (see README)")
        return lines
