from __future__ import annotations

from c2d.errors import DeviceNotFound
from c2d.feedback import FeedbackRecord
from c2d.messages import C2DMessage
from c2d.outcomes import outcome_from_feedback, outcome_id, send_failed_outcome
from c2d.servicebus import to_service_bus_message


def test_outcome_id_is_deterministic_and_distinguishes_status() -> None:
    assert outcome_id("m1", "Success") == outcome_id("m1", "Success")
    assert outcome_id("m1", "Success") != outcome_id("m1", "Expired")
    assert outcome_id("m1", "Success") != outcome_id("m2", "Success")
    # Pinned: changing the namespace would break duplicate detection across deployments.
    assert outcome_id("m1", "Success") == "38f97fe6-f31e-509e-86ae-49b289dd1efe"


def test_service_bus_message_fields() -> None:
    record = FeedbackRecord("m1", "dev-1", "Success", "Success", "2026-11-26T10:00:00Z", "1")
    message = to_service_bus_message(outcome_from_feedback(record))
    assert message.message_id == outcome_id("m1", "Success")
    assert message.correlation_id == "m1"
    assert message.subject == "Success"
    assert message.content_type == "application/json"
    assert message.application_properties["status"] == "Success"
    assert message.application_properties["deviceId"] == "dev-1"


def test_send_failed_outcome_keeps_reason_and_correlation() -> None:
    message = C2DMessage(device_id="dev-1", message_id="m1", body=b"", correlation_id="job-1")
    outcome = send_failed_outcome(message, DeviceNotFound("device dev-1 is not registered"))
    assert outcome.status == "SendFailed"
    assert outcome.description.startswith("DeviceNotFound")
    assert outcome.body["correlationId"] == "job-1"
    assert outcome.message_id == outcome_id("m1", "SendFailed")
