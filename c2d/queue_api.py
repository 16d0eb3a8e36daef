"""Queue-triggered sends (SendC2DQueue): same schema as HTTP, with deviceId or deviceIds in the body.

A queued request is sent at most once, whatever the host retries:
- everything the path needs (settings, sender, publisher, journal) is resolved before sending, so
  a configuration problem fails the invocation with nothing sent;
- the request is claimed in the send journal before sending and each device's result recorded
  after; a retry that finds the claim publishes the recorded results and never sends again (a
  device whose result was never recorded is `Unknown`);
- a request that can never succeed (invalid, unknown device, too large) is not retried: it is
  published to the outcome topic as `SendFailed` and the queue message completes;
- a transient failure (throttled, queue full, hub unreachable) with nothing sent withdraws the
  claim and raises, so the host retries (and eventually poisons the message); message ids are
  derived from the queue message id, so a retry re-sends the same ids;
- in a fan-out where some devices already got the message, raising would send them a duplicate,
  so the transient failures are published instead (`SendFailed`, with a retriable reason);
- a message whose fate is unknown (connection lost before IoT Hub answered) is never re-sent:
  it is published as `Unknown`; its delivery feedback, if any, follows as usual.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from c2d.commands import IOTHUB_ID, RequestKind, parse_command, parse_json_body, utc_now
from c2d.config import SendSettings
from c2d.errors import C2DError, StoreUnavailable, ValidationFailed
from c2d.journal import SendJournal
from c2d.logs import log_event
from c2d.messages import C2DMessage, SendResult
from c2d.outcomes import UNKNOWN, Outcome, send_failed_outcome
from c2d.ports import MessageSender, OutcomeSink
from c2d.sending import log_results

logger = logging.getLogger("c2d.queue")
QUEUE_ID_NAMESPACE = uuid.UUID("0b7f3e0e-8d3c-4bb4-a3a4-6c2d9f1e5a77")


@dataclass(frozen=True)
class QueueResult:
    sent: int
    failed: int
    unknown: int
    resent: bool = True  # False when a retry published an earlier attempt's results instead


def queue_message_id(queue_message_id: str, device_id: str) -> str:
    """Stable across host retries of the same queue message."""
    return str(uuid.uuid5(QUEUE_ID_NAMESPACE, f"{queue_message_id}/{device_id}"))


def handle_queue_request(
    raw_body: bytes,
    queue_id: str,
    get_sender: Callable[[], MessageSender],
    get_publisher: Callable[[], OutcomeSink],
    get_settings: Callable[[], SendSettings],
    get_journal: Callable[[], SendJournal],
    now: Callable[[], datetime] = utc_now,
) -> QueueResult:
    """Send the request at most once; raises a `C2DError` only when a retry can help and cannot duplicate."""
    settings = get_settings()
    publisher = get_publisher()
    data: object = None
    try:
        data = parse_json_body(raw_body)
        command = parse_command(data, RequestKind.QUEUE, default_ttl_s=settings.default_ttl_s)
    except ValidationFailed as error:
        outcomes = _invalid_request_outcomes(data, queue_id, error)
        log_event(logger, "invalid-request", logging.WARNING, queueMessageId=queue_id, reason=error.message)
        publisher.publish(outcomes)
        return QueueResult(sent=0, failed=len(outcomes), unknown=0)

    sender, journal = get_sender(), get_journal()
    messages = command.to_messages(now(), lambda device_id: queue_message_id(queue_id, device_id))
    earlier = journal.claim(queue_id)
    if earlier is not None:
        results = [earlier.result_for(m.device_id, m.message_id) for m in messages]
        log_event(
            logger, "queue-retry-not-resent", logging.WARNING, queueMessageId=queue_id,
            recorded=len(earlier.results), devices=len(messages),
        )
        publisher.publish(_outcomes(messages, results, queue_id))
        return _counts(results, resent=False)

    results = sender.send_many(messages)
    log_results(messages, results)
    left_process = [r for r in results if r.sent or r.status == "Unknown"]
    transient = [r.error for r in results if r.error is not None and not r.error.permanent and r.status == "Failed"]
    if transient and not left_process:
        journal.release(queue_id)  # nothing reached IoT Hub: the host's retry may send
        publisher.publish(_outcomes(messages, results, queue_id, permanent_only=True))
        raise transient[0]
    try:
        journal.record(queue_id, results)
    except StoreUnavailable as error:
        # Still claimed: a retry would report the unrecorded devices Unknown, never send them twice.
        log_event(logger, "journal-record-failed", logging.ERROR, queueMessageId=queue_id, reason=error.message)
    publisher.publish(_outcomes(messages, results, queue_id))
    return _counts(results)


def _outcomes(
    messages: Sequence[C2DMessage], results: Sequence[SendResult], queue_id: str, *, permanent_only: bool = False
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for message, result in zip(messages, results, strict=True):
        if result.error is None or (permanent_only and not result.error.permanent):
            continue
        status = UNKNOWN if result.status == "Unknown" else "SendFailed"
        outcomes.append(send_failed_outcome(message, result.error, request_id=queue_id, status=status))
    return outcomes


def _counts(results: Sequence[SendResult], *, resent: bool = True) -> QueueResult:
    sent = sum(1 for r in results if r.sent)
    unknown = sum(1 for r in results if r.status == "Unknown")
    return QueueResult(sent=sent, failed=len(results) - sent - unknown, unknown=unknown, resent=resent)


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
        return [send_failed_outcome(None, error, request_id=queue_id, message_id=message_id or queue_id)]
    return [
        send_failed_outcome(
            None, error, request_id=queue_id, device_id=device_id,
            message_id=message_id or queue_message_id(queue_id, device_id),
        )
        for device_id in device_ids[:1000]
    ]
