"""Feedback drain throughput: records/s through FeedbackProcessor with a backlog of 20,000 feedback records.

FeedbackProcessor is a singleton timer, so this one rate caps the whole fleet's outcome flow (a 10-unit S3 hub
sends at most 833 C2D messages/s). Goal: >= 2,000 records/s on the worst of 3 runs.

Host runs (the figure with the goal): the local Functions host runs FeedbackProcessor on its production
schedule and settings (`*/10 * * * * *`, the app's defaults for drain time, idle wait and batch size) in the
real Python worker, against the IoT Hub emulator's feedback endpoint, the Service Bus emulator's topic and
Azurite's table. Each run:
  1. writes the status rows of 20 fan-out requests of 1,000 devices with the send path's own code
     (`StatusStore.record_sent`), as after real sends;
  2. right after a FeedbackProcessor run ends, queues one feedback record per message on the hub
     (`POST /admin/feedback`: 313 feedback messages of up to 64 records, as IoT Hub batches them);
  3. times from the next FeedbackProcessor run starting (the host's own log line) until the hub counts all
     20,000 records accepted (polled every 50 ms); the timer's gaps between runs are part of the time.
Received/published/accepted come from the hub's counters, the topic's `all` subscription and the runs'
`c2d.feedback-drain` log lines, which also carry each stage's time (receive, status lookup, publish, table
write, accept); what is left is the timer's gaps, each run's setup, parsing, building outcomes and logging.

In-process runs: `drain_feedback` called directly with the real adapters on emulators of their own (no host,
no worker, no log output), so the host's and the timer's share is visible. One more in-process run, informative,
drains 1,000 records of single sends: each is its own table partition, so each costs one status read and one
write of its own (fan-out outcomes are a few packed rows per 1,000 records).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Figure, measured
from c2d.config import FeedbackSettings, IoTHubSettings, ServiceBusSettings, TableSettings
from c2d.feedback_drain import drain_feedback
from c2d.iothub import FeedbackReceiver
from c2d.messages import C2DMessage, SendResult
from c2d.servicebus import OutcomePublisher
from c2d.status_store import SentRequest, StatusStore, fan_out_message_id
from c2d.tables import Table
from localcloud.azurite import Azurite, azurite
from localcloud.functions_host.launcher import wait_until
from localcloud.iothub.launcher import IoTHubProcess, running_iothub
from localcloud.servicebus.launcher import ServiceBusProcess, running_servicebus
from localcloud.stack import local_cloud

BACKLOG = 20_000
DEVICES_PER_REQUEST = 1_000
#: The informative single-send figure: every record is one table read and one write of its own partition.
SINGLES = 1_000
RUNS = 3
GOAL = 2_000.0
TOPIC = "c2d-outcomes"
STAGES = ("receive", "lookup", "publish", "record", "settle")
#: The app's production timer and its defaults for everything else (blank = the app's default).
HOST_SETTINGS = {
    "FEEDBACK_SCHEDULE": "*/10 * * * * *",
    "FEEDBACK_MAX_DRAIN_SECONDS": "",
    "FEEDBACK_IDLE_WAIT_SECONDS": "",
    "FEEDBACK_BATCH_SIZE": "",
}
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\] (.*)$")
_DRAIN_LINE = re.compile(r"c2d\.feedback-drain (\{.*\})")


@dataclass
class Run:
    seconds: float
    records: int
    published: int
    accepted_messages: int
    stages_s: dict[str, float]
    processor_runs: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def _seed(store: StatusStore, run: int) -> list[tuple[str, str]]:
    """Status rows of fan-out requests covering BACKLOG messages, written as the send path writes them."""
    now = datetime.now(UTC)
    pairs: list[tuple[str, str]] = []
    for request in range(BACKLOG // DEVICES_PER_REQUEST):
        request_id = uuid.uuid4().hex
        messages = [
            C2DMessage(f"drain-{i:05d}", fan_out_message_id(request_id, i), b'{"n":1}', ack="full",
                       expires_at=now + timedelta(hours=1), correlation_id=f"bench-{run}-{request}")
            for i in range(DEVICES_PER_REQUEST)
        ]
        store.record_sent(
            SentRequest(request_id, "full", now, now + timedelta(hours=1), f"bench-{run}-{request}",
                        {"x-bench": "drain"}, messages, [SendResult(m.device_id, m.message_id) for m in messages])
        )
        pairs += [(m.device_id, m.message_id) for m in messages]
    return pairs


def _seed_singles(store: StatusStore, run: int, count: int) -> list[tuple[str, str]]:
    """Status rows of `count` single sends (one partition each, as POST /api/devices/{id}/messages leaves them)."""
    now = datetime.now(UTC)

    def one(i: int) -> tuple[str, str]:
        message = C2DMessage(f"single-{i:05d}", f"single-{run}-{uuid.uuid4().hex}", b'{"n":1}', ack="full",
                             expires_at=now + timedelta(hours=1), correlation_id=f"bench-{run}-{i}")
        store.record_sent(SentRequest(uuid.uuid4().hex, "full", now, now + timedelta(hours=1), message.correlation_id,
                                      {}, [message], [SendResult(message.device_id, message.message_id)]))
        return message.device_id, message.message_id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def _subscription_count(bus: ServiceBusProcess) -> int:
    return int(bus.admin.entities()["topics"][TOPIC]["subscriptions"]["all"]["available"])


def _lines(output: str) -> Iterator[tuple[float, str]]:
    for line in output.splitlines():
        match = _STAMP.match(line)
        if match:
            yield datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp(), match.group(2)


def _stage_sums(reports: list[dict[str, Any]]) -> dict[str, float]:
    """Each stage's seconds over the drain reports, less the idle wait that ends a drained run (it comes after
    the last accept, outside the timed span)."""
    sums = {stage: sum(float(r.get(f"{stage}_s", 0.0)) for r in reports) for stage in STAGES}
    idle = FeedbackSettings().idle_wait_s * sum(1 for r in reports if r.get("stopped") == "drained")
    sums["receive"] = max(0.0, sums["receive"] - idle)
    return sums


def _runs_ended(text: str) -> bool:
    started = text.count("Executing 'Functions.FeedbackProcessor'")
    return started > 0 and text.count("Executed 'Functions.FeedbackProcessor'") >= started


def _host_run(
    cloud_hub: IoTHubProcess, bus: ServiceBusProcess, output: Callable[[], str], store: StatusStore, run: int
) -> Run:
    pairs = _seed(store, run)
    bus.admin.reset()
    base = cloud_hub.admin.feedback_counts()["completed_records"]
    # Queue the backlog just after a run ended, so the next run is the first to see it.
    start_at = len(output())
    wait_until(lambda: "Executed 'Functions.FeedbackProcessor'" in output()[start_at:], 30, "a FeedbackProcessor run")
    queued_at = len(output())
    cloud_hub.admin.enqueue_feedback(pairs)
    wait_until(lambda: cloud_hub.admin.feedback_counts()["completed_records"] - base >= BACKLOG, 180,
               "the backlog to be accepted", interval=0.05)
    done = time.time()
    wait_until(lambda: _runs_ended(output()[queued_at:]), 60, "the last FeedbackProcessor run to end")
    lines = list(_lines(output()[queued_at:]))
    started = next(t for t, text in lines if text.startswith("Executing 'Functions.FeedbackProcessor'"))
    reports = [json.loads(m.group(1)) for _, text in lines if (m := _DRAIN_LINE.search(text))]
    counts = cloud_hub.admin.feedback_counts()
    return Run(done - started, counts["completed_records"] - base, _subscription_count(bus),
               sum(int(r["accepted"]) for r in reports), _stage_sums(reports),
               sum(1 for r in reports if r["received"]))


def _in_process_run(hub: IoTHubProcess, bus: ServiceBusProcess, storage: Azurite, run: int,
                    singles: int = 0) -> Run:
    store = StatusStore(Table(TableSettings(connection_string=storage.connection_string)))
    pairs = _seed_singles(store, run, singles) if singles else _seed(store, run)
    bus.admin.reset()
    base = hub.admin.feedback_counts()["completed_records"]
    hub.admin.enqueue_feedback(pairs)
    hub_settings = IoTHubSettings.from_connection_string(hub.service_connection_string, amqp_port=hub.ports.amqp)
    receiver = FeedbackReceiver(hub_settings, prefetch=FeedbackSettings().batch_size)
    publisher = OutcomePublisher(ServiceBusSettings(TOPIC, connection_string=bus.connection_string, retry_total=0))
    settings = FeedbackSettings(max_drain_s=600.0)
    try:
        started = time.time()
        report = drain_feedback(receiver, publisher, store, settings)
        # The drain ends after one idle wait on the empty endpoint: that wait is not drain time.
        seconds = time.time() - started - settings.idle_wait_s
    finally:
        publisher.close()
        receiver.close()
    counts = hub.admin.feedback_counts()
    stages = _stage_sums([vars(report)])
    return Run(seconds, counts["completed_records"] - base, _subscription_count(bus), report.accepted, stages, 1)


def _shares(runs: list[Run]) -> dict[str, float]:
    total = sum(r.seconds for r in runs)
    shares = {stage: round(100 * sum(r.stages_s[stage] for r in runs) / total, 1) for stage in STAGES}
    shares["other (parse, outcomes, logging, timer gaps)"] = round(100 - sum(shares.values()), 1)
    return shares


def _figures(label: str, runs: list[Run], goal: bool, backlog_override: bool = False) -> list[Figure]:
    rates = [r.rate for r in runs]
    detail: dict[str, object] = {
        "backlog_records": BACKLOG,
        "rates": [round(r) for r in rates],
        "seconds": [round(r.seconds, 2) for r in runs],
        "received_records": [r.records for r in runs],
        "published": [r.published for r in runs],
        "accepted_feedback_messages": [r.accepted_messages for r in runs],
        "processor_runs": [r.processor_runs for r in runs],
        "stage_share_percent": _shares(runs),
    }
    backlog = runs[0].records if backlog_override else BACKLOG
    detail["backlog_records"] = backlog
    for run in runs:
        if run.records != backlog or run.published != backlog:
            raise RuntimeError(f"{label}: {run.records} records accepted, {run.published} published, want {backlog}")
    figure = measured("feedback drain", f"{backlog:,} records, {label}", rates, "records/s",
                      at_least=GOAL if goal else None, detail=detail)
    shares = _shares(runs)
    return [figure, Figure("feedback drain", f"stage share, {label}",
                           shares["publish"], "% publish", detail={"stage_share_percent": shares})]


def run(work_dir: Path, runs: int = RUNS) -> list[Figure]:
    figures: list[Figure] = []
    with local_cloud(work_dir / "drain-host", settings=HOST_SETTINGS) as cloud:
        store = StatusStore(Table(TableSettings(connection_string=cloud.storage.connection_string)))
        host_runs = [_host_run(cloud.hub, cloud.bus, cloud.host.output, store, n) for n in range(runs)]
    figures += _figures("through the local Functions host (timer every 10 s)", host_runs, goal=True)
    with (
        running_iothub(work_dir / "drain-hub") as hub,
        running_servicebus(work_dir=work_dir / "drain-bus") as bus,
        azurite(location=work_dir / "drain-azurite") as storage,
        hub.use_in_process(),
    ):
        process_runs = [_in_process_run(hub, bus, storage, n) for n in range(runs)]
        single_runs = [_in_process_run(hub, bus, storage, runs, singles=SINGLES)]
    figures += _figures("drain_feedback in-process (no host, no log output)", process_runs, goal=False)
    figures += _figures("single sends (a partition each), in-process", single_runs, goal=False, backlog_override=True)
    return figures

