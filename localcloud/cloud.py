"""The whole local cloud for one `with` block, on free ports: both emulators, Azurite and the local
Functions host running this repository's app (tests, the demo, benchmarks)."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.app_settings import FUNCTION_KEY, MASTER_KEY, app_settings
from localcloud.azurite import Azurite, azurite
from localcloud.functions_host.launcher import HostProcess, running_host
from localcloud.iothub.launcher import IoTHubProcess, running_iothub
from localcloud.paths import REPO_ROOT
from localcloud.servicebus.launcher import ServiceBusProcess, running_servicebus


@dataclass
class LocalCloud:
    hub: IoTHubProcess
    bus: ServiceBusProcess
    storage: Azurite
    host: HostProcess
    max_delivery_count: int = 10

    def post(self, path: str, body: object, *, key: str | None = FUNCTION_KEY) -> tuple[int, dict[str, str], Any]:
        """POST JSON to the local host; returns (status, headers, decoded JSON body)."""
        return post_json(self.host.base_url, path, body, key)


def post_json(base_url: str, path: str, body: object, key: str | None) -> tuple[int, dict[str, str], Any]:
    """POST JSON to a Functions host with a function key; returns (status, headers, decoded JSON body)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["x-functions-key"] = key
    request = urllib.request.Request(base_url + path, data=raw, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        payload = error.read()
        return error.code, dict(error.headers), json.loads(payload) if payload else {}


@contextlib.contextmanager
def local_cloud(
    work_dir: Path,
    *,
    devices: list[dict[str, str]] | None = None,
    hub_limits: dict[str, Any] | None = None,
    settings: dict[str, str] | None = None,
    app_root: Path = REPO_ROOT,
    storage_connection: Callable[[Azurite], str] | None = None,
) -> Iterator[LocalCloud]:
    """`storage_connection` chooses the app's AzureWebJobsStorage from the running Azurite (e.g. to put a
    fault-injecting proxy in front of one of its services); by default, Azurite's own connection string."""
    extra = {"devices": devices} if devices else None
    with (
        running_iothub(work_dir / "iothub", limits=hub_limits, extra_config=extra) as hub,
        running_servicebus(work_dir=work_dir / "servicebus") as bus,
        azurite(location=work_dir / "azurite") as storage,
    ):
        values = app_settings(
            iothub_connection_string=hub.service_connection_string,
            amqp_port=hub.ports.amqp,
            https_port=hub.ports.https,
            ca_bundle=hub.ca_bundle,
            servicebus_connection_string=bus.connection_string,
            storage_connection_string=(storage_connection or _direct)(storage),
            extra=settings,
        )
        with running_host(app_root, values, master_key=MASTER_KEY) as host:
            yield LocalCloud(hub, bus, storage, host, (hub_limits or {}).get("max_delivery_count", 10))


def _direct(storage: Azurite) -> str:
    return storage.connection_string
