"""The whole local cloud for end-to-end tests and the demo: IoT Hub and Service Bus emulators, Azurite,
and the local Functions host running this repository's app in the real Python worker."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.azurite import Azurite, azurite
from localcloud.functions_host.testing import RunningHost, start_host
from localcloud.iothub.testing import RunningEmulator as Hub
from localcloud.iothub.testing import running_emulator
from localcloud.servicebus.testing import RunningEmulator as Bus
from localcloud.servicebus.testing import start_emulator as start_bus

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_KEY = "e2e-function-key"
FAN_OUT_DEVICES = [f"fan-{i:03d}" for i in range(200)]
E2E_DEVICES = ["mqtt-1", "https-1", "https-2", "https-3", "purge-1", "expire-1", "queue-1", "outage-1", *FAN_OUT_DEVICES]


@dataclass
class LocalCloud:
    hub: Hub
    bus: Bus
    storage: Azurite
    host: RunningHost

    def post(self, path: str, body: object, *, key: str | None = FUNCTION_KEY) -> tuple[int, dict[str, Any], dict]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["x-functions-key"] = key
        request = urllib.request.Request(self.host.base_url + path, data=raw, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            payload = error.read()
            return error.code, dict(error.headers), json.loads(payload) if payload else {}


def app_settings(hub: Hub, bus: Bus, storage: Azurite, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": storage.connection_string,
        "IOTHUB_CONNECTION_STRING": hub.service_connection_string,
        "IOTHUB_AMQP_PORT": str(hub.ports.amqp),
        "IOTHUB_SEND_TIMEOUT_SECONDS": "10",
        "SSL_CERT_FILE": str(hub.ca_bundle),
        "SERVICEBUS_CONNECTION": bus.connection_string,
        "SERVICEBUS_RETRY_TOTAL": "0",
        "OUTCOME_TOPIC": "c2d-outcomes",
        "FEEDBACK_SCHEDULE": "*/2 * * * * *",
        "FEEDBACK_MAX_DRAIN_SECONDS": "1.5",
        "FEEDBACK_IDLE_WAIT_SECONDS": "0.3",
        "LocalHost__FunctionKey": FUNCTION_KEY,
        "LocalHost__MasterKey": FUNCTION_KEY + "-master",
        **(extra or {}),
    }


@contextlib.contextmanager
def local_cloud(
    work_dir: Path,
    *,
    devices: list[dict[str, str]] | None = None,
    hub_limits: dict[str, Any] | None = None,
    settings: dict[str, str] | None = None,
) -> Iterator[LocalCloud]:
    extra = {"devices": devices} if devices else None
    with (
        running_emulator(work_dir / "iothub", limits=hub_limits, extra_config=extra) as hub,
        start_bus() as bus,
        azurite(location=work_dir / "azurite") as storage,
        start_host(REPO_ROOT, app_settings(hub, bus, storage, settings), master_key=FUNCTION_KEY + "-master") as host,
    ):
        yield LocalCloud(hub, bus, storage, host)


@contextlib.contextmanager
def trusting(ca_bundle: Path) -> Iterator[None]:
    """Trust the local CA in this process: OpenSSL users (uamqp, ssl) read SSL_CERT_FILE, requests
    (azure-iot-hub's registry calls) reads REQUESTS_CA_BUNDLE."""
    names = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    previous = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, str(ca_bundle)))
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
