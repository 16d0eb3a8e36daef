"""Outcome publishing: feedback outcomes to the topic through the app's `OutcomePublisher` versus one
`send_messages` call per record, against the same Service Bus emulator in the same process: with no
added latency (the client's and the emulator's CPU is all that is measured) and with each send settled
5 ms late (a round trip to a namespace in the same region). For each latency, app and baseline run
alternately `RUNS` times; the speed-up is taken per pair of runs and its goal checked on the worst pair.

The publisher writes each outcome's AMQP sections itself into the SDK's batches (`c2d.outcome_wire`,
`c2d.servicebus_batches`). The other ways measured to get there are reported too (no goal, 0 ms, each
as a speed-up over a per-record baseline run in the same round) so the choice stays visible:
- "SDK batches": `to_service_bus_message` + `add_message` per outcome, the publisher before;
- "SDK batches, messages built untimed": the same with every `ServiceBusMessage` built beforehand
  (what building messages once, without copies, could save at best);
- "SDK batches, uamqp transport (TLS)": `uamqp_transport=True`, the SDK's C-based transport,
  over the emulator's AMQPS listener (the uamqp path needs TLS);
- "pre-encoded (the publisher now)": the app's way, on its own connection like the others;
- "pre-encoded, sent from a thread": the next batch filled while the previous one is sent;
- "pre-encoded, TLS": the app's way over AMQPS (real Service Bus is TLS-only), pyamqp transport.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageBatch, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from bench.common import RUNS, Figure, measured
from c2d.config import ServiceBusSettings
from c2d.feedback import FeedbackRecord
from c2d.outcomes import Outcome, outcome_from_feedback
from c2d.servicebus import OutcomePublisher, to_service_bus_message
from c2d.servicebus_batches import encoded_batches
from localcloud.servicebus.launcher import ServiceBusProcess, running_servicebus
from localcloud.trust import trusting

GOAL = 10.0
DELAYS_MS = (0, 5)
TOPIC = "c2d-outcomes"
#: Records per baseline run (an app run publishes `records`, 10,000). The baseline pays one round trip
#: per record: fewer records give its rate without waiting a minute (at 5 ms, 600 take ~5 s).
BASELINE_RECORDS = {0: 2_000, 5: 600}
OPTION_RECORDS = 2_000
OPTION_RUNS = 2


def _outcomes(prefix: str, count: int) -> list[Outcome]:
    return [
        outcome_from_feedback(
            FeedbackRecord(f"{prefix}-{i}", f"dev-{i % 1000}", "Success", "Success", "2026-11-26T10:00:00Z", "1")
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class Timed:
    """One timed publishing run: its rate and the CPU each side spent per record (µs)."""

    rate: float
    client_cpu_us: float
    emulator_cpu_us: float


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(bus: ServiceBusProcess, count: int, publish: Callable[[], object]) -> Timed:
    emulator_before, client_before = _process_cpu_s(bus.process.pid), time.process_time()
    start = time.perf_counter()
    publish()
    elapsed = time.perf_counter() - start
    client = time.process_time() - client_before
    emulator = _process_cpu_s(bus.process.pid) - emulator_before
    return Timed(count / elapsed, client / count * 1e6, emulator / count * 1e6)


def _app(bus: ServiceBusProcess, outcomes: list[Outcome]) -> Timed:
    settings = ServiceBusSettings(topic=TOPIC, connection_string=bus.connection_string)
    with OutcomePublisher(settings) as publisher:
        publisher.publish(outcomes[:1])  # connect first: measure publishing, not login
        return _timed(bus, len(outcomes) - 1, lambda: publisher.publish(outcomes[1:]))


def _warm(sender: ServiceBusSender, outcome: Outcome) -> None:
    sender.send_messages(to_service_bus_message(outcome))


def _baseline(bus: ServiceBusProcess, outcomes: list[Outcome]) -> Timed:
    with ServiceBusClient.from_connection_string(bus.connection_string) as client, client.get_topic_sender(
        TOPIC
    ) as sender:
        _warm(sender, outcomes[0])

        def one_by_one() -> None:
            for outcome in outcomes[1:]:
                sender.send_messages(to_service_bus_message(outcome))

        return _timed(bus, len(outcomes) - 1, one_by_one)


def _sdk_batches(sender: ServiceBusSender, messages: Sequence[ServiceBusMessage]) -> None:
    """The publisher before: the SDK encodes each message into as few batches as fit."""
    batch = sender.create_message_batch()
    for message in messages:
        try:
            batch.add_message(message)
        except MessageSizeExceededError:
            sender.send_messages(batch)
            batch = sender.create_message_batch()
            batch.add_message(message)
    if len(batch):
        sender.send_messages(batch)


def _threaded(sender: ServiceBusSender, outcomes: Sequence[Outcome]) -> None:
    """Encoded batches sent by a second thread while this one fills the next."""
    full: queue.Queue[ServiceBusMessageBatch | None] = queue.Queue()
    errors: list[AzureError | OSError] = []

    def send() -> None:
        while (batch := full.get()) is not None:
            try:
                sender.send_messages(batch)
            except (AzureError, OSError) as error:  # raised to the caller below
                errors.append(error)

    worker = threading.Thread(target=send)
    worker.start()
    try:
        for batch in encoded_batches(sender, outcomes, to_service_bus_message):
            full.put(batch)
    finally:
        full.put(None)
        worker.join()
    if errors:
        raise errors[0]


def _option(bus: ServiceBusProcess, client_factory: Callable[[], ServiceBusClient], prefix: str,
            publish: Callable[[ServiceBusSender, list[Outcome]], Callable[[], object]]) -> float:
    outcomes = _outcomes(prefix, OPTION_RECORDS + 1)
    with client_factory() as client, client.get_topic_sender(TOPIC) as sender:
        _warm(sender, outcomes[0])
        return _timed(bus, OPTION_RECORDS, publish(sender, outcomes[1:])).rate


def _options(bus: ServiceBusProcess) -> list[Figure]:
    def plain() -> ServiceBusClient:
        return ServiceBusClient.from_connection_string(bus.connection_string)

    def tls(uamqp: bool) -> Callable[[], ServiceBusClient]:
        return lambda: ServiceBusClient.from_connection_string(
            bus.tls_connection_string, **bus.tls_client_kwargs(uamqp_transport=uamqp)
        )

    def stock(sender: ServiceBusSender, outcomes: list[Outcome]) -> Callable[[], object]:
        return lambda: _sdk_batches(sender, [to_service_bus_message(o) for o in outcomes])

    def prebuilt(sender: ServiceBusSender, outcomes: list[Outcome]) -> Callable[[], object]:
        messages = [to_service_bus_message(o) for o in outcomes]
        return lambda: _sdk_batches(sender, messages)

    def encoded(sender: ServiceBusSender, outcomes: list[Outcome]) -> Callable[[], object]:
        def send_all() -> None:
            for batch in encoded_batches(sender, outcomes, to_service_bus_message):
                sender.send_messages(batch)

        return send_all

    def threaded(sender: ServiceBusSender, outcomes: list[Outcome]) -> Callable[[], object]:
        return lambda: _threaded(sender, outcomes)

    options: dict[str, tuple[Callable[[], ServiceBusClient], Any]] = {
        "SDK batches (the publisher before)": (plain, stock),
        "SDK batches, messages built untimed": (plain, prebuilt),
        "SDK batches, uamqp transport (TLS)": (tls(True), stock),
        "pre-encoded (the publisher now)": (plain, encoded),
        "pre-encoded, sent from a thread": (plain, threaded),
        "pre-encoded, TLS (pyamqp)": (tls(False), encoded),
    }
    rates: dict[str, list[float]] = {name: [] for name in options}
    ratios: dict[str, list[float]] = {name: [] for name in options}
    baselines: list[float] = []
    assert bus.certs is not None
    with trusting(bus.certs.ca_bundle):  # uamqp reads the CA from SSL_CERT_FILE
        for run in range(OPTION_RUNS):
            # Each round has its own baseline: ratios stay comparable however the machine's load drifts.
            baselines.append(_baseline(bus, _outcomes(f"optbase-{run}", BASELINE_RECORDS[0] + 1)).rate)
            for index, (name, (factory, publish)) in enumerate(options.items()):
                rates[name].append(_option(bus, factory, f"opt{index}-{run}", publish))
                ratios[name].append(rates[name][-1] / baselines[-1])
    return [
        measured("publish", f"option at 0 ms: {name}", ratios[name], "x",
                 detail={"records": OPTION_RECORDS, "outcomes_per_s": [round(r) for r in rates[name]],
                         "baseline_per_s": [round(b) for b in baselines]})
        for name in options
    ]  # fmt: skip


def run(_work_dir: Path, records: int = 10_000, runs: int = RUNS) -> list[Figure]:
    figures: list[Figure] = []
    with running_servicebus(amqps=True) as bus:
        for delay_ms in DELAYS_MS:
            bus.admin.disposition_delay(delay_ms)
            app: list[Timed] = []
            baseline: list[Timed] = []
            for run_index in range(runs):
                app_outcomes = _outcomes(f"app{delay_ms}-{run_index}", records + 1)
                baseline_outcomes = _outcomes(f"base{delay_ms}-{run_index}", BASELINE_RECORDS[delay_ms] + 1)
                if run_index % 2:  # alternate which goes first, so a drift in load hits both sides
                    baseline.append(_baseline(bus, baseline_outcomes))
                    app.append(_app(bus, app_outcomes))
                else:
                    app.append(_app(bus, app_outcomes))
                    baseline.append(_baseline(bus, baseline_outcomes))
            ratios = [a.rate / b.rate for a, b in zip(app, baseline, strict=True)]
            detail: dict[str, object] = {
                "records": records, "baseline_records": BASELINE_RECORDS[delay_ms],
                "app_client_cpu_us_per_record": [round(t.client_cpu_us) for t in app],
                "app_emulator_cpu_us_per_record": [round(t.emulator_cpu_us) for t in app],
                "baseline_client_cpu_us_per_record": [round(t.client_cpu_us) for t in baseline],
                "baseline_emulator_cpu_us_per_record": [round(t.emulator_cpu_us) for t in baseline],
            }
            figures += [
                measured("publish", f"OutcomePublisher, {delay_ms} ms", [t.rate for t in app], "outcomes/s",
                         detail=detail),
                measured("publish", f"send_messages per record, {delay_ms} ms", [t.rate for t in baseline],
                         "outcomes/s", detail=detail),
                measured("publish", f"speed-up at {delay_ms} ms", ratios, "x", at_least=GOAL, detail=detail),
            ]
            if delay_ms == 0:  # what bounds the 0 ms ratio: the emulator's CPU per outcome, not the app's
                figures += [
                    measured("publish", "OutcomePublisher CPU per outcome, 0 ms", [t.client_cpu_us for t in app],
                             "µs"),
                    measured("publish", "emulator CPU per outcome under OutcomePublisher, 0 ms",
                             [t.emulator_cpu_us for t in app], "µs"),
                    measured("publish", "client + emulator CPU per record, per-record sends, 0 ms",
                             [t.client_cpu_us + t.emulator_cpu_us for t in baseline], "µs"),
                ]  # fmt: skip
        bus.admin.disposition_delay(0)
        figures += _options(bus)
    return figures
