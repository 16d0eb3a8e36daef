"""The app's OutcomePublisher publishes a batch that the topic's subscriptions read back."""

from __future__ import annotations

import time

import pytest
from azure.servicebus import ServiceBusClient

from c2d.config import ServiceBusSettings
from c2d.outcomes import Outcome
from c2d.servicebus import OutcomePublisher

pytestmark = pytest.mark.integration


def _outcome(mid: str, status: str) -> Outcome:
    return Outcome(
        status=status,
        device_id="dev-1",
        original_message_id=mid,
        description=f"{status} for {mid}",
        enqueued_time_utc="2026-01-01T00:00:00.000Z",
        body={"originalMessageId": mid, "statusCode": status},
    )


def _drain(client: ServiceBusClient, sub: str, expected: int) -> list:
    got: list = []
    with client.get_subscription_receiver("c2d-outcomes", sub) as receiver:
        deadline = time.monotonic() + 10
        while len(got) < expected and time.monotonic() < deadline:
            got += receiver.receive_messages(max_message_count=expected - len(got), max_wait_time=1)
        got += receiver.receive_messages(max_message_count=5, max_wait_time=0.5)  # nothing more
        for m in got:
            receiver.complete_message(m)
    return got


def test_outcome_publisher_batch_reaches_filtered_subscriptions(conn_str: str) -> None:
    outcomes = [_outcome("op-1", "Success"), _outcome("op-2", "Rejected"), _outcome("op-3", "Expired")]
    with OutcomePublisher(ServiceBusSettings(topic="c2d-outcomes", connection_string=conn_str)) as publisher:
        publisher.publish(outcomes)
        publisher.publish(outcomes)  # a redelivered feedback batch: dropped by duplicate detection
    with ServiceBusClient.from_connection_string(conn_str) as client:
        everything = _drain(client, "all", 3)
        failed = _drain(client, "failed", 2)
        succeeded = _drain(client, "succeeded", 1)
    assert sorted(m.correlation_id for m in everything) == ["op-1", "op-2", "op-3"]
    assert sorted(m.application_properties[b"status"] for m in failed) == [b"Expired", b"Rejected"]
    [ok] = succeeded
    assert (ok.subject, ok.content_type, ok.message_id) == ("Success", "application/json", outcomes[0].message_id)
    assert ok.application_properties[b"deviceId"] == b"dev-1"
