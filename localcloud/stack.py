"""The whole local cloud: IoT Hub and Service Bus emulators, Azurite and the local Functions host
running this repository's app, wired together.

    python -m localcloud up       start everything in the background (fixed dev ports), print how to connect
    python -m localcloud status   what is running
    python -m localcloud down     stop what `up` started

`local_cloud()` starts the same pieces on free ports for one `with` block (tests, the demo).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.azurite import AZURITE_QUEUE, Azurite, azurite
from localcloud.azurite import connection_string as azurite_connection_string
from localcloud.certs import ensure_certs
from localcloud.functions_host.testing import RunningHost, start_host
from localcloud.iothub import config as hub_config
from localcloud.iothub.launcher import IoTHubProcess as Hub
from localcloud.iothub.launcher import running_iothub
from localcloud.redact import redact_keys, with_key
from localcloud.servicebus.launcher import ServiceBusProcess as Bus
from localcloud.servicebus.launcher import running_servicebus
from localcloud.servicebus.tokens import DEFAULT_KEY as SERVICEBUS_DEFAULT_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = REPO_ROOT / ".localcloud"
RUN_DIR = STATE_DIR / "run"
#: Local-only keys: they open nothing but these emulators and this host.
FUNCTION_KEY = "local-function-key"
MASTER_KEY = "local-master-key"


@dataclass(frozen=True)
class UpPorts:
    """Fixed ports for `up`, so connection strings stay the same between runs."""

    amqp: int = 5671
    mqtt: int = 8883
    https: int = 8443
    hub_admin: int = 15671
    connect_proxy: int = 18883
    servicebus: int = 5672
    servicebus_admin: int = 5673
    azurite: int = 10001
    functions: int = 7071


def app_settings(
    *,
    iothub_connection_string: str,
    amqp_port: int,
    ca_bundle: Path,
    servicebus_connection_string: str,
    storage_connection_string: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """App settings that point this app at the local emulators (what local.settings.json would hold)."""
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": storage_connection_string,
        "IOTHUB_CONNECTION_STRING": iothub_connection_string,
        "IOTHUB_AMQP_PORT": str(amqp_port),
        "IOTHUB_SEND_TIMEOUT_SECONDS": "10",
        "SSL_CERT_FILE": str(ca_bundle),
        "SERVICEBUS_CONNECTION": servicebus_connection_string,
        "SERVICEBUS_RETRY_TOTAL": "0",
        "OUTCOME_TOPIC": "c2d-outcomes",
        "FEEDBACK_SCHEDULE": "*/2 * * * * *",
        "FEEDBACK_MAX_DRAIN_SECONDS": "1.5",
        "FEEDBACK_IDLE_WAIT_SECONDS": "0.3",
        "LocalHost__FunctionKey": FUNCTION_KEY,
        "LocalHost__MasterKey": MASTER_KEY,
        **(extra or {}),
    }


# ---- one `with` block: free ports, everything stopped at the end --------------------------------
@dataclass
class LocalCloud:
    hub: Hub
    bus: Bus
    storage: Azurite
    host: RunningHost
    max_delivery_count: int = 10

    def post(self, path: str, body: object, *, key: str | None = FUNCTION_KEY) -> tuple[int, dict[str, str], Any]:
        """POST JSON to the local host; returns (status, headers, decoded JSON body)."""
        return post_json(self.host.base_url, path, body, key)


def post_json(base_url: str, path: str, body: object, key: str | None) -> tuple[int, dict[str, str], Any]:
    """POST JSON to a Functions host with a function key; returns (status, headers, decoded JSON body)."""
    import urllib.error
    import urllib.request

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
) -> Iterator[LocalCloud]:
    extra = {"devices": devices} if devices else None
    with (
        running_iothub(work_dir / "iothub", limits=hub_limits, extra_config=extra) as hub,
        running_servicebus(work_dir=work_dir / "servicebus") as bus,
        azurite(location=work_dir / "azurite") as storage,
    ):
        values = app_settings(
            iothub_connection_string=hub.service_connection_string,
            amqp_port=hub.ports.amqp,
            ca_bundle=hub.ca_bundle,
            servicebus_connection_string=bus.connection_string,
            storage_connection_string=storage.connection_string,
            extra=settings,
        )
        with start_host(app_root, values, master_key=MASTER_KEY) as host:
            yield LocalCloud(hub, bus, storage, host, (hub_limits or {}).get("max_delivery_count", 10))


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




# ---- `up` / `down` / `status`: background processes that outlive the command --------------------
def _spawn(name: str, command: list[str], env: dict[str, str] | None = None) -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
    return process.pid


def _log(name: str) -> str:
    path = RUN_DIR / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_ready(name: str, pid: int, ready: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        if not _alive(pid):
            raise RuntimeError(f"{name} exited while starting:\n{_log(name)[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {timeout_s} s:\n{_log(name)[-3000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids() -> dict[str, int]:
    path = RUN_DIR / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def up(ports: UpPorts = UpPorts()) -> int:
    running = {name: pid for name, pid in _pids().items() if _alive(pid)}
    if running:
        print(f"localcloud is already running ({', '.join(running)}); `python -m localcloud down` first")
        return 1
    if not AZURITE_QUEUE.exists():
        print("Azurite is not installed: run `npm ci` (or `make venv`) first", file=sys.stderr)
        return 2
    certs = ensure_certs(STATE_DIR)
    python = sys.executable
    pids: dict[str, int] = {}
    try:
        pids["iothub"] = _spawn("iothub", [
            python, "-m", "localcloud", "iothub", "--state-dir", str(STATE_DIR),
            "--amqp-port", str(ports.amqp), "--mqtt-port", str(ports.mqtt), "--https-port", str(ports.https),
            "--admin-port", str(ports.hub_admin), "--connect-proxy-port", str(ports.connect_proxy),
        ])  # fmt: skip
        pids["servicebus"] = _spawn("servicebus", [
            python, "-m", "localcloud", "servicebus", "--amqp-port", str(ports.servicebus),
            "--admin-port", str(ports.servicebus_admin), "--log-level", "WARNING",
        ])  # fmt: skip
        (STATE_DIR / "azurite").mkdir(parents=True, exist_ok=True)
        pids["azurite"] = _spawn("azurite", [
            str(AZURITE_QUEUE), "--queueHost", "127.0.0.1", "--queuePort", str(ports.azurite),
            "--location", str(STATE_DIR / "azurite"), "--skipApiVersionCheck", "--loose",
        ])  # fmt: skip
        _save(pids)
        _wait_ready("iothub", pids["iothub"], lambda: _ready_line(_log("iothub")))
        bus_line = _wait_ready("servicebus", pids["servicebus"], lambda: _ready_line(_log("servicebus")))
        _wait_ready("azurite", pids["azurite"], lambda: "successfully listens" in _log("azurite"))

        hub = hub_config.HubConfig()
        storage = azurite_connection_string("127.0.0.1", ports.azurite)
        settings = app_settings(
            iothub_connection_string=hub.service_connection_string(),
            amqp_port=ports.amqp,
            ca_bundle=certs.ca_bundle,
            servicebus_connection_string=with_key(bus_line["connectionString"], SERVICEBUS_DEFAULT_KEY),
            storage_connection_string=storage,
        )
        settings_file = RUN_DIR / "settings.json"
        _write_private(settings_file, json.dumps(settings, indent=2))
        host_ready = RUN_DIR / "host.ready"
        host_ready.unlink(missing_ok=True)
        pids["host"] = _spawn("host", [
            python, "-m", "localcloud", "host", "--app-root", str(REPO_ROOT), "--port", str(ports.functions),
            "--settings-file", str(settings_file), "--ready-file", str(host_ready),
        ])  # fmt: skip
        _save(pids)
        _wait_ready("host", pids["host"], host_ready.exists)
    except (RuntimeError, OSError) as error:
        print(f"localcloud up failed: {error}", file=sys.stderr)
        down()
        return 1
    connections = _connections(ports, hub, certs.ca_bundle, settings)
    _write_private(RUN_DIR / "connections.json", json.dumps(connections, indent=2))
    _print_connections()
    return 0


def _ready_line(log: str) -> dict[str, Any] | None:
    for line in log.splitlines():
        if line.startswith("READY "):
            return json.loads(line[len("READY "):])
    return None


def _write_private(path: Path, text: str) -> None:
    """Connection strings with keys go to files only the user can read, never to the terminal."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _save(pids: dict[str, int]) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "pids.json").write_text(json.dumps(pids))


def _connections(ports: UpPorts, hub: hub_config.HubConfig, ca_bundle: Path, settings: dict[str, str]) -> dict:
    policy = hub.policies[0]
    return {
        "functions": f"http://127.0.0.1:{ports.functions}/api (x-functions-key: {FUNCTION_KEY})",
        "iothub_service": settings["IOTHUB_CONNECTION_STRING"],
        "iothub_registry_https": f"HostName={hub.hostname}:{ports.https};SharedAccessKeyName={policy.name};"
        f"SharedAccessKey={policy.primary_key}",
        "devices": {d.device_id: hub.device_connection_string(d.device_id, d.primary_key) for d in hub.devices},
        "servicebus": settings["SERVICEBUS_CONNECTION"],
        "storage": settings["AzureWebJobsStorage"],
        "SSL_CERT_FILE": str(ca_bundle),
        "iothub_admin": f"http://127.0.0.1:{ports.hub_admin}/admin/state",
        "servicebus_admin": f"http://127.0.0.1:{ports.servicebus_admin}/admin/state",
        "app_settings": str(RUN_DIR / "settings.json"),
        "logs": str(RUN_DIR),
    }


def _print_connections() -> None:
    path = RUN_DIR / "connections.json"
    if not path.exists():
        return
    info = json.loads(path.read_text())
    print(f"localcloud is up. Connection strings with their keys: {path} (keys are masked below).")
    print(f"  Functions host   {info['functions']}")
    print(f"  IoT Hub service  {redact_keys(info['iothub_service'])}   (AMQP port: IOTHUB_AMQP_PORT)")
    print(f"  IoT Hub registry {redact_keys(info['iothub_registry_https'])}")
    for device, connection in info["devices"].items():
        print(f"  device {device:<9} {redact_keys(connection)}")
    print(f"  Service Bus      {redact_keys(info['servicebus'])}")
    print(f"  Storage          {redact_keys(info['storage'])}")
    bundle = info["SSL_CERT_FILE"]
    print(f"  trust the local CA: export SSL_CERT_FILE={bundle} REQUESTS_CA_BUNDLE={bundle}")
    print(f"  app settings in {info['app_settings']}; logs in {info['logs']}")


def down() -> int:
    pids = _pids()
    for name, pid in reversed(list(pids.items())):
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            print(f"stopped {name}")
    (RUN_DIR / "pids.json").unlink(missing_ok=True)
    (RUN_DIR / "connections.json").unlink(missing_ok=True)
    return 0


def status() -> int:
    pids = _pids()
    if not pids:
        print("localcloud is not running (`python -m localcloud up`)")
        return 1
    states = {name: "running" if _alive(pid) else "stopped" for name, pid in pids.items()}
    for name, state in states.items():
        print(f"{name:<11} {state} (pid {pids[name]})")
    if all(state == "running" for state in states.values()):
        _print_connections()
        return 0
    return 1


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    return {"up": up, "down": down, "status": status}[command]()
