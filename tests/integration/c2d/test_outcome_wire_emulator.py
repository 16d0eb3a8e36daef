"""OutcomePublisher's pre-encoded batches against the Service Bus emulator: what a subscriber receives
(read back with the real azure-servicebus receiver) equals, field for field, what the stock SDK sends
for `to_service_bus_message(outcome)`, and the subscriptions' filters route both the same way."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.exceptions import MessageSizeExceededError

from c2d import servicebus
from c2d.config import ServiceBusSettings
from c2d.errors import PublishFailed
from c2d.feedback import FeedbackRecord
from c2d.outcomes import Outcome, outcome_from_feedback
from c2d.servicebus import OutcomePublisher, to_service_bus_message
from c2d.servicebus_batches import probe_outcomes
from localcloud.servicebus.launcher import ServiceBusProcess, running_servicebus

pytestmark = pytest.mark.integration

TOPICS = ("app-outcomes", "stock-outcomes")
SUBSCRIPTIONS = {"all": None, "failed": "status <> 'Success'", "run-7": "[x-workflow-run-id] = 'run-7'"}
BROKER_ANNOTATIONS = {b"x-opt-sequence-number", b"x-opt-enqueued-time", b"x-opt-locked-until"}


def _subscription(name: str, sql: str | None) -> dict[str, Any]:
    rules = [{"Name": "r", "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": sql}}}] if sql else []
    return {"Name": name, "Properties": {"LockDuration": "PT1M", "MaxDeliveryCount": 10}, "Rules": rules}


def _topic(name: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Properties": {"RequiresDuplicateDetection": True, "DuplicateDetectionHistoryTimeWindow": "PT10M"},
        "Subscriptions": [_subscription(n, sql) for n, sql in SUBSCRIPTIONS.items()],
    }


@pytest.fixture(scope="module")
def twin_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceBusProcess]:
    """One topic the publisher writes to, one the stock SDK writes to, with the same filtered subscriptions."""
    config = tmp_path_factory.mktemp("servicebus") / "config.json"
    namespace = {"Name": "sbemulatorns", "Queues": [], "Topics": [_topic(t) for t in TOPICS]}
    config.write_text(json.dumps({"UserConfig": {"Namespaces": [namespace], "Logging": {"Type": "Console"}}}))
    with running_servicebus(config_path=Path(config)) as bus:
        yield bus


def _outcomes(prefix: str, count: int) -> list[Outcome]:
    statuses = ["Success", "Expired", "Rejected", "DeliveryCountExceeded", "Purged"]
    return [
        outcome_from_feedback(
            FeedbackRecord(f"{prefix}-{i}", f"dev-{i % 7}", statuses[i % 5], f"{statuses[i % 5]} ü", "2026-11-26T10:00:00Z",
                           "1"),
            correlation_id="run-7" if i % 3 == 0 else None,
            caller_properties={"x-workflow-run-id": "run-7" if i % 3 == 0 else f"run-{i}"} if i % 2 == 0 else None,
        )
        for i in range(count)
    ]  # fmt: skip


def _drain(bus: ServiceBusProcess, topic: str, subscription: str) -> list[ServiceBusReceivedMessage]:
    received: list[ServiceBusReceivedMessage] = []
    with ServiceBusClient.from_connection_string(bus.connection_string) as client, client.get_subscription_receiver(
        topic, subscription, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        while batch := receiver.receive_messages(max_message_count=200, max_wait_time=1.5):
            received.extend(batch)
    return received


def _wire_view(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    """Everything a subscriber can see of a message, minus what the broker sets on receipt."""
    raw = message.raw_amqp_message
    return {
        "body": b"".join(message.body),
        "header": dict(raw.header or {}),
        "properties": dict(raw.properties or {}),
        "application_properties": dict(raw.application_properties or {}),
        "annotations": {k: v for k, v in (raw.annotations or {}).items() if k not in BROKER_ANNOTATIONS},
        "delivery_annotations": raw.delivery_annotations,
        "footer": raw.footer,
        "sdk": (message.message_id, message.correlation_id, message.subject, message.content_type,
                message.session_id, message.to, message.reply_to, message.time_to_live, message.partition_key),
    }  # fmt: skip


def _publish_both_ways(bus: ServiceBusProcess, outcomes: list[Outcome]) -> None:
    settings = ServiceBusSettings(topic=TOPICS[0], connection_string=bus.connection_string, retry_total=0)
    with OutcomePublisher(settings) as publisher:
        publisher.publish(outcomes)
    with ServiceBusClient.from_connection_string(bus.connection_string) as client, client.get_topic_sender(
        TOPICS[1]
    ) as sender:
        for outcome in outcomes:  # the stock way, one message at a time
            sender.send_messages(to_service_bus_message(outcome))


@pytest.fixture
def stock_path_only() -> Iterator[None]:
    """The publisher as when its wire check fails (another SDK version): the SDK encodes."""
    state = servicebus._encoded_batches
    saved = (state.checked, state.problem)
    state.checked, state.problem = True, "forced by the test"
    try:
        yield
    finally:
        state.checked, state.problem = saved


@pytest.mark.parametrize("path", ["pre-encoded", "sdk-encoded"])
def test_subscribers_receive_what_the_stock_sdk_sends(twin_bus: ServiceBusProcess, path: str,
                                                      request: pytest.FixtureRequest) -> None:
    if path == "sdk-encoded":
        request.getfixturevalue("stock_path_only")
    else:
        assert servicebus._encoded_batches.usable()
    # 1,500 outcomes of ~450 bytes: several 256 KB batches; the probes cover every encoding size class.
    probes = [dataclasses.replace(p, occurrence=f"{p.occurrence}/{path}") for p in probe_outcomes()]  # fresh ids
    outcomes = probes + _outcomes(path, 1500)
    _publish_both_ways(twin_bus, outcomes)

    for subscription in SUBSCRIPTIONS:
        app = {str(m.message_id): _wire_view(m) for m in _drain(twin_bus, TOPICS[0], subscription)}
        stock = {str(m.message_id): _wire_view(m) for m in _drain(twin_bus, TOPICS[1], subscription)}
        assert app.keys() == stock.keys(), subscription
        assert app == stock, subscription
        if subscription == "all":
            assert sorted(app) == sorted({o.message_id for o in outcomes})
        if subscription == "run-7":
            assert len(app) == 1 + len([i for i in range(1500) if i % 6 == 0])  # the SendFailed probe + i % 6 == 0


def test_republished_batches_are_dropped_as_duplicates(twin_bus: ServiceBusProcess) -> None:
    outcomes = _outcomes("dup", 700)
    settings = ServiceBusSettings(topic=TOPICS[0], connection_string=twin_bus.connection_string, retry_total=0)
    with OutcomePublisher(settings) as publisher:
        publisher.publish(outcomes)
        publisher.publish(outcomes[100:])  # a redelivered feedback message publishes again
    assert len(_drain(twin_bus, TOPICS[0], "all")) == 700


@pytest.mark.parametrize("path", ["pre-encoded", "sdk-encoded"])
def test_an_outcome_over_the_size_limit_is_publish_failed(twin_bus: ServiceBusProcess, path: str,
                                                          request: pytest.FixtureRequest) -> None:
    if path == "sdk-encoded":
        request.getfixturevalue("stock_path_only")
    huge = outcome_from_feedback(FeedbackRecord("huge", "dev-1", "Rejected", "x" * 300_000, "2026-11-26T10:00:00Z", "1"))
    settings = ServiceBusSettings(topic=TOPICS[0], connection_string=twin_bus.connection_string, retry_total=0)
    with OutcomePublisher(settings) as publisher:
        with pytest.raises(PublishFailed, match=MessageSizeExceededError.__name__):
            publisher.publish([*_outcomes(f"before-{path}", 3), huge])
        publisher.publish(_outcomes(f"after-{path}", 2))  # the publisher still works afterwards
    ids = {str(m.correlation_id) for m in _drain(twin_bus, TOPICS[0], "all")}
    assert {f"after-{path}-0", f"after-{path}-1"} <= ids and "huge" not in ids
