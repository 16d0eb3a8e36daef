"""Queue-triggered sends (SendC2DQueue): same schema as HTTP, with deviceId or deviceIds in the body.

Retry policy, decided here so the function stays thin:
- a request that can never succeed (invalid, unknown device, too large) is not retried: it is
  published to the outcome topic as `SendFailed` and the queue message completes;
- a transient failure (throttled, queue full, hub unreachable) raises, so the host retries and
  eventually poisons the message; message ids are derived from the queue message id, so a retry
  re-sends the same ids;
- in a fan-out where some devices already got the message, raising would send them a duplicate,
  so the transient failures are published instead (`SendFailed`, with a retriable reason) and
  the message completes;
- a message whose fate is unknown (connection lost before IoT Hub answered) is never re-sent:
  it is published as `SendUnknown`; its delivery feedback, if any, follows as usual.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from c2d.commands import IOTHUB_ID, RequestKind, parse_command, parse_json_body, utc_now
from c2d.config import SendSettings
from c2d.errors import C2DError, ValidationFailed
from c2d.logs import log_event
from c2d.outcomes import Outcome, send_failed_outcome
from c2d.ports import MessageSender, OutcomeSink
from c2d.sending import send_command

logger = logging.getLogger("c2d.queue")
QUEUE_ID_NAMESPACE = uuid.UUID("0b7f3e0e-8d3c-4bb4-a3a4-6c2d9f1e5a77")
SEND_UNKNOWN = "SendUnknown"


@dataclass(frozen=True)
class QueueResult:
    sent: int
    failed: int
    unknown: int


def queue_message_id(queue_message_id: str, device_id: str) -> str:
    """Stable across host retries of the same queue message."""
    return str(uuid.uuid5(QUEUE_ID_NAMESPACE, f"{queue_message_id}/{device_id}"))


def handle_queue_request(
    raw_body: bytes,
    queue_id: str,
    get_sender: Callable[[], MessageSender],
    get_publisher: Callable[[], OutcomeSink],
    get_settings: Callable[[], SendSettings],
    now: Callable[[], datetime] = utc_now,
) -> QueueResult:
    """Send the request; raises a `C2DError` only when a retry can help and cannot duplicate."""
    settings = get_settings()
    data: object = None
    try:
        data = parse_json_body(raw_body)
        command = parse_command(data, RequestKind.QUEUE, default_ttl_s=settings.default_ttl_s)
    except ValidationFailed as error:
        outcomes = _invalid_request_outcomes(data, queue_id, error)
        log_event(logger, "invalid-request", logging.WARNING, queueMessageId=queue_id, reason=error.message)
        get_publisher().publish(outcomes)
        return QueueResult(sent=0, failed=len(outcomes), unknown=0)

    messages, results = send_command(
        command, get_sender(), now(), lambda device_id: queue_message_id(queue_id, device_id)
    )
    sent = sum(1 for r in results if r.sent)
    transient = [r.error for r in results if r.error is not None and not r.error.permanent and r.status == "Failed"]
    if transient and sent == 0:
        failed_for_good = [
            send_failed_outcome(m, r.error) for m, r in zip(messages, results, strict=True)
            if r.error is not None and r.error.permanent
        ]
        get_publisher().publish(failed_for_good)
        raise transient[0]

    outcomes: list[Outcome] = []
    for message, result in zip(messages, results, strict=True):
        if result.error is None:
            continue
        outcome = send_failed_outcome(message, result.error)
        if result.status == "Unknown":
            outcome = _as_unknown(outcome)
        outcomes.append(outcome)
    get_publisher().publish(outcomes)
    unknown = sum(1 for r in results if r.status == "Unknown")
    return QueueResult(sent=sent, failed=len(results) - sent - unknown, unknown=unknown)


def _as_unknown(outcome: Outcome) -> Outcome:
    body = dict(outcome.body, statusCode=SEND_UNKNOWN)
    return Outcome(
        status=SEND_UNKNOWN,
        device_id=outcome.device_id,
        original_message_id=outcome.original_message_id,
        description=outcome.description,
        enqueued_time_utc=outcome.enqueued_time_utc,
        body=body,
    )


def _invalid_request_outcomes(data: object, queue_id: str, error: C2DError) -> list[Outcome]:
    """One SendFailed per device the request named validly (or one with no device), so it is seen."""
    device_ids: list[str] = []
    message_id = ""
    if isinstance(data, dict):
        candidates = [data.get("deviceId")] + (data["deviceIds"] if isinstance(data.get("deviceIds"), list) else [])
        device_ids = list(dict.fromkeys(d for d in candidates if isinstance(d, str) and IOTHUB_ID.fullmatch(d)))
        if isinstance(data.get("messageId"), str) and IOTHUB_ID.fullmatch(data["messageId"]):
            message_id = data["messageId"]
    if not device_ids:
        return [send_failed_outcome(None, error, device_id="", message_id=message_id or queue_id)]
    return [
        send_failed_outcome(
            None, error, device_id=device_id, message_id=message_id or queue_message_id(queue_id, device_id)
        )
        for device_id in device_ids[:1000]
    ]
