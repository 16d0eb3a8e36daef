"""End-to-end latency through the local Functions host: HTTP POST to the outcome on the subscription, for
200 messages, with a short feedback flush interval; p50/p95/p99 and the share of each stage.

Stages (timestamps from this one machine's clock):
  send      POST -> 202 (validation, AMQP send, IoT Hub accept)
  deliver   202 -> the device receives it (MQTT)
  feedback  device receipt -> IoT Hub's feedback record (completion, record written)
  publish   feedback record -> outcome read from the subscription (hub flush interval, FeedbackProcessor
            timer, publish, subscriber receive)
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime
from pathlib import Path

from azure.iot.device import IoTHubDeviceClient, ProxyOptions

from bench.common import Figure
from localcloud.functions_host.launcher import wait_until
from localcloud.outcome_reader import OutcomeReader
from localcloud.stack import local_cloud, trusting

DEVICE = "latency-1"
STAGES = ("send", "deliver", "feedback", "publish")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run(work_dir: Path, messages: int = 200, interval_s: float = 0.05) -> list[Figure]:
    with (
        local_cloud(
            work_dir / "latency",
            devices=[{"device_id": DEVICE}],
            hub_limits={"feedback_interval_s": 0.2, "queue_depth": messages + 10},
            settings={"FEEDBACK_SCHEDULE": "*/1 * * * * *", "FEEDBACK_IDLE_WAIT_SECONDS": "0.2"},
        ) as cloud,
        trusting(cloud.hub.ca_bundle),
    ):
        received: dict[str, float] = {}
        device = IoTHubDeviceClient.create_from_connection_string(
            cloud.hub.device_connection_string(DEVICE), proxy_options=ProxyOptions(**cloud.hub.device_proxy_options())
        )
        device.on_message_received = lambda message: received.setdefault(message.message_id, time.time())
        device.connect()
        reader = OutcomeReader(cloud.bus.connection_string)
        reader.poll(0.2)
        arrivals: dict[str, float] = {}
        sent: dict[str, tuple[float, float]] = {}
        stop = threading.Event()

        def listen() -> None:  # outcomes are timed as they arrive, while sending goes on
            while not stop.is_set():
                for outcome in reader.poll(0.2):
                    arrivals.setdefault(outcome.correlation_id, time.time())

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        try:
            for _ in range(messages):
                start = time.time()
                request = {"payload": {"n": 1}, "ack": "positive"}
                status, _, body = cloud.post(f"/api/devices/{DEVICE}/messages", request)
                if status != 202:
                    raise RuntimeError(f"send failed: {status} {body}")
                sent[body["messageId"]] = (start, time.time())
                time.sleep(interval_s)
            wait_until(lambda: set(sent) <= set(arrivals), 120, "every outcome")
        finally:
            stop.set()
            listener.join(10)
            reader.close()
            device.shutdown()

    records = {o.correlation_id: o for o in reader.seen}
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    totals = []
    for message_id, (start, accepted) in sent.items():
        recorded = _epoch(records[message_id].properties["enqueuedTimeUtc"])
        delivered = received[message_id]
        stages["send"].append(accepted - start)
        stages["deliver"].append(max(0.0, delivered - accepted))  # the device may see it before the 202
        stages["feedback"].append(max(0.0, recorded - delivered))
        stages["publish"].append(arrivals[message_id] - recorded)
        totals.append(arrivals[message_id] - start)
    mean_total = statistics.fmean(totals)
    figures = [Figure("e2e latency", f"p{q}", _percentile(totals, q) * 1000, "ms", detail={"messages": messages})
               for q in (50, 95, 99)]
    figures += [
        Figure("e2e latency", f"share: {stage}", 100 * statistics.fmean(values) / mean_total, "%",
               detail={"mean_ms": round(1000 * statistics.fmean(values), 1)})
        for stage, values in stages.items()
    ]
    return figures
