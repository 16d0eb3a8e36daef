"""Fan-out throughput: 1,000 devices, one message each, through the app's pipelined `C2DSender` versus
the stock `IoTHubRegistryManager.send_c2d_message` loop, against the same IoT Hub emulator in the same
run, with no added latency and with 20 ms per disposition (what a round trip to a real hub costs)."""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path

from bench.common import Figure
from c2d.config import IoTHubSettings
from c2d.iothub import C2DSender
from c2d.messages import C2DMessage
from localcloud.iothub.launcher import IoTHubProcess, running_iothub
from localcloud.stack import trusting

GOALS = {0: 3.0, 20: 30.0}
#: Rounds per measurement (the median counts): one 1,000-message send takes ~0.1 s, so a single
#: round is at the mercy of whatever else the 2 cores are doing. The 20 ms baseline takes ~20 s a round.
ROUNDS = {"app": 5, "baseline": {0: 5, 20: 1}}


def _messages(devices: list[str]) -> list[C2DMessage]:
    return [C2DMessage(device_id=d, message_id=str(uuid.uuid4()), body=b'{"cmd":"ping"}', ack="none") for d in devices]


def _app(hub: IoTHubProcess, devices: list[str]) -> float:
    settings = IoTHubSettings.from_connection_string(hub.service_connection_string, amqp_port=hub.ports.amqp)
    with C2DSender(settings) as sender:
        assert sender.send_many(_messages(devices[:1]))[0].sent  # connect first: measure sending, not login
        start = time.perf_counter()
        results = sender.send_many(_messages(devices))
        elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.sent]
    if failed:
        raise RuntimeError(f"{len(failed)} app sends failed: {failed[0].error}")
    return len(devices) / elapsed


def _baseline(hub: IoTHubProcess, devices: list[str]) -> float:
    from azure.iot.hub import IoTHubRegistryManager

    with hub.use_in_process():  # the stock SDK dials uamqp's default port; point it at the emulator
        registry = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
        try:
            registry.send_c2d_message(devices[0], '{"cmd":"ping"}', {"iothub-ack": "none"})
            start = time.perf_counter()
            for device in devices:
                registry.send_c2d_message(device, '{"cmd":"ping"}', {"iothub-ack": "none"})
            elapsed = time.perf_counter() - start
        finally:
            registry.amqp_svc_client.disconnect_sync()
    return len(devices) / elapsed


def run(work_dir: Path, devices: int = 1000) -> list[Figure]:
    names = [f"bench-{i:04d}" for i in range(devices)]
    figures = []
    with running_iothub(
        work_dir / "fanout", extra_config={"devices": [{"device_id": d} for d in names]},
        limits={"feedback_interval_s": 3600},
    ) as hub, trusting(hub.ca_bundle):
        for delay_ms, goal in GOALS.items():
            app_rates, baseline_rates = [], []
            for _ in range(ROUNDS["app"]):
                hub.admin.reset()
                hub.admin.disposition_delay(delay_ms)
                app_rates.append(_app(hub, names))
            for _ in range(ROUNDS["baseline"][delay_ms]):
                hub.admin.reset()
                hub.admin.disposition_delay(delay_ms)
                baseline_rates.append(_baseline(hub, names))
            app, baseline = statistics.median(app_rates), statistics.median(baseline_rates)
            ratio = app / baseline
            detail = {"app_msgs_per_s": [round(r) for r in app_rates],
                      "baseline_msgs_per_s": [round(r, 1) for r in baseline_rates], "devices": devices}
            figures += [
                Figure("fan-out", f"C2DSender, {delay_ms} ms latency", app, "msg/s", detail=detail),
                Figure("fan-out", f"send_c2d_message loop, {delay_ms} ms", baseline, "msg/s", detail=detail),
                Figure("fan-out", f"speed-up at {delay_ms} ms", ratio, "x", f">= {goal:g}x", ratio >= goal, detail),
            ]
    return figures
