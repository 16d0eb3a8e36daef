"""Simulated IoT device for end-to-end runs: receives cloud-to-device messages and settles them.

    python device_simulator.py --connection-string "HostName=...;DeviceId=...;SharedAccessKey=..."
    python device_simulator.py --transport https --reject --count 1 --timeout 30

MQTT (the default, azure-iot-device) can only complete a message. The HTTPS transport uses
IoT Hub's device C2D API and can also reject (dead-letter) or abandon (redeliver) it, which
is how negative feedback (Rejected, DeliveryCountExceeded) is produced.

Exit code: 0 when --count messages were handled (or the timeout passed with no --count),
1 when --count was not reached in time, 2 on a usage or connection error.
The modern version of the tutorial's SimulatedDevice.py. Never deployed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

API_VERSION = "2020-03-13"


@dataclass(frozen=True)
class DeviceCredentials:
    hostname: str
    device_id: str
    key: str

    @classmethod
    def parse(cls, connection_string: str) -> DeviceCredentials:
        parts = dict(p.split("=", 1) for p in connection_string.strip().strip(";").split(";") if "=" in p)
        missing = [k for k in ("HostName", "DeviceId", "SharedAccessKey") if not parts.get(k)]
        if missing:
            raise ValueError(f"device connection string lacks {', '.join(missing)}")
        return cls(parts["HostName"], parts["DeviceId"], parts["SharedAccessKey"])

    def sas_token(self, lifetime_s: int = 3600) -> str:
        resource = urllib.parse.quote(f"{self.hostname}/devices/{self.device_id}", safe="")
        expiry = int(time.time() + lifetime_s)
        signature = hmac.new(base64.b64decode(self.key), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
        return "SharedAccessSignature sr={}&sig={}&se={}".format(
            resource, urllib.parse.quote(base64.b64encode(signature), safe=""), expiry
        )


def show(transport: str, action: str, message_id: str | None, correlation_id: str | None,
         properties: dict[str, str], body: bytes) -> None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(body).decode()
    print(
        f"[device] {action} via {transport}: messageId={message_id} correlationId={correlation_id} "
        f"properties={json.dumps(properties, sort_keys=True)} body={text}",
        flush=True,
    )


def run_mqtt(connection_string: str, count: int, timeout_s: float, http_proxy: str | None = None) -> int:
    from azure.iot.device import IoTHubDeviceClient, ProxyOptions

    received = threading.Semaphore(0)
    proxy = None
    if http_proxy:
        host, _, port = http_proxy.rpartition(":")
        proxy = ProxyOptions(proxy_type="HTTP", proxy_addr=host, proxy_port=int(port))
    client = IoTHubDeviceClient.create_from_connection_string(connection_string, proxy_options=proxy)

    def on_message(message) -> None:  # completed (PUBACK) by the SDK when this returns
        show("mqtt", "completed", message.message_id, message.correlation_id,
             dict(message.custom_properties or {}), bytes(message.data or b""))
        received.release()

    client.on_message_received = on_message
    client.connect()
    print("[device] connected over MQTT; waiting for cloud-to-device messages", flush=True)
    try:
        return _wait(received, count, timeout_s)
    finally:
        client.shutdown()


def run_https(creds: DeviceCredentials, port: int, action: str, count: int, timeout_s: float, poll_s: float) -> int:
    device = urllib.parse.quote(creds.device_id, safe="")
    base = f"https://{creds.hostname}:{port}/devices/{device}/messages/devicebound"
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
    handled, deadline = 0, time.monotonic() + timeout_s
    print("[device] polling the HTTPS device endpoint for cloud-to-device messages", flush=True)
    while time.monotonic() < deadline and (count == 0 or handled < count):
        request = urllib.request.Request(
            f"{base}?api-version={API_VERSION}", headers={"Authorization": creds.sas_token()}
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            if response.status == 204:
                time.sleep(poll_s)
                continue
            body = response.read()
            headers = response.headers
            lock_token = (headers.get("ETag") or "").strip('"')
            properties = {k[len("iothub-app-"):]: v for k, v in headers.items() if k.lower().startswith("iothub-app-")}
        _settle(base, creds, context, lock_token, action)
        show("https", {"complete": "completed", "reject": "rejected", "abandon": "abandoned"}[action],
             headers.get("iothub-messageid"), headers.get("iothub-correlationid"), properties, body)
        handled += 1
    return 0 if count == 0 or handled >= count else 1


def _settle(base: str, creds: DeviceCredentials, context: ssl.SSLContext, lock_token: str, action: str) -> None:
    token = urllib.parse.quote(lock_token, safe="")
    if action == "abandon":
        url, method = f"{base}/{token}/abandon?api-version={API_VERSION}", "POST"
    else:
        reject = "&reject" if action == "reject" else ""
        url, method = f"{base}/{token}?api-version={API_VERSION}{reject}", "DELETE"
    request = urllib.request.Request(url, method=method, headers={"Authorization": creds.sas_token()}, data=b"")
    with urllib.request.urlopen(request, context=context, timeout=30):
        pass


def _wait(received: threading.Semaphore, count: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    handled = 0
    while count == 0 or handled < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not received.acquire(timeout=remaining):
            break
        handled += 1
    return 0 if count == 0 or handled >= count else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connection-string", default=os.environ.get("DEVICE_CONNECTION_STRING"),
                        help="device connection string (default: $DEVICE_CONNECTION_STRING)")
    parser.add_argument("--transport", choices=("mqtt", "https"), default="mqtt")
    settle = parser.add_mutually_exclusive_group()
    settle.add_argument("--reject", action="store_const", dest="action", const="reject",
                        help="dead-letter each message (HTTPS only): negative feedback 'Rejected'")
    settle.add_argument("--abandon", action="store_const", dest="action", const="abandon",
                        help="abandon each message (HTTPS only): redelivered until maxDeliveryCount")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages (0: until --timeout)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to run (default 60)")
    parser.add_argument("--https-port", type=int, default=443, help="device HTTPS port (an emulator may use another)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="HTTPS polling interval in seconds")
    parser.add_argument("--http-proxy", metavar="HOST:PORT", help="reach the hub's MQTT port through an HTTP proxy")
    args = parser.parse_args(argv)
    args.action = args.action or "complete"
    if not args.connection_string:
        parser.error("give --connection-string or set DEVICE_CONNECTION_STRING")
    if args.http_proxy and not args.http_proxy.rpartition(":")[2].isdigit():
        parser.error("--http-proxy must be HOST:PORT")
    if args.transport == "mqtt" and args.action != "complete":
        parser.error("MQTT devices can only complete messages; use --transport https to reject or abandon")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        creds = DeviceCredentials.parse(args.connection_string)
    except ValueError as error:
        print(f"[device] {error}", file=sys.stderr)
        return 2
    try:
        if args.transport == "mqtt":
            return run_mqtt(args.connection_string, args.count, args.timeout, args.http_proxy)
        return run_https(creds, args.https_port, args.action, args.count, args.timeout, args.poll_interval)
    except (OSError, urllib.error.URLError) as error:
        print(f"[device] connection to {creds.hostname} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
