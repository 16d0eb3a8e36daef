"""`python -m localcloud up | status | down`: the local cloud in the background, on fixed development
ports, so that connection strings stay the same between runs.

`up` prints how to connect with every key masked; the full connection strings go to
`.localcloud/run/connections.json` and the app settings to `.localcloud/run/settings.json`, both
readable only by the user.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.app_settings import FUNCTION_KEY, app_settings
from localcloud.azurite import AZURITE, azurite_command
from localcloud.azurite import connection_string as azurite_connection_string
from localcloud.certs import ensure_certs
from localcloud.iothub import config as hub_config
from localcloud.paths import REPO_ROOT, RUN_DIR, STATE_DIR
from localcloud.readiness import emulator_ready, file_exists, log_contains, wait_ready
from localcloud.redact import redact_keys, with_key
from localcloud.servicebus.tokens import DEFAULT_KEY as SERVICEBUS_DEFAULT_KEY
from localcloud.supervisor import alive, save_pids, saved_pids, spawn_background, stop_group

CONNECTIONS_FILE = RUN_DIR / "connections.json"
SETTINGS_FILE = RUN_DIR / "settings.json"


@dataclass(frozen=True)
class UpPorts:
    amqp: int = 5671
    mqtt: int = 8883
    https: int = 8443
    hub_admin: int = 15671
    connect_proxy: int = 18883
    servicebus: int = 5672
    servicebus_amqps: int = 5674
    servicebus_admin: int = 5673
    azurite: int = 10001
    azurite_table: int = 10002
    functions: int = 7071


def _write_private(path: Path, text: str) -> None:
    """Connection strings with keys go to files only the user can read, never to the terminal."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _start_all(ports: UpPorts, pids: dict[str, int]) -> dict[str, str]:
    """Start every piece, each once the one it needs is ready; returns the app settings."""
    python = sys.executable
    pids["iothub"] = spawn_background("iothub", [
        python, "-m", "localcloud", "iothub", "--state-dir", str(STATE_DIR),
        "--amqp-port", str(ports.amqp), "--mqtt-port", str(ports.mqtt), "--https-port", str(ports.https),
        "--admin-port", str(ports.hub_admin), "--connect-proxy-port", str(ports.connect_proxy),
    ])  # fmt: skip
    pids["servicebus"] = spawn_background("servicebus", [
        python, "-m", "localcloud", "servicebus", "--state-dir", str(STATE_DIR),
        "--amqp-port", str(ports.servicebus), "--amqps-port", str(ports.servicebus_amqps),
        "--admin-port", str(ports.servicebus_admin),
    ])  # fmt: skip
    (STATE_DIR / "azurite").mkdir(parents=True, exist_ok=True)
    pids["azurite"] = spawn_background(
        "azurite", azurite_command("127.0.0.1", ports.azurite, ports.azurite_table, STATE_DIR / "azurite")
    )
    save_pids(pids)
    wait_ready("iothub", pids["iothub"], emulator_ready("iothub"))
    bus = wait_ready("servicebus", pids["servicebus"], emulator_ready("servicebus"))
    wait_ready("azurite", pids["azurite"], log_contains("azurite", "Table service is successfully listening"))
    settings = app_settings(
        iothub_connection_string=hub_config.HubConfig().service_connection_string(),
        amqp_port=ports.amqp,
        https_port=ports.https,
        ca_bundle=ensure_certs(STATE_DIR).ca_bundle,
        servicebus_connection_string=with_key(bus.connection_string, SERVICEBUS_DEFAULT_KEY),
        storage_connection_string=azurite_connection_string("127.0.0.1", ports.azurite, ports.azurite_table),
    )
    _write_private(SETTINGS_FILE, json.dumps(settings, indent=2))
    host_ready = RUN_DIR / "host.ready"
    host_ready.unlink(missing_ok=True)
    pids["host"] = spawn_background("host", [
        python, "-m", "localcloud", "host", "--app-root", str(REPO_ROOT), "--port", str(ports.functions),
        "--settings-file", str(SETTINGS_FILE), "--ready-file", str(host_ready),
    ])  # fmt: skip
    save_pids(pids)
    wait_ready("host", pids["host"], file_exists(host_ready))
    return settings


def up(ports: UpPorts | None = None) -> int:
    ports = ports or UpPorts()
    running = {name: pid for name, pid in saved_pids().items() if alive(pid)}
    if running:
        print(f"localcloud is already running ({', '.join(running)}); `python -m localcloud down` first")
        return 1
    if not AZURITE.exists():
        print("Azurite is not installed: run `npm ci` (or `make venv`) first", file=sys.stderr)
        return 2
    certs = ensure_certs(STATE_DIR)
    pids: dict[str, int] = {}
    try:
        settings = _start_all(ports, pids)
    except (RuntimeError, OSError) as error:
        print(f"localcloud up failed: {redact_keys(str(error))}", file=sys.stderr)
        down()
        return 1
    connections = _connections(ports, hub_config.HubConfig(), certs.ca_bundle, settings)
    _write_private(CONNECTIONS_FILE, json.dumps(connections, indent=2))
    _print_connections()
    return 0


def _connections(
    ports: UpPorts, hub: hub_config.HubConfig, ca_bundle: Path, settings: dict[str, str]
) -> dict[str, Any]:
    policy = hub.policies[0]
    return {
        "functions": f"http://127.0.0.1:{ports.functions}/api (x-functions-key: {FUNCTION_KEY})",
        "iothub_service": settings["IOTHUB_CONNECTION_STRING"],
        "iothub_registry_https": f"HostName={hub.hostname}:{ports.https};SharedAccessKeyName={policy.name};"
        f"SharedAccessKey={policy.primary_key}",
        "devices": {d.device_id: hub.device_connection_string(d.device_id, d.primary_key) for d in hub.devices},
        "servicebus": settings["SERVICEBUS_CONNECTION"],
        "servicebus_amqps_port": ports.servicebus_amqps,
        "storage": settings["AzureWebJobsStorage"],
        "SSL_CERT_FILE": str(ca_bundle),
        "iothub_admin": f"http://127.0.0.1:{ports.hub_admin}/admin/state",
        "servicebus_admin": f"http://127.0.0.1:{ports.servicebus_admin}/admin/state",
        "app_settings": str(SETTINGS_FILE),
        "logs": str(RUN_DIR),
    }


def _print_connections() -> None:
    if not CONNECTIONS_FILE.exists():
        return
    info = json.loads(CONNECTIONS_FILE.read_text())
    print(f"localcloud is up. Connection strings with their keys: {CONNECTIONS_FILE} (keys are masked below).")
    print(f"  Functions host   {info['functions']}")
    print(f"  IoT Hub service  {redact_keys(info['iothub_service'])}   (AMQP port: IOTHUB_AMQP_PORT)")
    print(f"  IoT Hub registry {redact_keys(info['iothub_registry_https'])}")
    for device, connection in info["devices"].items():
        print(f"  device {device:<9} {redact_keys(connection)}")
    print(f"  Service Bus      {redact_keys(info['servicebus'])}")
    tls_port = info["servicebus_amqps_port"]
    print(f"  Service Bus TLS  port {tls_port} (custom_endpoint_address: see localcloud/README.md)")
    print(f"  Storage          {redact_keys(info['storage'])}")
    bundle = info["SSL_CERT_FILE"]
    print(f"  trust the local CA: export SSL_CERT_FILE={bundle} REQUESTS_CA_BUNDLE={bundle}")
    print(f"  app settings in {info['app_settings']}; logs in {info['logs']}")


def down() -> int:
    pids = saved_pids()
    for name, pid in reversed(list(pids.items())):
        if alive(pid):
            stop_group(pid)
            print(f"stopped {name}")
    (RUN_DIR / "pids.json").unlink(missing_ok=True)
    CONNECTIONS_FILE.unlink(missing_ok=True)
    return 0


def status() -> int:
    pids = saved_pids()
    if not pids:
        print("localcloud is not running (`python -m localcloud up`)")
        return 1
    states = {name: "running" if alive(pid) else "stopped" for name, pid in pids.items()}
    for name, state in states.items():
        print(f"{name:<11} {state} (pid {pids[name]})")
    if all(state == "running" for state in states.values()):
        _print_connections()
        return 0
    return 1


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    return {"up": up, "down": down, "status": status}[command]()
