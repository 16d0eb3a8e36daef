"""IoT Hub delivery-feedback records: the model and a strict parser."""

from __future__ import annotations

import json
from dataclasses import dataclass

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
        missing = [k for k in ("originalMessageId", "deviceId", "statusCode") if not isinstance(item.get(k), str)]
        if missing:
            raise MalformedFeedback(f"feedback record {index} lacks {', '.join(missing)}")
        generation = item.get("deviceGenerationId")
        records.append(
            FeedbackRecord(
                original_message_id=item["originalMessageId"],
                device_id=item["deviceId"],
                status_code=item["statusCode"],
                description=str(item.get("description") or ""),
                enqueued_time_utc=str(item.get("enqueuedTimeUtc") or ""),
                device_generation_id=str(generation) if generation is not None else None,
            )
        )
    return records
