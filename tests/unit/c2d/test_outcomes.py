from __future__ import annotations

from c2d.errors import DeviceNotFound
from c2d.feedback import FeedbackRecord
from c2d.messages import C2DMessage
from c2d.outcomes import outcome_from_feedback, outcome_id, send_failed_outcome
from c2d.servicebus import to_service_bus_message


def test_outcome_id_is_deterministic_and_distinguishes_every_part() -> None:
    base = ("dev-1", "m1", "Success", "2026-11-26T10:00:00Z")
    assert outcome_id(*base) == outcome_id(*base)
    for index, other in enumerate(("dev-2", "m2", "Expired", "2026-11-26T10:00:01Z")):
        changed = list(base)
        changed[index] = other
        assert outcome_id(*changed) != outcome_id(*base), f"part {index} must change the id"
    # Pinned: changing the namespace or the layout would break duplicate detection across deployments.
    assert outcome_id(*base) == "d558aa0f-6ecd-57e9-8b62-f4074649c7aa"


def test_outcome_ids_collide_across_devices_no_more() -> None:
    """One caller messageId sent to three devices: three distinct outcome ids (duplicate detection
    used to drop the second and third)."""
    records = [FeedbackRecord("job-7", device, "Success", "Success", "2026-11-26T10:00:00Z") for device in "abc"]
    assert len({outcome_from_feedback(r).message_id for r in records}) == 3


def test_redelivered_feedback_record_keeps_its_id() -> None:
    record = FeedbackRecord("m1", "dev-1", "Success", "Success", "2026-11-26T10:00:00Z", "1")
    assert outcome_from_feedback(record).message_id == outcome_from_feedback(record).message_id


def test_service_bus_message_fields() -> None:
    record = FeedbackRecord("m1", "dev-1", "Success", "Success", "2026-11-26T10:00:00Z", "1")
    message = to_service_bus_message(outcome_from_feedback(record))
    assert message.message_id == outcome_id("dev-1", "m1", "Success", "2026-11-26T10:00:00Z")
    assert message.correlation_id == "m1"
    assert message.subject == "Success"
    assert message.content_type == "application/json"
    assert message.application_properties["status"] == "Success"
    assert message.application_properties["deviceId"] == "dev-1"


def test_send_failed_outcome_keeps_reason_and_correlation() -> None:
    message = C2DMessage(device_id="dev-1", message_id="m1", body=b"", correlation_id="job-1")
    outcome = send_failed_outcome(message, DeviceNotFound("device dev-1 is not registered"), request_id="q-1")
    assert outcome.status == "SendFailed"
    assert outcome.description.startswith("DeviceNotFound")
    assert outcome.body["correlationId"] == "job-1"
    assert outcome.message_id == outcome_id("dev-1", "m1", "SendFailed", "request:q-1")


def test_send_failed_outcomes_of_one_request_differ_by_device_and_repeat_on_retry() -> None:
    error = DeviceNotFound("gone")
    first = [send_failed_outcome(None, error, request_id="q-1", device_id=d, message_id="") for d in ("a", "b")]
    retry = [send_failed_outcome(None, error, request_id="q-1", device_id=d, message_id="") for d in ("a", "b")]
    assert first[0].message_id != first[1].message_id
    assert [o.message_id for o in first] == [o.message_id for o in retry]
