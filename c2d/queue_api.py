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
from dataclasses import dataclass, replace
from datetime import datetime

from c2d.commands import IOTHUB_ID, C2DCommand, RequestKind, parse_command, parse_json_body, utc_now
from c2d.config import SendSettings, StatusSettings
from c2d.errors import C2DError, StoreUnavailable, ValidationFailed
from c2d.journal import SendJournal
from c2d.logs import log_event
from c2d.messages import C2DMessage, SendResult
from c2d.outcomes import UNKNOWN, Outcome, send_failed_outcome
from c2d.ports import DeviceRegistry, MessageSender, OutcomeSink
from c2d.sending import log_results
from c2d.status_store import SentRequest, StatusStore, fan_out_message_id

logger = logging.getLogger("c2d.queue")
QUEUE_ID_NAMESPACE = uuid.UUID("0b7f3e0e-8d3c-4bb4-a3a4-6c2d9f1e5a77")


@dataclass(frozen=True)
class QueueResult:
    sent: int
    failed: int
    unknown: int
    resent: bool = True  # False when a retry published an earlier attempt's results instead


def queue_message_id(queue_message_id: str, device_id: str) -> str:
    """A single-device request's message id: stable across host retries of the same queue message."""
    return str(uuid.uuid5(QUEUE_ID_NAMESPACE, f"{queue_message_id}/{device_id}"))


def queue_request_id(queue_message_id: str) -> str:
    """The status store's request id of a queued request (a fan-out's message ids are `<id>.<index>`)."""
    return uuid.uuid5(QUEUE_ID_NAMESPACE, queue_message_id).hex


@dataclass(frozen=True)
class QueueDependencies:
    """Everything a queued request needs, resolved before anything is sent (getters may raise ConfigurationError)."""

    sender: Callable[[], MessageSender]
    publisher: Callable[[], OutcomeSink]
    send_settings: Callable[[], SendSettings]
    journal: Callable[[], SendJournal]
    status_store: Callable[[], StatusStore]
    registry: Callable[[], DeviceRegistry]
    status_settings: Callable[[], StatusSettings]


def handle_queue_request(
    raw_body: bytes, queue_id: str, deps: QueueDependencies, now: Callable[[], datetime] = utc_now
) -> QueueResult:
    """Send the request at most once; raises a `C2DError` only when a retry can help and cannot duplicate."""
    settings = deps.send_settings()
    publisher = deps.publisher()
    data: object = None
    try:
        data = parse_json_body(raw_body)
        command = parse_command(data, RequestKind.QUEUE, default_ttl_s=settings.default_ttl_s)
    except ValidationFailed as error:
        return _refuse(publisher, _invalid_request_outcomes(data, queue_id, error), queue_id, error)

    sender, journal, store, status = deps.sender(), deps.journal(), deps.status_store(), deps.status_settings()
    fan_out = not (isinstance(data, dict) and "deviceId" in data)
    if command.query is not None:
        try:
            found = deps.registry().query_device_ids(command.query, status.max_query_devices)
        except ValidationFailed as error:  # IoT Hub refused the query, or it selects too many devices
            outcome = send_failed_outcome(None, error, request_id=queue_id, message_id=queue_id)
            return _refuse(publisher, [outcome], queue_id, error)
        command = replace(command, device_ids=tuple(found.device_ids), query=None)
        if not command.device_ids:
            log_event(logger, "query-selected-nothing", queueMessageId=queue_id)
            return QueueResult(sent=0, failed=0, unknown=0)

    moment, request_id = now(), queue_request_id(queue_id)
    indexes = {device: i for i, device in enumerate(command.device_ids)}

    def message_id(device: str) -> str:
        return fan_out_message_id(request_id, indexes[device]) if fan_out else queue_message_id(queue_id, device)

    messages = command.to_messages(moment, message_id)
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
    _record_status(store, command, request_id, messages, results, moment)
    publisher.publish(_outcomes(messages, results, queue_id))
    return _counts(results)


def _refuse(publisher: OutcomeSink, outcomes: list[Outcome], queue_id: str, error: C2DError) -> QueueResult:
    """A request that can never be sent: publish why, and complete the queue message."""
    log_event(logger, "invalid-request", logging.WARNING, queueMessageId=queue_id, reason=error.message)
    publisher.publish(outcomes)
    return QueueResult(sent=0, failed=len(outcomes), unknown=0)


def _record_status(
    store: StatusStore, command: C2DCommand, request_id: str, messages: Sequence[C2DMessage],
    results: Sequence[SendResult], moment: datetime,
) -> None:
    sent = SentRequest(
        request_id=request_id, ack=command.ack, sent_at=moment,
        expires_at=messages[0].expires_at if messages else None, correlation_id=command.correlation_id,
        properties=command.outcome_properties, messages=messages, results=results,
    )
    try:
        store.record_sent(sent)
    except StoreUnavailable as error:
        log_event(logger, "status-write-failed", logging.ERROR, requestId=request_id, reason=error.message)


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
