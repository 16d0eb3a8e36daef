"""c2d.iothub.C2DSender and FeedbackReceiver (uamqp) against the IoT Hub emulator: typed errors from each
message's disposition, pipelined sends, no silent re-sends, feedback settled explicitly."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from c2d_testing.devices import device_https

from c2d.config import IoTHubSettings
from c2d.errors import (
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    Throttled,
    Unauthorized,
    Unavailable,
)
from c2d.feedback import parse_feedback
from c2d.iothub import C2DSender, FeedbackReceiver
from c2d.messages import C2DMessage

pytestmark = pytest.mark.integration


def message(device_id: str, message_id: str, **kwargs) -> C2DMessage:
    return C2DMessage(device_id=device_id, message_id=message_id, body=kwargs.pop("body", b"hello"), **kwargs)


def queued(hub, device_id: str) -> list[dict]:
    return hub.admin.state()["devices"][device_id]


def collect_feedback(receiver: FeedbackReceiver, want: int, timeout_s: float = 20.0) -> list[dict]:
    records, deadline = [], time.monotonic() + timeout_s
    while len(records) < want and time.monotonic() < deadline:
        for feedback in receiver.receive(10, 0.5):
            records.extend(r.to_dict() for r in parse_feedback(feedback.body))
            feedback.accept()
    return records


def test_pipelined_send_with_every_field(hub, hub_settings) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    batch = [
        message("dev-0", f"m-{i}", ack="positive", expires_at=expires, correlation_id="c-1",
                content_type="application/json", content_encoding="utf-8", properties={"k": f"v{i}"})
        for i in range(20)
    ]
    with C2DSender(hub_settings) as sender:
        results = sender.send_many(batch)

    assert [r.status for r in results] == ["Sent"] * 20
    stored = queued(hub, "dev-0")
    assert [m["messageId"] for m in stored] == [f"m-{i}" for i in range(20)]
    assert stored[0]["ack"] == "positive"
    stored_expiry = datetime.fromisoformat(stored[0]["expiresAt"].replace("Z", "+00:00"))
    assert abs((stored_expiry - expires).total_seconds()) < 1


def test_each_message_gets_its_own_typed_error(hub, hub_settings) -> None:
    hub.admin.set_limits(queue_depth=3)
    batch = [message("dev-1", f"q-{i}") for i in range(4)] + [
        message("ghost", "g-1"),
        message("dev-2", "big", body=b"x" * (64 * 1024 + 1)),
        message("dev-2", "ok"),
    ]
    with C2DSender(hub_settings) as sender:
        results = sender.send_many(batch)

    assert [r.status for r in results] == ["Sent", "Sent", "Sent", "Failed", "Failed", "Failed", "Sent"]
    assert isinstance(results[3].error, DeviceQueueFull)
    assert isinstance(results[4].error, DeviceNotFound)
    assert isinstance(results[5].error, MessageTooLarge)
    assert [m["messageId"] for m in queued(hub, "dev-2")] == ["ok"]


def test_queue_full_at_51_with_documented_default(hub, hub_settings) -> None:
    with C2DSender(hub_settings) as sender:
        results = sender.send_many([message("dev-3", f"n-{i}") for i in range(51)])
    assert [r.status for r in results].count("Sent") == 50
    assert isinstance(results[50].error, DeviceQueueFull)


def test_throttled_send_is_not_retried_silently(hub, hub_settings) -> None:
    hub.admin.throttle(2)
    with C2DSender(hub_settings) as sender:
        results = sender.send_many([message("dev-0", f"t-{i}") for i in range(4)])
    hub.admin.throttle(0)
    statuses = [r.status for r in results]
    assert statuses[:2] == ["Sent", "Sent"]
    assert all(isinstance(r.error, Throttled) for r in results[2:])
    assert hub.admin.state()["stats"]["sent"] == 2, "a throttled message must not be re-sent behind our back"


def test_wrong_key_is_unauthorized(hub) -> None:
    settings = IoTHubSettings(hostname=hub.hostname, policy_name="iothubowner",
                              key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=", amqp_port=hub.ports.amqp)
    with C2DSender(settings) as sender:
        (result,) = sender.send_many([message("dev-0", "x")])
    assert isinstance(result.error, Unauthorized)
    assert queued(hub, "dev-0") == []


def test_unreachable_hub_is_unavailable_and_the_sender_recovers(hub, hub_settings) -> None:
    hub.admin.refuse_connections(1.5)
    with C2DSender(hub_settings) as sender:
        (first,) = sender.send_many([message("dev-0", "r-1")])
        assert isinstance(first.error, Unavailable)
        time.sleep(2)
        (second,) = sender.send_many([message("dev-0", "r-2")])
    assert second.sent
    assert [m["messageId"] for m in queued(hub, "dev-0")] == ["r-2"]


def test_sender_rebuilds_its_link_after_the_connection_drops(hub, hub_settings) -> None:
    with C2DSender(hub_settings) as sender:
        assert sender.send_many([message("dev-0", "before")])[0].sent
        hub.admin.drop_connections()
        time.sleep(0.2)
        results = sender.send_many([message("dev-0", "after-1")])
        if not results[0].sent:  # the first use may discover the dead link; it must recover on the next
            results = sender.send_many([message("dev-0", "after-2")])
        assert results[0].sent
    ids = [m["messageId"] for m in queued(hub, "dev-0")]
    assert ids[0] == "before" and len(ids) == 2, ids


def test_connection_lost_while_awaiting_dispositions_is_unknown_never_failed(hub, hub_settings) -> None:
    """uamqp reports messages still awaiting a disposition as errors when the connection goes: they may
    be on the hub, so they must come back Unknown (check the outcome before re-sending), never Failed."""
    batch = [message(f"dev-{i % 4}", f"lost-{i}") for i in range(40)]
    with C2DSender(hub_settings) as sender:
        assert sender.send_many([message("dev-0", "warm-up")])[0].sent
        hub.admin.disposition_delay(1500)
        dropper = threading.Timer(0.5, hub.admin.drop_connections)
        dropper.start()
        try:
            results = sender.send_many(batch)
        finally:
            dropper.join()
            hub.admin.disposition_delay(0)
    on_hub = [m["messageId"] for i in range(4) for m in queued(hub, f"dev-{i}")]
    assert {type(r.error) for r in results} == {OutcomeUnknown}, [str(r.error) for r in results]
    assert all(on_hub.count(m.message_id) <= 1 for m in batch)


def test_feedback_for_complete_reject_and_abandon(hub, hub_settings) -> None:
    hub.admin.set_limits(max_delivery_count=2)
    with C2DSender(hub_settings) as sender:
        sender.send_many([message("dev-0", "ok"), message("dev-1", "no"), message("dev-2", "later")])
    assert device_https(hub, "dev-0", "complete") == 0
    assert device_https(hub, "dev-1", "reject") == 0
    assert device_https(hub, "dev-2", "abandon", count=2) == 0

    with FeedbackReceiver(hub_settings) as receiver:
        records = collect_feedback(receiver, 3)
    by_id = {r["originalMessageId"]: r for r in records}
    assert set(by_id) == {"ok", "no", "later"}, records
    assert by_id["ok"]["statusCode"] == "Success" and by_id["ok"]["deviceId"] == "dev-0"
    assert by_id["no"]["statusCode"] == "Rejected"
    assert by_id["later"]["statusCode"] == "DeliveryCountExceeded"


def test_feedback_released_is_redelivered_and_accepted_is_gone(hub, hub_settings) -> None:
    with C2DSender(hub_settings) as sender:
        sender.send_many([message("dev-0", "fb-1")])
    device_https(hub, "dev-0")
    with FeedbackReceiver(hub_settings) as receiver:
        first = []
        deadline = time.monotonic() + 20
        while not first and time.monotonic() < deadline:
            first = receiver.receive(10, 0.5)
        assert first, "no feedback arrived"
        body = first[0].body
        first[0].release()
        again = []
        deadline = time.monotonic() + 20
        while not again and time.monotonic() < deadline:
            again = receiver.receive(10, 0.5)
        assert again and again[0].body == body
        again[0].accept()
        assert receiver.receive(10, 1.0) == []
    assert json.loads(body)[0]["originalMessageId"] == "fb-1"
