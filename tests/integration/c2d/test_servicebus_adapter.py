"""c2d.servicebus.OutcomePublisher against the Service Bus emulator, read back with the real azure-servicebus SDK."""

from __future__ import annotations

import json
import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceiveMode

from c2d.config import ServiceBusSettings
from c2d.errors import PublishFailed
from c2d.feedback import FeedbackRecord
from c2d.outcomes import outcome_from_feedback, outcome_id
from c2d.servicebus import OutcomePublisher

pytestmark = pytest.mark.integration


def outcomes(prefix: str, count: int) -> list:
    statuses = ["Success", "Expired", "Rejected", "DeliveryCountExceeded", "Purged"]
    return [
        outcome_from_feedback(
            FeedbackRecord(f"{prefix}-{i}", f"dev-{i % 7}", statuses[i % 5], statuses[i % 5], "2026-11-26T10:00:00Z", "1")
        )
        for i in range(count)
    ]


def drain(bus, subscription: str, idle_s: float = 1.5) -> list:
    """Every message on the subscription (received and deleted)."""
    received = []
    with ServiceBusClient.from_connection_string(bus.connection_string) as client, client.get_subscription_receiver(
        "c2d-outcomes", subscription, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        while True:
            batch = receiver.receive_messages(max_message_count=100, max_wait_time=idle_s)
            if not batch:
                return received
            received.extend(batch)


def test_publish_routes_to_filtered_subscriptions_with_every_field(bus, bus_settings) -> None:
    published = outcomes("route", 150)
    with OutcomePublisher(bus_settings) as publisher:
        publisher.publish(published)

    everything = drain(bus, "all")
    assert sorted(str(m.message_id) for m in everything) == sorted(o.message_id for o in published)
    first = next(m for m in everything if str(m.correlation_id) == "route-1")
    assert first.message_id == outcome_id("dev-1", "route-1", "Expired", "2026-11-26T10:00:00Z")
    assert first.subject == "Expired"
    assert first.content_type == "application/json"
    props = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
             for k, v in first.application_properties.items()}
    assert props == {"deviceId": "dev-1", "status": "Expired", "originalMessageId": "route-1",
                     "description": "Expired", "enqueuedTimeUtc": "2026-11-26T10:00:00Z"}
    assert json.loads(str(first))["statusCode"] == "Expired"
    assert len(drain(bus, "succeeded")) == 30
    assert len(drain(bus, "failed")) == 120


def test_republished_outcomes_are_dropped_by_duplicate_detection(bus, bus_settings) -> None:
    batch = outcomes("dup", 40)
    with OutcomePublisher(bus_settings) as publisher:
        publisher.publish(batch)
        publisher.publish(batch[:25])  # a redelivered feedback message publishes again
    assert len(drain(bus, "all")) == 40


def test_unreachable_service_bus_raises_publish_failed_then_recovers(bus, bus_settings) -> None:
    with OutcomePublisher(bus_settings) as publisher:
        publisher.publish(outcomes("warm", 1))
        bus.admin.refuse_connections(2.0)
        bus.admin.drop_connections()
        with pytest.raises(PublishFailed):
            publisher.publish(outcomes("down", 3))
        time.sleep(2.5)
        publisher.publish(outcomes("back", 3))
    ids = {str(m.correlation_id) for m in drain(bus, "all")}
    assert {"back-0", "back-1", "back-2", "warm-0"} <= ids


def test_wrong_key_is_publish_failed(bus) -> None:
    settings = ServiceBusSettings(
        topic="c2d-outcomes", connection_string=bus.connection_string_with_key("d3Jvbmc="), retry_total=0
    )
    with OutcomePublisher(settings) as publisher, pytest.raises(PublishFailed, match="credentials"):
        publisher.publish(outcomes("auth", 1))


def test_one_message_id_to_three_devices_gives_three_outcomes(bus, bus_settings) -> None:
    """Hole 4: outcome ids used to be uuid5(messageId, status), so duplicate detection dropped the
    second and third device's outcome of a caller messageId sent to several devices."""
    drain(bus, "all")
    records = [FeedbackRecord("job-42", f"dev-{i}", "Success", "Success", "2026-11-26T10:00:00Z", "1") for i in range(3)]
    with OutcomePublisher(bus_settings) as publisher:
        publisher.publish([outcome_from_feedback(r) for r in records])
        publisher.publish([outcome_from_feedback(r) for r in records])  # a redelivery: dropped as duplicates

    received = drain(bus, "all")
    assert sorted(m.application_properties[b"deviceId"].decode() for m in received) == ["dev-0", "dev-1", "dev-2"]
