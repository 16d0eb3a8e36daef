"""SendC2DQueue called through `main` with real azure.functions.QueueMessage objects."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from c2d_testing.fakes import sent_messages

import SendC2DQueue
from c2d import clients
from c2d.errors import (
    ConfigurationError,
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    PublishFailed,
    StoreUnavailable,
    Throttled,
    Unavailable,
)


def queue_message(body: object, *, msg_id: str = "q-1") -> func.QueueMessage:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.QueueMessage(id=msg_id, body=raw)


def test_single_device_request_is_sent(sender, publisher) -> None:
    SendC2DQueue.main(queue_message({"deviceId": "dev-1", "payload": {"a": 1}, "ack": "positive"}))

    (message,) = sent_messages(sender)
    assert message.device_id == "dev-1" and message.ack == "positive" and message.body == b'{"a":1}'
    assert publisher.published == []


def test_message_ids_are_stable_across_retries_of_the_same_queue_message(sender, publisher) -> None:
    request = {"deviceIds": ["a", "b"], "payload": 1}
    sender.errors.update({"a": Throttled("slow"), "b": Throttled("slow")})
    with pytest.raises(Throttled):  # nothing sent: the claim is withdrawn and the host retries
        SendC2DQueue.main(queue_message(request, msg_id="q-42"))
    sender.errors.clear()
    SendC2DQueue.main(queue_message(request, msg_id="q-42"))
    SendC2DQueue.main(queue_message(request, msg_id="q-43"))

    first, retry, other = sender.send_many.call_args_list
    assert [m.message_id for m in first.args[0]] == [m.message_id for m in retry.args[0]]
    assert {m.message_id for m in first.args[0]}.isdisjoint(m.message_id for m in other.args[0])


@pytest.mark.parametrize(
    "body",
    [b"not json", {"payload": 1}, {"deviceId": "a", "deviceIds": ["b"], "payload": 1}, {"deviceId": "a"}],
    ids=["not-json", "no-device", "both-device-fields", "no-payload"],
)
def test_invalid_request_is_published_as_send_failed_and_not_retried(sender, publisher, body) -> None:
    SendC2DQueue.main(queue_message(body))  # must not raise: a retry cannot fix it

    sender.send_many.assert_not_called()
    assert publisher.published and all(o.status == "SendFailed" for o in publisher.published)
    assert "ValidationFailed" in publisher.published[0].description


def test_invalid_request_outcome_names_the_device(sender, publisher) -> None:
    SendC2DQueue.main(queue_message({"deviceId": "dev-9", "payload": 1, "ack": "bogus"}))
    (outcome,) = publisher.published
    assert outcome.device_id == "dev-9"
    assert outcome.application_properties["status"] == "SendFailed"


@pytest.mark.parametrize("error", [DeviceNotFound("no such device"), MessageTooLarge("too big")])
def test_permanent_failure_is_published_and_not_retried(sender, publisher, error) -> None:
    sender.errors["dev-1"] = error
    SendC2DQueue.main(queue_message({"deviceId": "dev-1", "payload": 1}))

    (outcome,) = publisher.published
    assert outcome.status == "SendFailed" and outcome.device_id == "dev-1"
    assert outcome.original_message_id == sent_messages(sender)[0].message_id
    assert outcome.description.startswith(error.code)


@pytest.mark.parametrize("error", [Throttled("slow down"), DeviceQueueFull("full"), Unavailable("down")])
def test_transient_failure_raises_so_the_host_retries(sender, publisher, error) -> None:
    sender.errors["dev-1"] = error
    with pytest.raises(type(error)):
        SendC2DQueue.main(queue_message({"deviceId": "dev-1", "payload": 1}))
    assert publisher.published == []


def test_fan_out_partly_sent_never_retries_the_devices_that_got_it(sender, publisher) -> None:
    sender.errors.update({"b": Throttled("slow"), "c": DeviceNotFound("gone"), "d": OutcomeUnknown("lost")})

    SendC2DQueue.main(queue_message({"deviceIds": ["a", "b", "c", "d"], "payload": 1}))  # no raise

    by_device = {o.device_id: o.status for o in publisher.published}
    assert by_device == {"b": "SendFailed", "c": "SendFailed", "d": "Unknown"}


def test_fan_out_nothing_sent_raises_after_publishing_permanent_failures(sender, publisher) -> None:
    sender.errors.update({"a": Throttled("slow"), "b": DeviceNotFound("gone")})
    with pytest.raises(Throttled):
        SendC2DQueue.main(queue_message({"deviceIds": ["a", "b"], "payload": 1}))
    assert [(o.device_id, o.status) for o in publisher.published] == [("b", "SendFailed")]


def test_publish_failure_for_invalid_request_raises_for_retry(sender, publisher) -> None:
    publisher.publish.side_effect = PublishFailed("service bus down")
    with pytest.raises(PublishFailed):
        SendC2DQueue.main(queue_message(b"{broken"))
    sender.send_many.assert_not_called()


def test_publish_failure_after_sending_is_retried_without_sending_again(sender, publisher) -> None:
    """Hole 1: the retry of a request that was sent publishes what was recorded, and sends nothing."""
    sender.errors["c"] = DeviceNotFound("gone")
    publisher.publish.side_effect = PublishFailed("service bus down")
    request = queue_message({"deviceIds": ["a", "b", "c"], "payload": 1}, msg_id="q-7")
    with pytest.raises(PublishFailed):
        SendC2DQueue.main(request)
    assert sender.send_many.call_count == 1

    publisher.publish.side_effect = lambda outcomes: publisher.published.extend(outcomes)
    for _ in range(4):  # up to maxDequeueCount
        SendC2DQueue.main(request)

    assert sender.send_many.call_count == 1, "a request that was sent must never be sent again"
    assert {(o.device_id, o.status) for o in publisher.published} == {("c", "SendFailed")}
    assert len({o.message_id for o in publisher.published}) == 1, "retries republish under the same outcome id"


def test_retry_after_an_attempt_died_mid_send_reports_unknown_and_sends_nothing(sender, publisher, journal) -> None:
    """Hole 2: a claim without recorded results means the first attempt stopped while sending."""
    journal.claims["q-8"] = {}
    SendC2DQueue.main(queue_message({"deviceIds": ["a", "b"], "payload": 1}, msg_id="q-8"))

    sender.send_many.assert_not_called()
    assert {(o.device_id, o.status) for o in publisher.published} == {("a", "Unknown"), ("b", "Unknown")}


def test_unknown_result_is_published_as_unknown_and_a_retry_never_says_sent(sender, publisher) -> None:
    sender.errors["a"] = OutcomeUnknown("the link dropped before IoT Hub confirmed it")
    publisher.publish.side_effect = PublishFailed("service bus down")
    request = queue_message({"deviceId": "a", "payload": 1}, msg_id="q-9")
    with pytest.raises(PublishFailed):
        SendC2DQueue.main(request)
    publisher.publish.side_effect = lambda outcomes: publisher.published.extend(outcomes)
    sender.errors.clear()  # a re-send would now succeed: it must not happen
    SendC2DQueue.main(request)

    assert sender.send_many.call_count == 1
    assert [(o.device_id, o.status) for o in publisher.published] == [("a", "Unknown")]


def test_bad_service_bus_settings_fail_before_anything_is_sent(sender, mocker) -> None:
    mocker.patch.object(clients, "get_publisher", side_effect=ConfigurationError(["SERVICEBUS_CONNECTION is missing"]))
    with pytest.raises(ConfigurationError):
        SendC2DQueue.main(queue_message({"deviceId": "a", "payload": 1}))
    sender.send_many.assert_not_called()


def test_journal_unreachable_before_sending_raises_and_sends_nothing(sender, publisher, journal) -> None:
    journal.claim.side_effect = StoreUnavailable("could not claim the queue request")
    with pytest.raises(StoreUnavailable):
        SendC2DQueue.main(queue_message({"deviceId": "a", "payload": 1}))
    sender.send_many.assert_not_called()


def test_journal_failing_after_the_send_still_publishes_and_completes(sender, publisher, journal) -> None:
    sender.errors["b"] = DeviceNotFound("gone")
    journal.record.side_effect = StoreUnavailable("could not record")
    SendC2DQueue.main(queue_message({"deviceIds": ["a", "b"], "payload": 1}))  # no raise: nothing to retry
    assert [(o.device_id, o.status) for o in publisher.published] == [("b", "SendFailed")]
