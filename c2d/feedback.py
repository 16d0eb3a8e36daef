"""IoT Hub delivery-feedback records: the model and a strict parser."""

from __future__ import annotations

import json
from dataclasses import dataclass

_REQUIRED = ("originalMessageId", "deviceId", "statusCode")
FEEDBACK_STATUSES = frozenset({"Success", "Expired", "DeliveryCountExceeded", "Rejected", "Purged"})


class MalformedFeedback(ValueError):
    """A feedback message that can never be processed (it is dead-lettered, not retried)."""


@dataclass(frozen=True)
class FeedbackRecord:
    original_message_id: str
    device_id: str
    status_code: str
    description: str
    enqueued_time_utc: str
    device_generation_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "originalMessageId": self.original_message_id,
            "deviceId": self.device_id,
            "deviceGenerationId": self.device_generation_id,
            "statusCode": self.status_code,
            "description": self.description,
            "enqueuedTimeUtc": self.enqueued_time_utc,
        }


def parse_feedback(body: bytes) -> list[FeedbackRecord]:
    """Parse a feedback message body (a JSON array of records). Raises `MalformedFeedback`."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise MalformedFeedback(f"feedback body is not UTF-8 JSON: {type(error).__name__}") from None
    if not isinstance(data, list):
        raise MalformedFeedback("feedback body is not a JSON array")
    records = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise MalformedFeedback(f"feedback record {index} is not an object")
        message_id, device_id, status = item.get("originalMessageId"), item.get("deviceId"), item.get("statusCode")
        if not (isinstance(message_id, str) and isinstance(device_id, str) and isinstance(status, str)):
            missing = [k for k in _REQUIRED if not isinstance(item.get(k), str)]
            raise MalformedFeedback(f"feedback record {index} lacks {', '.join(missing)}")
        generation = item.get("deviceGenerationId")
        records.append(
            FeedbackRecord(
                message_id, device_id, status, str(item.get("description") or ""),
                str(item.get("enqueuedTimeUtc") or ""), str(generation) if generation is not None else None,
            )
        )
    return records
