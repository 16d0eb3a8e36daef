"""c2d.iothub.C2DSender and FeedbackReceiver (uamqp) against the IoT Hub emulator: typed errors from each
message's disposition, pipelined sends, no silent re-sends, feedback settled explicitly."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from c2d_testing.devices import DECOY_DEVICE, ODD_DEVICE, device_https

from c2d.config import IoTHubSettings
from c2d.errors import (
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    SenderBusy,
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


def test_device_ids_with_url_characters_reach_exactly_that_device(hub, hub_settings) -> None:
    """Hole 9: the `to` address carried the raw id, so IoT Hub's URL-decoding sent `odd%41...` to `oddA...`."""
    with C2DSender(hub_settings) as sender:
        (result,) = sender.send_many([message(ODD_DEVICE, "odd-1")])
    assert result.sent, result.error
    assert [m["messageId"] for m in queued(hub, ODD_DEVICE)] == ["odd-1"]
    assert queued(hub, DECOY_DEVICE) == []


class FailingCredential:
    """A managed-identity credential that cannot get a token (no identity, IMDS down, ...)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def get_token(self, *scopes: str, **_kwargs: object) -> object:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected", "retry_after"),
    [
        (ClientAuthenticationError("no managed identity endpoint"), Unauthorized, None),
        (ServiceRequestError("IMDS timed out"), Unavailable, 5),
    ],
    ids=["auth-refused", "transient"],
)
def test_managed_identity_token_errors_are_typed_and_nothing_is_sent_later(hub, error, expected, retry_after) -> None:
    """Hole 3: an AzureError from get_token escaped as a 500 and left the uamqp client (with its
    pending messages) in place for the next invocation."""
    settings = IoTHubSettings(hostname="localhost", amqp_port=hub.ports.amqp, connect_timeout_s=5)
    credential = FailingCredential(error)
    built: list[FailingCredential] = []

    def factory() -> FailingCredential:
        built.append(credential)
        return credential

    with C2DSender(settings, credential_factory=factory) as sender:
        first = sender.send_many([message("dev-0", "mi-1"), message("dev-1", "mi-2")])
        second = sender.send_many([message("dev-0", "mi-3")])
    for result in (*first, *second):
        assert isinstance(result.error, expected), result.error
        assert result.error.retry_after_s == retry_after
    assert len(built) == 1, "one credential per sender, reused by every reconnect"
    assert credential.calls >= 2, "each send tried a fresh link"
    assert queued(hub, "dev-0") == [] and queued(hub, "dev-1") == []


def test_send_after_the_token_expired_while_idle_succeeds(hub) -> None:
    """Hole 5: uamqp renews a token only while the link is busy; after an idle token lifetime the next
    send failed with a false 502 Unauthorized (TokenExpired). The link is now rebuilt before expiry."""
    settings = IoTHubSettings.from_connection_string(
        hub.service_connection_string, amqp_port=hub.ports.amqp, send_timeout_s=10.0, token_lifetime_s=6
    )
    with C2DSender(settings) as sender:
        assert sender.send_many([message("dev-0", "before-idle")])[0].sent
        time.sleep(7)  # longer than the token's lifetime, no traffic
        (after,) = sender.send_many([message("dev-0", "after-idle")])
    assert after.sent, after.error
    assert [m["messageId"] for m in queued(hub, "dev-0")] == ["before-idle", "after-idle"]


def test_concurrent_callers_share_one_pipelined_send(hub, hub_settings) -> None:
    """Hole 7: each caller used to hold the link for a whole round trip in turn; now the callers that
    wait are sent together, so 16 concurrent requests cost about two round trips, not 16."""
    hub.admin.disposition_delay(400)
    try:
        with C2DSender(hub_settings) as sender:
            assert sender.send_many([message("dev-0", "warm")])[0].sent
            results: dict[int, list] = {}

            def call(index: int) -> None:
                results[index] = sender.send_many([message(f"dev-{index % 4}", f"c-{index}")])

            threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
    finally:
        hub.admin.disposition_delay(0)
    assert all(r[0].sent for r in results.values()), results
    assert elapsed < 16 * 0.4 / 2, f"16 callers took {elapsed:.1f} s: they were sent one round trip each"


def test_a_caller_that_waited_too_long_is_busy_and_never_sent(hub, hub_settings) -> None:
    """Hole 7: a request that outlived its caller's patience must never be sent later."""
    settings = IoTHubSettings.from_connection_string(
        hub.service_connection_string, amqp_port=hub.ports.amqp, send_timeout_s=10.0, busy_timeout_s=0.5
    )
    hub.admin.disposition_delay(2000)
    try:
        with C2DSender(settings) as sender:
            assert sender.send_many([message("dev-0", "warm")])[0].sent
            slow = threading.Thread(target=sender.send_many, args=([message("dev-1", "slow")],))
            slow.start()
            time.sleep(0.3)
            started = time.monotonic()
            (busy,) = sender.send_many([message("dev-2", "impatient")])
            waited = time.monotonic() - started
            slow.join()
            time.sleep(0.5)
    finally:
        hub.admin.disposition_delay(0)
    assert isinstance(busy.error, SenderBusy) and busy.error.http_status == 503 and busy.error.retry_after_s
    assert waited < 1.5
    assert queued(hub, "dev-2") == [], "a request answered SenderBusy must never be sent"
    assert [m["messageId"] for m in queued(hub, "dev-1")] == ["slow"]


def test_hub_closing_the_connection_of_an_expired_token_costs_no_failed_send(hub) -> None:
    """The real hub closes a connection whose CBS token expired (the emulator does too, here after 3 s):
    the sender renews ahead of expiry or reconnects, and never reports a send that could have succeeded."""
    hub.admin.set_limits(max_token_lifetime_s=3)
    settings = IoTHubSettings.from_connection_string(
        hub.service_connection_string, amqp_port=hub.ports.amqp, send_timeout_s=10.0
    )
    try:
        with C2DSender(settings) as sender:
            assert sender.send_many([message("dev-0", "first")])[0].sent
            wait_for_close = time.monotonic() + 10
            while hub.admin.state()["amqp"]["tokens"]["connections_closed_on_expiry"] < 1:
                assert time.monotonic() < wait_for_close, "the emulator should close the expired connection"
                time.sleep(0.2)
            (second,) = sender.send_many([message("dev-0", "second")])
    finally:
        hub.admin.set_limits(max_token_lifetime_s=None)
    assert second.sent, second.error
    assert [m["messageId"] for m in queued(hub, "dev-0")] == ["first", "second"]


def test_large_fan_out_with_mixed_outcomes_keeps_order_and_sends_each_message_once(hub, hub_settings) -> None:
    """1,200 messages on one link: settled messages are dropped from uamqp's pending list in batches, so
    results must still line up with the requests and nothing may be handed to the link twice."""
    hub.admin.set_limits(queue_depth=250)
    batch = [message(f"dev-{i % 4}", f"big-{i}") if i % 6 else message("ghost", f"big-{i}") for i in range(1200)]
    with C2DSender(hub_settings) as sender:
        results = sender.send_many(batch)
    expected = {m.device_id: 0 for m in batch}
    statuses = []
    for m in batch:
        if m.device_id == "ghost":
            statuses.append("DeviceNotFound")
        else:
            expected[m.device_id] += 1
            statuses.append("Sent" if expected[m.device_id] <= 250 else "DeviceQueueFull")
    assert [r.message_id for r in results] == [m.message_id for m in batch]
    assert [r.error.code if r.error else "Sent" for r in results] == statuses
    assert "DeviceQueueFull" in statuses and "DeviceNotFound" in statuses
    for device in ("dev-0", "dev-1", "dev-2", "dev-3"):
        sent = [m.message_id for m, s in zip(batch, statuses, strict=True) if m.device_id == device and s == "Sent"]
        assert [m["messageId"] for m in queued(hub, device)] == sent  # each once, in order


def test_waiting_for_dispositions_does_not_burn_a_core(hub, hub_settings) -> None:
    """uamqp's socket never blocks: its own send loop spins while IoT Hub answers. The sender sleeps
    between passes that bring nothing, so a 0.5 s wait costs a small fraction of that in CPU."""
    with C2DSender(hub_settings) as sender:
        assert sender.send_many([message("dev-0", "warm")])[0].sent
        hub.admin.disposition_delay(500)
        try:
            cpu, wall = time.thread_time(), time.monotonic()
            results = sender.send_many([message(f"dev-{i % 4}", f"slow-{i}") for i in range(20)])
            cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        finally:
            hub.admin.disposition_delay(0)
    assert all(r.sent for r in results)
    assert wall >= 0.5
    assert cpu < 0.2 * wall, f"{cpu:.2f} s of CPU while waiting {wall:.2f} s for IoT Hub"
