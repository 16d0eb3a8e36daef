"""The end-to-end tests against a deployed app (or `func start`) and real services, instead of the local
cloud. Set C2D_E2E_FUNCTIONS_URL to switch; see the README's "Running the end-to-end tests elsewhere".

Tests that need an emulator's admin hooks (clock, dropped connections, throttling, hub state) skip here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from localcloud.stack import post_json

REQUIRED = (
    "C2D_E2E_FUNCTIONS_URL",
    "C2D_E2E_FUNCTION_KEY",
    "C2D_E2E_IOTHUB_CONNECTION_STRING",
    "C2D_E2E_SERVICEBUS_CONNECTION",
    "C2D_E2E_STORAGE_CONNECTION",
)


def external_target_requested() -> bool:
    return bool(os.environ.get("C2D_E2E_FUNCTIONS_URL"))


@dataclass
class _Ports:
    https: int


@dataclass
class ExternalHub:
    """An IoT hub reached through its public APIs: devices are registered for the run and deleted after."""

    registry_connection_string: str
    mqtt_proxy: str | None = None
    admin: Any = None  # no fault injection on a real hub
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def hostname_with_port(self) -> str:
        parts = dict(p.split("=", 1) for p in self.registry_connection_string.split(";") if "=" in p)
        return parts["HostName"]

    @property
    def hostname(self) -> str:
        return self.hostname_with_port.split(":")[0]

    @property
    def ports(self) -> _Ports:
        return _Ports(https=urlsplit(f"https://{self.hostname_with_port}").port or 443)

    def _registry(self) -> Any:
        from azure.iot.hub import IoTHubRegistryManager

        return IoTHubRegistryManager.from_connection_string(self.registry_connection_string)

    def register(self, device_ids: list[str]) -> None:
        registry = self._registry()
        for device_id in device_ids:
            device = registry.create_device_with_sas(device_id, "", "", "enabled")
            self.keys[device_id] = device.authentication.symmetric_key.primary_key

    def unregister(self) -> None:
        registry = self._registry()
        for device_id in list(self.keys):
            registry.delete_device(device_id)
            del self.keys[device_id]

    def device_connection_string(self, device_id: str) -> str:
        return f"HostName={self.hostname};DeviceId={device_id};SharedAccessKey={self.keys[device_id]}"

    def device_proxy_options(self) -> dict[str, Any]:
        if not self.mqtt_proxy:
            return {}
        host, _, port = self.mqtt_proxy.rpartition(":")
        return {"proxy_type": "HTTP", "proxy_addr": host, "proxy_port": int(port)}


@dataclass
class _ConnectionOnly:
    connection_string: str
    admin: Any = None


@dataclass
class ExternalCloud:
    base_url: str
    function_key: str
    hub: ExternalHub
    bus: _ConnectionOnly
    storage: _ConnectionOnly
    max_delivery_count: int = 10

    def post(self, path: str, body: object, *, key: str | None = "") -> tuple[int, dict[str, str], Any]:
        return post_json(self.base_url, path, body, self.function_key if key == "" else key)


def external_cloud_from_environment() -> ExternalCloud:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"the external end-to-end target needs {', '.join(missing)}")
    env = os.environ
    return ExternalCloud(
        base_url=env["C2D_E2E_FUNCTIONS_URL"].rstrip("/"),
        function_key=env["C2D_E2E_FUNCTION_KEY"],
        hub=ExternalHub(env["C2D_E2E_IOTHUB_CONNECTION_STRING"], env.get("C2D_E2E_MQTT_PROXY") or None),
        bus=_ConnectionOnly(env["C2D_E2E_SERVICEBUS_CONNECTION"]),
        storage=_ConnectionOnly(env["C2D_E2E_STORAGE_CONNECTION"]),
        max_delivery_count=int(env.get("C2D_E2E_MAX_DELIVERY_COUNT", "10")),
    )
