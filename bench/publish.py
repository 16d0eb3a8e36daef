"""Outcome publishing: 10,000 feedback records to the topic through the app's batching `OutcomePublisher`
versus one `send_messages` call per record, against the same Service Bus emulator in the same run: once
with no added latency, and once with each send settled 5 ms late (a round trip to a namespace in the
same region). With no latency both sides are bound by azure-servicebus's pure-Python AMQP encoding."""

from __future__ import annotations

import time
from pathlib import Path

from azure.servicebus import ServiceBusClient

from bench.common import Figure
from c2d.config import ServiceBusSettings
from c2d.feedback import FeedbackRecord
from c2d.outcomes import Outcome, outcome_from_feedback
from c2d.servicebus import OutcomePublisher, to_service_bus_message
from localcloud.servicebus.launcher import running_servicebus

GOAL = 10.0
DELAYS_MS = (0, 5)


def _outcomes(prefix: str, count: int) -> list[Outcome]:
    return [
        outcome_from_feedback(
            FeedbackRecord(f"{prefix}-{i}", f"dev-{i % 1000}", "Success", "Success", "2026-11-26T10:00:00Z", "1")
        )
        for i in range(count)
    ]


def _app(connection_string: str, outcomes: list[Outcome]) -> float:
    settings = ServiceBusSettings(topic="c2d-outcomes", connection_string=connection_string)
    with OutcomePublisher(settings) as publisher:
        publisher.publish(outcomes[:1])  # connect first: measure publishing, not login
        start = time.perf_counter()
        publisher.publish(outcomes[1:])
        elapsed = time.perf_counter() - start
    return (len(outcomes) - 1) / elapsed


def _baseline(connection_string: str, outcomes: list[Outcome]) -> float:
    with ServiceBusClient.from_connection_string(connection_string) as client, client.get_topic_sender(
        "c2d-outcomes"
    ) as sender:
        sender.send_messages(to_service_bus_message(outcomes[0]))
        start = time.perf_counter()
        for outcome in outcomes[1:]:
            sender.send_messages(to_service_bus_message(outcome))
        elapsed = time.perf_counter() - start
    return (len(outcomes) - 1) / elapsed


def run(_work_dir: Path, records: int = 10_000) -> list[Figure]:
    figures = []
    with running_servicebus() as bus:
        for delay_ms in DELAYS_MS:
            bus.admin.disposition_delay(delay_ms)
            app = _app(bus.connection_string, _outcomes(f"app{delay_ms}", records + 1))
            # One round trip per record: 1,000 of them give the rate without waiting a minute for 10,000.
            baseline_records = records if delay_ms == 0 else min(records, 1000)
            baseline = _baseline(bus.connection_string, _outcomes(f"base{delay_ms}", baseline_records + 1))
            ratio = app / baseline
            detail = {"records": records, "baseline_records": baseline_records, "app_per_s": round(app, 1),
                      "baseline_per_s": round(baseline, 1)}
            figures += [
                Figure("publish", f"OutcomePublisher (batches), {delay_ms} ms", app, "outcomes/s", detail=detail),
                Figure("publish", f"send_messages per record, {delay_ms} ms", baseline, "outcomes/s", detail=detail),
                Figure("publish", f"speed-up at {delay_ms} ms", ratio, "x", f">= {GOAL:g}x", ratio >= GOAL, detail),
            ]
    return figures
