"""Spawn the IoT Hub emulator as a subprocess on free ports (tests, benchmarks, the local cloud).

    with running_iothub(work_dir, limits={"feedback_interval_s": 0.2}) as hub:
        hub.service_connection_string, hub.ports.amqp, hub.ca_bundle, hub.admin.state()

Port notes (the SDKs cannot take a port from a connection string):
- azure-iot-hub AMQP (uamqp) dials `uamqp.constants.DEFAULT_AMQPS_PORT` (`DEFAULT_AMQP_WSS_PORT`
  with AmqpOverWebsocket): `hub.use_in_process()` sets both, and SSL_CERT_FILE, for this process.
- azure-iot-hub HTTP (registry, purge) honours `HostName=localhost:<port>`: `hub.registry_connection_string`.
- azure-iot-device dials 8883 but honours ProxyOptions: `hub.device_proxy_options()` goes through
  the emulator's CONNECT proxy, which maps :8883/:443/:5671 to the real ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.certs import CertPaths, ensure_certs
from localcloud.emulator.launcher import EmulatorProcess, spawn
from localcloud.trust import trusting

from . import config as config_mod
from .admin import IoTHubAdminClient
from .emulator import BoundPorts

FAST_LIMITS: dict[str, Any] = {
    "feedback_interval_s": 0.2,
    "tick_s": 0.02,
}


@dataclass
class IoTHubProcess:
    """A running `python -m localcloud iothub` and what a client needs to reach it."""

    emulator: EmulatorProcess
    config: config_mod.HubConfig
    ports: BoundPorts
    certs: CertPaths
    admin: IoTHubAdminClient

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.emulator.process

    @property
    def log_path(self) -> Path:
        return self.emulator.log_path

    @property
    def ca_bundle(self) -> Path:
        return self.certs.ca_bundle

    @property
    def ca_cert(self) -> Path:
        return self.certs.ca_cert

    @property
    def hostname(self) -> str:
        return self.config.hostname

    @property
    def service_connection_string(self) -> str:
        return self.config.service_connection_string()

    @property
    def registry_connection_string(self) -> str:
        """HostName carries the HTTPS port: for IoTHubRegistryManager registry/purge calls over HTTP."""
        policy = self.config.policies[0]
        return (
            f"HostName={self.hostname}:{self.ports.https};SharedAccessKeyName={policy.name};"
            f"SharedAccessKey={policy.primary_key}"
        )

    def device_key(self, device_id: str) -> str:
        return next(d.primary_key for d in self.config.devices if d.device_id == device_id)

    def device_connection_string(self, device_id: str, key: str | None = None) -> str:
        return self.config.device_connection_string(device_id, key or self.device_key(device_id))

    def device_proxy_options(self) -> dict[str, Any]:
        """kwargs for azure.iot.device.ProxyOptions: reach the MQTT port through the CONNECT proxy."""
        return {"proxy_type": "HTTP", "proxy_addr": "127.0.0.1", "proxy_port": self.ports.connect_proxy}

    @contextlib.contextmanager
    def use_in_process(self) -> Iterator[None]:
        """Point uamqp at the AMQP port and trust the local CA in this process; restore afterwards."""
        import uamqp.constants

        old_port = uamqp.constants.DEFAULT_AMQPS_PORT
        old_ws_port = uamqp.constants.DEFAULT_AMQP_WSS_PORT
        uamqp.constants.DEFAULT_AMQPS_PORT = self.ports.amqp
        uamqp.constants.DEFAULT_AMQP_WSS_PORT = self.ports.https  # AMQP over WebSockets
        try:
            with trusting(self.ca_bundle):
                yield
        finally:
            uamqp.constants.DEFAULT_AMQPS_PORT = old_port
            uamqp.constants.DEFAULT_AMQP_WSS_PORT = old_ws_port

    def log_tail(self, lines: int = 40) -> str:
        return self.emulator.log_tail(lines)

    def stop(self) -> None:
        self.emulator.stop()


def spawn_iothub(
    work_dir: Path,
    limits: dict[str, Any] | None = None,
    extra_config: dict[str, Any] | None = None,
    state_dir: Path | None = None,
    timeout_s: float = 60.0,
) -> IoTHubProcess:
    """Spawn `python -m localcloud iothub` on free ports; returns once it printed READY."""
    work_dir.mkdir(parents=True, exist_ok=True)
    state_dir = state_dir or work_dir / "state"
    certs = ensure_certs(state_dir)  # created here so the child only reuses them
    raw: dict[str, Any] = dict(extra_config or {})
    raw["limits"] = {**FAST_LIMITS, **raw.get("limits", {}), **(limits or {})}
    raw["ports"] = {"amqp": 0, "mqtt": 0, "https": 0, "admin": 0, "connect_proxy": 0}
    config_path = work_dir / "iothub.json"
    config_path.write_text(json.dumps(raw))
    log_level = os.environ.get("IOTHUB_LOG_LEVEL", "INFO")
    args = ["--config", str(config_path), "--state-dir", str(state_dir), "--log-level", log_level]
    process = spawn("iothub", args, log_path=work_dir / "iothub.log", timeout_s=timeout_s)
    ports = BoundPorts(**process.ready.ports)
    return IoTHubProcess(
        emulator=process,
        config=config_mod.load(config_path),
        ports=ports,
        certs=certs,
        admin=IoTHubAdminClient(f"http://127.0.0.1:{ports.admin}"),
    )


@contextlib.contextmanager
def running_iothub(work_dir: Path, **kwargs: Any) -> Iterator[IoTHubProcess]:
    """`spawn_iothub` for one `with` block."""
    hub = spawn_iothub(work_dir, **kwargs)
    try:
        yield hub
    finally:
        hub.stop()
