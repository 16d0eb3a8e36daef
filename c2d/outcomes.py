"""Outcome events: what became of a C2D message, as published to the outcome topic.

The Service Bus `message_id` of an outcome is derived from what identifies that one event: the
device, the C2D message id, the status and the occurrence (IoT Hub's `enqueuedTimeUtc` for a
feedback record, the request id for an outcome this app decides itself). So a feedback record
published twice (after a redelivery) is dropped by the topic's duplicate detection, while the same
caller `messageId` sent to several devices gives each device its own outcome.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from c2d.errors import C2DError
from c2d.feedback import FeedbackRecord
from c2d.messages import C2DMessage

#: Fixed namespace for outcome ids: changing it would defeat duplicate detection across versions.
OUTCOME_NAMESPACE = uuid.UUID("6f1d8a52-3c0e-4f0e-9b7e-2d7c1c2d0a11")
#: Outcomes this app decides itself (queue requests): refused for good, or sent with an unknown result.
SEND_FAILED = "SendFailed"
UNKNOWN = "Unknown"


def outcome_id(device_id: str, original_message_id: str, status: str, occurrence: str) -> str:
    """Deterministic Service Bus message id of one outcome event (for duplicate detection)."""
    return str(uuid.uuid5(OUTCOME_NAMESPACE, "\n".join((device_id, original_message_id, status, occurrence))))


@dataclass(frozen=True)
class Outcome:
    status: str
    device_id: str
    original_message_id: str
    description: str
    enqueued_time_utc: str
    #: What makes this event unique beside device, message and status (see `outcome_id`).
    occurrence: str
    body: dict[str, object] = field(default_factory=dict)
    #: The caller's correlationId and `x-...` properties, carried from the request.
    correlation_id: str | None = None
    caller_properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return outcome_id(self.device_id, self.original_message_id, self.status, self.occurrence)

    @property
    def application_properties(self) -> dict[str, str]:
        """Properties subscriptions filter on (e.g. `status <> 'Success'`, `correlationId = 'run-7'`)."""
        properties = {
            **self.caller_properties,
            "deviceId": self.device_id,
            "status": self.status,
            "originalMessageId": self.original_message_id,
            "description": self.description,
            "enqueuedTimeUtc": self.enqueued_time_utc,
        }
        if self.correlation_id:
            properties["correlationId"] = self.correlation_id
        return properties

    def body_json(self) -> str:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False)

    def log_fields(self) -> dict[str, str]:
        return {"messageId": self.original_message_id, "deviceId": self.device_id, "status": self.status}


def outcome_from_feedback(
    record: FeedbackRecord, correlation_id: str | None = None, caller_properties: Mapping[str, str] | None = None
) -> Outcome:
    body: dict[str, object] = dict(record.to_dict())
    if correlation_id:
        body["correlationId"] = correlation_id
    if caller_properties:
        body["properties"] = dict(caller_properties)
    return Outcome(
        status=record.status_code,
        device_id=record.device_id,
        original_message_id=record.original_message_id,
        description=record.description,
        enqueued_time_utc=record.enqueued_time_utc,
        occurrence=record.enqueued_time_utc,
        body=body,
        correlation_id=correlation_id,
        caller_properties=dict(caller_properties or {}),
    )


def _utc_now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def send_failed_outcome(
    message: C2DMessage | None,
    error: C2DError,
    *,
    request_id: str,
    device_id: str = "",
    message_id: str = "",
    status: str = SEND_FAILED,
) -> Outcome:
    """A queue request this app settled itself, as an outcome: `SendFailed` (refused for good, or
    a transient failure it will not retry) or `Unknown` (handed to IoT Hub, no confirmation came).

    `request_id` (the queue message id) keeps the id stable when the same request is retried.
    """
    now = _utc_now_text()
    device = message.device_id if message else device_id
    original = message.message_id if message else message_id
    return Outcome(
        status=status,
        device_id=device,
        original_message_id=original,
        description=f"{error.code}: {error.message}",
        enqueued_time_utc=now,
        occurrence=f"request:{request_id}",
        correlation_id=message.correlation_id if message else None,
        caller_properties={
            k: v for k, v in (message.properties if message else {}).items() if k.lower().startswith("x-")
        },
        body={
            "originalMessageId": original,
            "deviceId": device,
            "correlationId": message.correlation_id if message else None,
            "statusCode": status,
            "description": error.message,
            "error": error.to_dict(),
            "enqueuedTimeUtc": now,
        },
    )
