"""Start the emulator as a subprocess on free ports for tests (importable by any test tree).

    with running_emulator(tmp_dir, limits={"feedback_interval_s": 0.2}) as hub:
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
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..certs import CertPaths, ensure_certs
from . import config as config_mod
from .admin import AdminClient
from .app import BoundPorts

REPO_ROOT = Path(__file__).resolve().parents[2]

FAST_LIMITS: dict[str, Any] = {
    "feedback_interval_s": 0.2,
    "tick_s": 0.02,
}


@dataclass
class RunningEmulator:
    process: subprocess.Popen[bytes]
    config: config_mod.HubConfig
    ports: BoundPorts
    certs: CertPaths
    admin: AdminClient
    log_path: Path

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
        """Point uamqp at the AMQP port and trust the local CA in this process (SSL_CERT_FILE and
        REQUESTS_CA_BUNDLE, which msrest's requests reads); restore afterwards."""
        import uamqp.constants

        old_port = uamqp.constants.DEFAULT_AMQPS_PORT
        old_ws_port = uamqp.constants.DEFAULT_AMQP_WSS_PORT
        names = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")  # uamqp/paho/aiohttp, requests (msrest)
        old_env = {name: os.environ.get(name) for name in names}
        uamqp.constants.DEFAULT_AMQPS_PORT = self.ports.amqp
        uamqp.constants.DEFAULT_AMQP_WSS_PORT = self.ports.https  # AMQP over WebSockets
        os.environ.update(dict.fromkeys(names, str(self.ca_bundle)))
        try:
            yield
        finally:
            uamqp.constants.DEFAULT_AMQPS_PORT = old_port
            uamqp.constants.DEFAULT_AMQP_WSS_PORT = old_ws_port
            for name, value in old_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_emulator(
    work_dir: Path,
    limits: dict[str, Any] | None = None,
    extra_config: dict[str, Any] | None = None,
    state_dir: Path | None = None,
    timeout_s: float = 60.0,
) -> RunningEmulator:
    """Spawn `python -m localcloud iothub` on free ports and wait for its ready file."""
    work_dir.mkdir(parents=True, exist_ok=True)
    state_dir = state_dir or work_dir / "state"
    certs = ensure_certs(state_dir)  # created here so the child only reuses them
    raw: dict[str, Any] = dict(extra_config or {})
    raw["limits"] = {**FAST_LIMITS, **raw.get("limits", {}), **(limits or {})}
    raw["ports"] = {"amqp": 0, "mqtt": 0, "https": 0, "admin": 0, "connect_proxy": 0}
    config_path = work_dir / "iothub.json"
    config_path.write_text(json.dumps(raw))
    ready_path = work_dir / "ready.json"
    ready_path.unlink(missing_ok=True)
    log_path = work_dir / "iothub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud",
                "iothub",
                "--config",
                str(config_path),
                "--state-dir",
                str(state_dir),
                "--ready-file",
                str(ready_path),
                "--log-level",
                os.environ.get("IOTHUB_LOG_LEVEL", "INFO"),
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout_s
    try:
        while not ready_path.exists():
            if process.poll() is not None:
                raise RuntimeError(f"emulator exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"emulator not ready after {timeout_s}s:\n{log_path.read_text()}")
            time.sleep(0.05)
        ports = BoundPorts(**json.loads(ready_path.read_text())["ports"])
    except BaseException:
        _terminate(process)
        raise
    return RunningEmulator(
        process=process,
        config=config_mod.load(config_path),
        ports=ports,
        certs=certs,
        admin=AdminClient(f"http://127.0.0.1:{ports.admin}"),
        log_path=log_path,
    )


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def stop_emulator(emulator: RunningEmulator) -> None:
    _terminate(emulator.process)


@contextlib.contextmanager
def running_emulator(work_dir: Path, **kwargs: Any) -> Iterator[RunningEmulator]:
    emulator = start_emulator(work_dir, **kwargs)
    try:
        yield emulator
    finally:
        stop_emulator(emulator)


# ---- service-side AMQP helpers on uamqp (the SDK's own transport) ------------------------------
def service_auth(emulator: RunningEmulator, key: str | None = None, transport_type: Any = None) -> Any:
    """uamqp JWTTokenAuth with a put-token SAS, exactly as azure-iot-hub builds it."""
    import uamqp
    from azure.core.credentials import AccessToken

    from . import sas

    policy = emulator.config.policies[0]
    host = emulator.hostname

    def get_token() -> AccessToken:
        token = sas.make_token(host, key or policy.primary_key, policy.name)
        return AccessToken(token, int(time.time()) + 3600)

    auth = uamqp.authentication.JWTTokenAuth(
        audience="https://" + host,
        uri="https://" + host,
        get_token=get_token,
        token_type=b"servicebus.windows.net:sastoken",
        transport_type=transport_type or uamqp.TransportType.Amqp,
    )
    auth.update_token()
    return auth


def open_feedback_receiver(emulator: RunningEmulator, prefetch: int = 10) -> Any:
    import uamqp

    return uamqp.ReceiveClient(
        f"amqps://{emulator.hostname}/messages/servicebound/feedback",
        auth=service_auth(emulator),
        prefetch=prefetch,
        auto_complete=False,  # default True accepts every message on arrival, before release()/reject()
    )


def receive_feedback(receiver: Any, want_records: int, timeout_s: float = 30.0, settle: str = "accept") -> list[Any]:
    """Receive feedback messages until `want_records` records arrived; settle each ('accept', 'release',
    'reject' or 'none'). Returns the uamqp messages (records: json.loads of b''.join(m.get_data()))."""
    messages: list[Any] = []
    count = 0
    deadline = time.monotonic() + timeout_s
    while count < want_records and time.monotonic() < deadline:
        for msg in receiver.receive_message_batch(max_batch_size=10, timeout=500):
            messages.append(msg)
            count += len(feedback_records(msg))
            if settle != "none":
                getattr(msg, settle)()
    return messages


def feedback_records(msg: Any) -> list[dict[str, str]]:
    return json.loads(b"".join(bytes(part) for part in msg.get_data()))
