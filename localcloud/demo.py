"""`python -m localcloud demo` (`make demo`): the whole flow once, on this machine, in under a minute.

Starts the IoT Hub and Service Bus emulators, Azurite and the local Functions host running this app;
registers a device; starts the device simulator; sends a message through SendC2D; shows the device
printing it and the `Success` outcome read from the `c2d-outcomes` subscription; polls the status URL
the send answered with (`Location`) until it says 200; stops everything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from localcloud.functions_host.launcher import wait_until
from localcloud.outcome_reader import OutcomeReader, ReceivedOutcome
from localcloud.stack import REPO_ROOT, LocalCloud, local_cloud, trusting

DEVICE_ID = "demo-thermostat"


def step(number: int, text: str) -> None:
    print(f"\n==> {number}. {text}", flush=True)


def register_device(cloud: LocalCloud) -> str:
    from azure.iot.hub import IoTHubRegistryManager

    registry = IoTHubRegistryManager.from_connection_string(cloud.hub.registry_connection_string)
    device = registry.create_device_with_sas(DEVICE_ID, "", "", "enabled")
    key = device.authentication.symmetric_key.primary_key
    print(f"    registered '{device.device_id}' with IoTHubRegistryManager.create_device_with_sas (hub-generated key)")
    return f"HostName={cloud.hub.hostname};DeviceId={DEVICE_ID};SharedAccessKey={key}"


def start_simulator(cloud: LocalCloud, connection_string: str) -> tuple[subprocess.Popen[str], list[str]]:
    proxy = f"127.0.0.1:{cloud.hub.ports.connect_proxy}"
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "device_simulator.py"), "--count", "1", "--timeout", "40",
         "--http-proxy", proxy],
        env={**_env(cloud), "DEVICE_CONNECTION_STRING": connection_string},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    lines: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            print("    " + line.rstrip(), flush=True)

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def _env(cloud: LocalCloud) -> dict[str, str]:
    import os

    return {**os.environ, "SSL_CERT_FILE": str(cloud.hub.ca_bundle), "PYTHONUNBUFFERED": "1"}


def read_outcome(cloud: LocalCloud, message_id: str, timeout_s: float = 40) -> ReceivedOutcome:
    reader = OutcomeReader(cloud.bus.connection_string)
    try:
        reader.wait_for(lambda seen: any(o.correlation_id == message_id for o in seen), timeout_s, "the outcome")
    finally:
        reader.close()
    return reader.for_message(message_id)[0]


def redact_code(url: str) -> str:
    """A status URL as printed: the function key it carries is masked."""
    return re.sub(r"([?&]code=)[^&\"]+", r"\1***", url)


def poll_status(location: str, timeout_s: float = 40) -> dict[str, Any]:
    """GET the status URL until 200, honouring Retry-After (at most a second apart here)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(location, timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
            if response.status == 200:
                return body
            wait = float(response.headers.get("Retry-After", "1"))
        print(f"    {response.status} pending: {body.get('note', '')}")
        if time.monotonic() > deadline:
            return body
        time.sleep(min(wait, 1.0))


def main(_argv: list[str]) -> int:
    started = time.monotonic()
    step(1, "Starting the local cloud: IoT Hub emulator, Service Bus emulator, Azurite, Functions host")
    with tempfile.TemporaryDirectory(prefix="c2d-demo-") as work, local_cloud(
        Path(work), hub_limits={"feedback_interval_s": 1.0}
    ) as cloud, trusting(cloud.hub.ca_bundle):
        print(f"    Functions host {cloud.host.base_url} running {', '.join(cloud.host.status['functions'])}")
        print(f"    IoT Hub emulator AMQPS :{cloud.hub.ports.amqp}, MQTTS :{cloud.hub.ports.mqtt}, "
              f"HTTPS :{cloud.hub.ports.https}; Service Bus emulator AMQP :{cloud.bus.amqp_port}")

        step(2, f"Registering device '{DEVICE_ID}'")
        device_connection = register_device(cloud)

        step(3, "Starting the device simulator (MQTT, azure-iot-device)")
        simulator, lines = start_simulator(cloud, device_connection)
        wait_until(lambda: any("connected" in line for line in lines), 30, "the device to connect")

        step(4, f"POST /api/devices/{DEVICE_ID}/messages")
        request = {
            "payload": {"setpoint": 21.5}, "correlationId": "demo-job-1",
            "properties": {"priority": "high", "x-workflow-run-id": "demo-run-1"},
        }
        print(f"    request:  {json.dumps(request)}")
        status, headers, body = cloud.post(f"/api/devices/{DEVICE_ID}/messages", request)
        print(f"    response: {status} {redact_code(json.dumps(body))}")
        location = headers.get("Location", "")
        print(f"    Location: {redact_code(location)}  Retry-After: {headers.get('Retry-After')}")
        if status != 202:
            print("demo failed: SendC2D did not accept the message", file=sys.stderr)
            return 1

        step(5, "The device receives it and completes it")
        simulator.wait(45)
        if simulator.returncode != 0:
            print("demo failed: the device did not receive the message", file=sys.stderr)
            return 1

        step(6, "FeedbackProcessor publishes the outcome; reading it from subscription c2d-outcomes/all")
        outcome = read_outcome(cloud, body["messageId"])
        print(f"    outcome:  subject={outcome.subject} message_id={outcome.message_id}")
        print(f"              application_properties={json.dumps(outcome.properties)}")
        print(f"              body={json.dumps(outcome.body)}")
        if outcome.subject != "Success":
            print("demo failed: the outcome is not Success", file=sys.stderr)
            return 1

        step(7, "Polling the status URL (Location) until it answers 200, as a Logic App would")
        final = poll_status(location)
        print(f"    status:   {json.dumps(final)}")
        if final.get("status") != "Success":
            print("demo failed: the status URL did not report Success", file=sys.stderr)
            return 1

        step(8, "Stopping everything the demo started")
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s: request -> device -> Success outcome -> status 200.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
