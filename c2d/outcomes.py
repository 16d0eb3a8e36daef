"""Outcome events: what became of a C2D message, as published to the outcome topic.

The Service Bus `message_id` of an outcome is derived from (originalMessageId, status), so a
feedback record published twice (after a redelivery) is dropped by the topic's duplicate detection.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from c2d.errors import C2DError
from c2d.feedback import FeedbackRecord
from c2d.messages import C2DMessage

#: Fixed namespace for outcome ids: changing it would defeat duplicate detection across versions.
OUTCOME_NAMESPACE = uuid.UUID("6f1d8a52-3c0e-4f0e-9b7e-2d7c1c2d0a11")
SEND_FAILED = "SendFailed"


def outcome_id(original_message_id: str, status: str) -> str:
    return str(uuid.uuid5(OUTCOME_NAMESPACE, f"{original_message_id}\n{status}"))


@dataclass(frozen=True)
class Outcome:
    status: str
    device_id: str
    original_message_id: str
    description: str
    enqueued_time_utc: str
    body: dict[str, object] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return outcome_id(self.original_message_id, self.status)

    @property
    def application_properties(self) -> dict[str, str]:
        """Properties subscriptions filter on (e.g. `status <> 'Success'`)."""
        return {
            "deviceId": self.device_id,
            "status": self.status,
            "originalMessageId": self.original_message_id,
            "description": self.description,
            "enqueuedTimeUtc": self.enqueued_time_utc,
        }

    def body_json(self) -> str:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False)

    def log_fields(self) -> dict[str, str]:
        return {"messageId": self.original_message_id, "deviceId": self.device_id, "status": self.status}


def outcome_from_feedback(record: FeedbackRecord) -> Outcome:
    return Outcome(
        status=record.status_code,
        device_id=record.device_id,
        original_message_id=record.original_message_id,
        description=record.description,
        enqueued_time_utc=record.enqueued_time_utc,
        body=dict(record.to_dict()),
    )


def send_failed_outcome(
    message: C2DMessage | None, error: C2DError, *, device_id: str = "", message_id: str = ""
) -> Outcome:
    """A request that can never be delivered (invalid, unknown device, too large), as an outcome."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    device = message.device_id if message else device_id
    original = message.message_id if message else message_id
    return Outcome(
        status=SEND_FAILED,
        device_id=device,
        original_message_id=original,
        description=f"{error.code}: {error.message}",
        enqueued_time_utc=now,
        body={
            "originalMessageId": original,
            "deviceId": device,
            "correlationId": message.correlation_id if message else None,
            "statusCode": SEND_FAILED,
            "description": error.message,
            "error": error.to_dict(),
            "enqueuedTimeUtc": now,
        },
    )
