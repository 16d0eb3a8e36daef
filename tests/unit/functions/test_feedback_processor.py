"""FeedbackProcessor through `main` with a real azure.functions.TimerRequest; the feedback receiver and
the publisher are replaced at the adapter boundary."""

from __future__ import annotations

import json
import logging
from unittest.mock import Mock

import azure.functions as func
import pytest
from pytest_mock import MockerFixture

import FeedbackProcessor
from c2d import clients
from c2d.errors import PublishFailed, Unavailable
from c2d.iothub import FeedbackReceiver
from c2d.outcomes import outcome_id


def record(message_id: str, status: str = "Success", device: str = "dev-1") -> dict:
    return {
        "originalMessageId": message_id,
        "deviceId": device,
        "deviceGenerationId": "638000000000000000",
        "statusCode": status,
        "description": status,
        "enqueuedTimeUtc": "2026-11-26T10:00:00.0000000Z",
    }


class Feedback:
    """A feedback message as the receiver hands it out; remembers how it was settled."""

    def __init__(self, body: bytes, delivery_count: int = 0) -> None:
        self.body = body
        self.delivery_count = delivery_count
        self.settled: list[str] = []

    def accept(self) -> None:
        self.settled.append("accept")

    def release(self) -> None:
        self.settled.append("release")

    def reject(self, reason: str) -> None:
        self.settled.append("reject")


@pytest.fixture
def receiver(mocker: MockerFixture) -> Mock:
    mock = mocker.create_autospec(FeedbackReceiver, instance=True)
    mock.batches = []
    mock.receive.side_effect = lambda max_messages, timeout_s: mock.batches.pop(0) if mock.batches else []
    mocker.patch.object(clients, "get_feedback_receiver", return_value=mock)
    return mock


@pytest.fixture(autouse=True)
def fast_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_MAX_DRAIN_SECONDS", "5")
    monkeypatch.setenv("FEEDBACK_IDLE_WAIT_SECONDS", "0.1")


def run() -> None:
    FeedbackProcessor.main(func.TimerRequest(past_due=False))


def test_publishes_one_outcome_per_record_then_accepts(receiver, publisher) -> None:
    first = Feedback(json.dumps([record("m1"), record("m2", "Rejected", "dev-2")]).encode())
    second = Feedback(json.dumps([record("m3", "Expired")]).encode())
    receiver.batches = [[first], [second]]
    order: list[str] = []
    publisher.publish.side_effect = lambda outcomes: (order.append("publish"), publisher.published.extend(outcomes))
    first.accept = lambda: order.append("accept")  # type: ignore[method-assign]

    run()

    assert [o.original_message_id for o in publisher.published] == ["m1", "m2", "m3"]
    assert order == ["publish", "accept", "publish"], "feedback must be accepted only after its outcomes are published"
    assert second.settled == ["accept"]
    rejected = publisher.published[1]
    assert rejected.status == "Rejected" and rejected.device_id == "dev-2"
    assert rejected.application_properties == {
        "deviceId": "dev-2",
        "status": "Rejected",
        "originalMessageId": "m2",
        "description": "Rejected",
        "enqueuedTimeUtc": "2026-11-26T10:00:00.0000000Z",
    }
    assert json.loads(rejected.body_json()) == record("m2", "Rejected", "dev-2")


def test_publish_failure_releases_and_accepts_nothing(receiver, publisher, caplog) -> None:
    feedback = [Feedback(json.dumps([record("m1")]).encode()), Feedback(json.dumps([record("m2")]).encode())]
    receiver.batches = [feedback, [Feedback(json.dumps([record("m3")]).encode())]]
    publisher.publish.side_effect = PublishFailed("service bus down")
    caplog.set_level(logging.INFO)

    run()  # must not raise: the next timer run tries again

    assert [f.settled for f in feedback] == [["release"], ["release"]]
    assert receiver.receive.call_count == 1, "stop draining while Service Bus is down"
    assert "feedback-publish-failed" in caplog.text


def test_malformed_feedback_is_rejected_and_the_rest_processed(receiver, publisher, caplog) -> None:
    bad = [Feedback(b"{not json"), Feedback(b'{"an":"object"}'), Feedback(b'[{"deviceId":"d"}]')]
    good = Feedback(json.dumps([record("m1")]).encode())
    receiver.batches = [[*bad, good]]

    run()

    assert [f.settled for f in bad] == [["reject"]] * 3
    assert good.settled == ["accept"]
    assert [o.original_message_id for o in publisher.published] == ["m1"]
    assert caplog.text.count("feedback-malformed") == 3


def test_receive_failure_does_not_crash(receiver, publisher) -> None:
    receiver.receive.side_effect = Unavailable("hub unreachable")
    run()
    publisher.publish.assert_not_called()


def test_drain_stops_when_the_endpoint_is_empty(receiver, publisher) -> None:
    receiver.batches = [[Feedback(json.dumps([record("m1")]).encode())]]
    run()
    assert receiver.receive.call_count == 2  # one batch, then one empty receive


def test_redelivered_feedback_gets_the_same_outcome_ids(receiver, publisher) -> None:
    body = json.dumps([record("m1"), record("m1", "Expired")]).encode()
    receiver.batches = [[Feedback(body)], [Feedback(body)]]

    run()

    ids = [o.message_id for o in publisher.published]
    assert ids[:2] == ids[2:]
    when = "2026-11-26T10:00:00.0000000Z"
    assert ids[0] == outcome_id("dev-1", "m1", "Success", when) != ids[1] == outcome_id("dev-1", "m1", "Expired", when)


def test_topic_unreachable_leaves_feedback_untouched_on_the_hub(receiver, publisher, caplog) -> None:
    """Releasing feedback every run during an outage would use up its deliveries (IoT Hub drops it
    after maxDeliveryCount): while the topic cannot be reached, no feedback is taken at all."""
    receiver.batches = [[Feedback(json.dumps([record("m1")]).encode())]]
    publisher.check_reachable.side_effect = PublishFailed("the outcome topic cannot be reached")
    caplog.set_level(logging.INFO)

    for _ in range(12):
        run()

    receiver.receive.assert_not_called()
    assert "feedback-paused" in caplog.text
    publisher.check_reachable.side_effect = None
    run()
    assert [o.original_message_id for o in publisher.published] == ["m1"]


def test_feedback_link_is_closed_after_every_run(receiver, publisher) -> None:
    receiver.batches = [[Feedback(json.dumps([record("m1")]).encode())]]
    run()
    receiver.close.assert_called_once()
    receiver.receive.side_effect = Unavailable("hub unreachable")
    run()
    assert receiver.close.call_count == 2


def test_redelivered_feedback_is_logged_with_its_delivery_count(receiver, publisher, caplog) -> None:
    receiver.batches = [[Feedback(json.dumps([record("m1")]).encode(), delivery_count=7)]]
    caplog.set_level(logging.INFO)
    run()
    assert 'c2d.feedback-redelivered {"deliveryCount":7' in caplog.text


def test_bad_service_bus_settings_fail_before_any_feedback_is_taken(receiver, monkeypatch) -> None:
    monkeypatch.delenv("SERVICEBUS_CONNECTION")
    with pytest.raises(Exception, match="SERVICEBUS_CONNECTION"):
        run()
    receiver.receive.assert_not_called()


def test_outcomes_carry_the_requests_correlation_and_x_properties(receiver, publisher, status_store) -> None:
    from c2d.status_store import RequestContext

    status_store.contexts.return_value = {("dev-1", "m1"): RequestContext("run-7", {"x-workflow-run-id": "wf-1"})}
    receiver.batches = [[Feedback(json.dumps([record("m1"), record("m2")]).encode())]]
    run()
    first, second = publisher.published
    assert first.application_properties["correlationId"] == "run-7"
    assert first.application_properties["x-workflow-run-id"] == "wf-1"
    assert json.loads(first.body_json())["correlationId"] == "run-7"
    assert "correlationId" not in second.application_properties, "no context: nothing invented"


def test_final_state_is_recorded_after_publishing_and_before_accepting(receiver, publisher, status_store) -> None:
    order: list[str] = []
    feedback = Feedback(json.dumps([record("m1", "Rejected")]).encode())
    feedback.accept = lambda: order.append("accept")  # type: ignore[method-assign]
    publisher.publish.side_effect = lambda outcomes: order.append("publish")
    status_store.record_outcomes.side_effect = lambda outcomes: order.append("record")
    receiver.batches = [[feedback]]
    run()
    assert order == ["publish", "record", "accept"]


def test_status_table_failure_releases_the_feedback(receiver, publisher, status_store) -> None:
    from c2d.errors import StoreUnavailable

    status_store.record_outcomes.side_effect = StoreUnavailable("could not record")
    feedback = Feedback(json.dumps([record("m1")]).encode())
    receiver.batches = [[feedback]]
    run()
    assert feedback.settled == ["release"], "published but not recorded: redeliver, never accept"


def test_status_table_unreachable_leaves_feedback_on_the_hub(receiver, publisher, status_store) -> None:
    from c2d.errors import StoreUnavailable

    status_store.check_reachable.side_effect = StoreUnavailable("down")
    receiver.batches = [[Feedback(json.dumps([record("m1")]).encode())]]
    run()
    receiver.receive.assert_not_called()


def test_outcomes_are_logged_64_to_a_line_each_with_its_searchable_fields(receiver, publisher, caplog) -> None:
    records = [record(f"m{i}", "Success" if i % 2 else "Rejected", f"dev-{i}") for i in range(130)]
    receiver.batches = [[Feedback(json.dumps(records[:64]).encode()), Feedback(json.dumps(records[64:]).encode())]]
    caplog.set_level(logging.INFO)
    run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("c2d.outcome ")]
    assert len(lines) == 3, "one line per 64 outcomes, not one per outcome"
    logged = [o for line in lines for o in json.loads(line.split(" ", 1)[1])["outcomes"]]
    assert [(o["deviceId"], o["messageId"], o["status"]) for o in logged] == [
        (r["deviceId"], r["originalMessageId"], r["statusCode"]) for r in records
    ]
    assert [json.loads(line.split(" ", 1)[1])["count"] for line in lines] == [64, 64, 2]
    assert set(logged[0]) == {"messageId", "deviceId", "status", "correlationId", "description"}


def test_a_run_stops_before_a_batch_would_take_it_past_its_drain_time(receiver, publisher, status_store) -> None:
    """A timer occurrence that comes while the run is still going is skipped: overrunning the period would
    leave the backlog untouched for a whole period."""
    from c2d.config import FeedbackSettings
    from c2d.feedback_drain import drain_feedback

    now = [0.0]
    publisher.publish.side_effect = lambda outcomes: now.__setitem__(0, now[0] + 3.0)  # each batch takes 3 s
    receiver.batches = [[Feedback(json.dumps([record(f"m{i}")]).encode())] for i in range(5)]

    report = drain_feedback(receiver, publisher, status_store, FeedbackSettings(max_drain_s=8.0),
                            clock=lambda: now[0])

    assert report.stopped == "time-limit" and report.accepted == 2, "a third batch would end at 9 s"
    assert now[0] == 6.0
    assert len(receiver.batches) == 3, "nothing more taken from the hub"
