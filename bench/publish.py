"""Outcome publishing: 10,000 feedback records to the topic through the app's batching `OutcomePublisher`
versus one `send_messages` call per record, against the same Service Bus emulator in the same run."""

from __future__ import annotations

import time

from azure.servicebus import ServiceBusClient

from bench.common import Figure
from c2d.config import ServiceBusSettings
from c2d.feedback import FeedbackRecord
from c2d.outcomes import Outcome, outcome_from_feedback
from c2d.servicebus import OutcomePublisher, to_service_bus_message
from localcloud.servicebus.testing import start_emulator

GOAL = 10.0


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


def run(records: int = 10_000) -> list[Figure]:
    with start_emulator() as bus:
        app = _app(bus.connection_string, _outcomes("app", records + 1))
        baseline = _baseline(bus.connection_string, _outcomes("base", records + 1))
    ratio = app / baseline
    detail = {"records": records, "app_per_s": round(app, 1), "baseline_per_s": round(baseline, 1)}
    return [
        Figure("publish", "OutcomePublisher (batches)", app, "outcomes/s", detail=detail),
        Figure("publish", "send_messages per record", baseline, "outcomes/s", detail=detail),
        Figure("publish", "speed-up", ratio, "x", f">= {GOAL:g}x", ratio >= GOAL, detail),
    ]
