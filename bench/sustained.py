"""Sustained load: a 10-minute-equivalent run of queue-triggered requests through the local Functions host,
checking that the worker's memory, the outcome lag and the queue backlog stay flat.

"10-minute-equivalent": a deployment handling `PRODUCTION_RATE` = 2 queued requests/s (7,200 an hour) takes
1,200 requests in 10 minutes. The benchmark enqueues the same 1,200 requests `COMPRESSION` = 4 times faster
(8 requests/s for 150 s), each on the Storage queue `c2d-requests` that SendC2DQueue listens to, with
ack=full, spread over `DEVICES` simulated MQTT devices (azure-iot-device) that complete every message. So
feedback and outcomes flow the whole time: the app's work per request is the same, only the idle time
between requests is taken out. The hub's feedback flush interval (0.2 s) and the FeedbackProcessor timer
(every second) are shortened too (Azure does not document its feedback interval; the example settings run
the timer every 10 s). 8/s is about what this 2-core machine sustains while shared: at 16-20/s
requests piled up on the Storage queue (enqueue -> device p95 grew from 3 s to 14 s in 30 s).

The run is cut into `WINDOWS` = 6 windows of equal request counts (200 requests, 25 s each, 100 s at the
real rate). Per window: the worker's RSS (median of 1 s samples of the worker process, pid from the host's
status), the outcome lag from IoT Hub writing the feedback record (`enqueuedTimeUtc`) to the outcome
received on the subscription, and the wait from enqueueing a request to the device receiving it (a backlog
on the Storage queue does not show in the outcome lag). Goals: RSS grows < 10 % from the first window to
the last; the last window's p95 outcome lag is within 50 % of the first window's; the p95 queue wait grows
by at most 1 s. A warm-up of 40 requests, whose outcomes are awaited first, runs every function once (the
first FeedbackProcessor run adds a one-time ~9 MiB; see bench/memory.py); it is not in the windows.
"""

from __future__ import annotations

import base64
import contextlib
import json
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from bench.common import Figure, measured
from bench.latency import Device, Listener, epoch, percentile
from bench.memory import rss_kib
from localcloud.cloud import LocalCloud
from localcloud.functions_host.launcher import wait_until
from localcloud.outcome_reader import ReceivedOutcome
from localcloud.stack import local_cloud, trusting

PRODUCTION_RATE = 2.0  # queued requests/s of the deployment this stands for
COMPRESSION = 4.0
MINUTES = 10
DEVICES = 4
WINDOWS = 6
WARM_UP = 40
HUB_FLUSH_S = 0.2
SCHEDULE = "*/1 * * * * *"  # every second
RSS_GOAL_PERCENT = 10.0
LAG_GOAL_PERCENT = 50.0
BACKLOG_GOAL_MS = 1000.0
QUEUE = "c2d-requests"
ENQUEUERS = 4


class RssSampler:
    """The worker's RSS once a second, on a thread, with the time of each sample."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        self.samples: list[tuple[float, int]] = []
        self._pid, self._every_s = pid, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self._every_s):
            self.samples.append((time.time(), rss_kib(self._pid)))

    def between(self, start: float, end: float) -> list[int]:
        return [kib for at, kib in self.samples if start <= at < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def queue_client(cloud: LocalCloud) -> QueueClient:
    client = QueueClient.from_connection_string(cloud.storage.connection_string, QUEUE)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def enqueue(client: QueueClient, message_id: str, device_id: str) -> None:
    request = {"deviceId": device_id, "messageId": message_id, "payload": {"id": message_id}, "ack": "full"}
    client.send_message(base64.b64encode(json.dumps(request).encode()).decode())  # host.json: base64


def enqueue_paced(client: QueueClient, ids: list[str], devices: list[str], rate: float) -> list[float]:
    """Enqueue `ids` at `rate` per second (round-robin over devices, a few calls in flight so one slow call
    does not hold the pace back); returns when each was enqueued."""
    started = time.time() + 0.1
    times = [0.0] * len(ids)

    def one(index: int) -> None:
        delay = started + index / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        enqueue(client, ids[index], devices[index % len(devices)])
        times[index] = time.time()

    with ThreadPoolExecutor(ENQUEUERS) as pool:
        list(pool.map(one, range(len(ids))))
    return times


def drain_runs(host_output: str) -> list[dict[str, object]]:
    """FeedbackProcessor's `c2d.feedback-drain` log events (one per run), from the host's output."""
    marker = "c2d.feedback-drain "
    return [json.loads(line.split(marker, 1)[1]) for line in host_output.splitlines() if marker in line]


def lag_s(outcome: ReceivedOutcome) -> float:
    """Feedback record written by IoT Hub -> outcome received on the subscription."""
    return outcome.received_at - epoch(outcome.properties["enqueuedTimeUtc"])


def wait_for_outcomes(listener: Listener, ids: list[str], timeout_s: float) -> None:
    wait_until(lambda: all(m in listener.by_message for m in ids), timeout_s, f"outcomes of {len(ids)} requests")


def run(work_dir: Path, production_rate: float = PRODUCTION_RATE, compression: float = COMPRESSION) -> list[Figure]:
    total, rate = round(production_rate * 60 * MINUTES), production_rate * compression
    devices = [f"sustained-{i}" for i in range(DEVICES)]
    with (
        local_cloud(
            work_dir / "sustained",
            devices=[{"device_id": d} for d in devices],
            hub_limits={"feedback_interval_s": HUB_FLUSH_S, "queue_depth": 200},
            settings={"FEEDBACK_SCHEDULE": SCHEDULE, "FEEDBACK_IDLE_WAIT_SECONDS": "0.2"},
        ) as cloud,
        trusting(cloud.hub.ca_bundle),
    ):
        clients = [Device(cloud, d) for d in devices]
        listener, queue = Listener(cloud), queue_client(cloud)
        try:
            warm = [f"warm-{i}" for i in range(WARM_UP)]
            enqueue_paced(queue, warm, devices, rate)
            wait_for_outcomes(listener, warm, 120)
            sampler = RssSampler(int(cloud.host.host_status()["workerPid"]))
            ids = [f"load-{i:05d}" for i in range(total)]
            enqueued = enqueue_paced(queue, ids, devices, rate)
            wait_for_outcomes(listener, ids, 180)
            sampler.close()
            deliveries = cloud.hub.admin.feedback_deliveries()
            redelivered = [d for d in deliveries if d["deliveryCount"] > 1]
            runs = drain_runs(cloud.host.output())
        finally:
            listener.close()
            queue.close()
            for client in clients:
                client.close()
    outcomes = [listener.by_message[m] for m in ids]
    delivered = {m: at for client in clients for m, at in client.received.items()}
    waits = [delivered[m] - at for m, at in zip(ids, enqueued, strict=True)]
    result = figures(windows(outcomes, enqueued, waits, sampler), total, rate, production_rate, compression)
    result.append(Figure(
        "sustained", "feedback messages delivered more than once", len(redelivered), "",
        detail={"why": "delivered to a FeedbackProcessor run and not settled by it (e.g. prefetched as the run "
                       "closed its link): IoT Hub delivers it again, and drops it after maxDeliveryCount (10)",
                "deliveries": len(deliveries), "feedback messages": len({d["messageId"] for d in deliveries}),
                "records": sum(len(d["originalMessageIds"]) for d in redelivered),
                "FeedbackProcessor runs by how they stopped": dict(Counter(r.get("stopped", "") for r in runs))},
    ))
    return result


def windows(outcomes: list[ReceivedOutcome], enqueued: list[float], waits: list[float],
            sampler: RssSampler) -> list[dict[str, float]]:
    """Per window of equal request counts: its time span, RSS (median MiB), the wait from enqueueing to the
    device (a backlog on the Storage queue would show here) and the outcome lag."""
    size = len(outcomes) // WINDOWS
    result = []
    for w in range(WINDOWS):
        chunk = slice(w * size, (w + 1) * size if w < WINDOWS - 1 else len(outcomes))
        start = enqueued[chunk][0]
        end = enqueued[(w + 1) * size] if w < WINDOWS - 1 else enqueued[-1] + 1.0
        lags = [lag_s(o) for o in outcomes[chunk]]
        rss = sampler.between(start, end)
        result.append({
            "from_s": round(start - enqueued[0], 1),
            "requests": len(lags),
            "enqueued_per_s": round(len(lags) / max(end - start, 1e-3), 1),
            "enqueue_to_device_p95_ms": round(1000 * percentile(waits[chunk], 95)),
            "rss_mib": round(statistics.median(rss) / 1024, 2) if rss else float("nan"),
            "lag_p50_ms": round(1000 * percentile(lags, 50)),
            "lag_p95_ms": round(1000 * percentile(lags, 95)),
            "lag_max_ms": round(1000 * max(lags)),
            "on_topic_p95_ms": round(1000 * percentile(
                [o.enqueued_at - epoch(o.properties["enqueuedTimeUtc"]) for o in outcomes[chunk]], 95)),
        })
    return result


def figures(series: list[dict[str, float]], total: int, rate: float, production_rate: float,
            compression: float) -> list[Figure]:
    first, last = series[0], series[-1]
    achieved = total / sum(w["requests"] / w["enqueued_per_s"] for w in series)
    rss_growth = 100 * (last["rss_mib"] - first["rss_mib"]) / first["rss_mib"]
    lag_growth = 100 * (last["lag_p95_ms"] - first["lag_p95_ms"]) / first["lag_p95_ms"]
    equivalent = (f"{total:,} queued requests = {MINUTES} min at {production_rate:g}/s, run at {rate:g}/s "
                  f"({compression:g}x compressed), ack=full, {DEVICES} MQTT devices")
    detail = {"run": equivalent, "achieved_per_s": round(achieved, 1), "hub feedback flush": f"{HUB_FLUSH_S:g} s",
              "FeedbackProcessor timer": "every 1 s",
              "windows": series}
    return [
        measured("sustained", f"worker RSS growth, first -> last of {WINDOWS} windows", [rss_growth], "%",
                 at_most=RSS_GOAL_PERCENT, detail=detail),
        measured("sustained", f"outcome lag p95 growth, first -> last of {WINDOWS} windows", [lag_growth], "%",
                 at_most=LAG_GOAL_PERCENT, detail=detail),
        Figure("sustained", "outcome lag p95, last window (record -> outcome received)", last["lag_p95_ms"], "ms",
               detail={"by_window_ms": [w["lag_p95_ms"] for w in series]}),
        Figure("sustained", "worker RSS, last window", last["rss_mib"], "MiB",
               detail={"by_window_mib": [w["rss_mib"] for w in series]}),
        measured("sustained", f"queue backlog: enqueue -> device p95 growth, first -> last of {WINDOWS} windows",
                 [last["enqueue_to_device_p95_ms"] - first["enqueue_to_device_p95_ms"]], "ms",
                 at_most=BACKLOG_GOAL_MS,
                 detail={"by_window_ms": [w["enqueue_to_device_p95_ms"] for w in series],
                         "why": "outcome lag starts at the feedback record: requests piling up on the Storage "
                                "queue would not show there"}),
        Figure("sustained", "requests enqueued per second, achieved", achieved, "req/s",
               detail={"asked": rate, "by_window": [w["enqueued_per_s"] for w in series]}),
    ]
