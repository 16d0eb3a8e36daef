"""HTTP API logic: request bytes in, `ApiResponse` out. No azure.functions types here.

Sends follow the asynchronous request-reply pattern Logic Apps and Data Factory poll natively:
`202 Accepted` with `Location` (the delivery's status URL) and `Retry-After`; the status URL
answers `202` while the delivery is pending and `200` once it is final.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from c2d.commands import (
    IOTHUB_ID,
    C2DCommand,
    RequestKind,
    bad_id,
    check_body_size,
    parse_command,
    parse_json_body,
    utc_now,
)
from c2d.config import SendSettings, StatusSettings
from c2d.errors import (
    C2DError,
    ConfigurationError,
    HubLevelError,
    NotFound,
    RequestTooLarge,
    StoreUnavailable,
    ValidationFailed,
)
from c2d.links import StatusLinks
from c2d.logs import log_event
from c2d.messages import C2DMessage, SendResult
from c2d.ports import DeviceRegistry, MessageSender
from c2d.sending import log_results
from c2d.status import StatusView, status_of
from c2d.status_store import SentRequest, StatusStore, fan_out_message_id

logger = logging.getLogger("c2d.http")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, object]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendDependencies:
    """What the send routes resolve before anything is sent (each getter may raise ConfigurationError)."""

    sender: Callable[[], MessageSender]
    send_settings: Callable[[], SendSettings]
    status_store: Callable[[], StatusStore]
    status_settings: Callable[[], StatusSettings]
    registry: Callable[[], DeviceRegistry]


def error_response(error: C2DError) -> ApiResponse:
    headers = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s is not None else {}
    return ApiResponse(error.http_status, {"error": error.to_dict()}, headers)


def _misconfigured(error: ConfigurationError) -> ApiResponse:
    log_event(logger, "config", logging.ERROR, problems=error.problems)
    return ApiResponse(
        500,
        {"error": {"code": "ConfigurationError", "message": "the app is not configured; its log names the settings"}},
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


@dataclass(frozen=True)
class _Prepared:
    command: C2DCommand
    sender: MessageSender
    store: StatusStore
    status: StatusSettings


def _prepare(
    kind: RequestKind, device_id: str | None, raw_body: bytes, deps: SendDependencies
) -> _Prepared | ApiResponse:
    """Settings, size, validation, devices, adapters: everything before the send, or an early answer."""
    try:
        settings = deps.send_settings()
        check_body_size(raw_body, settings.max_request_bytes)
        command = parse_command(
            parse_json_body(raw_body), kind, route_device_id=device_id, default_ttl_s=settings.default_ttl_s,
            max_fan_out=settings.max_fan_out,
        )
        status = deps.status_settings()
        sender, store = deps.sender(), deps.status_store()
        if command.query is not None:
            found = deps.registry().query_device_ids(command.query, status.max_query_devices)
            log_event(logger, "query", query=command.query, devices=len(found.device_ids), pages=found.pages)
            if not found.device_ids:
                return ApiResponse(
                    200, {"query": command.query, "sent": 0, "failed": 0, "unknown": 0, "results": [],
                          "note": "the query selected no device; nothing was sent"},
                )
            command = replace(command, device_ids=tuple(found.device_ids), query=None)
    except ConfigurationError as error:
        return _misconfigured(error)
    except (ValidationFailed, RequestTooLarge) as error:
        return error_response(error)
    except C2DError as error:  # the registry could not answer the query
        return error_response(error)
    return _Prepared(command, sender, store, status)


def _sent_request(
    command: C2DCommand, request_id: str, messages: Sequence[C2DMessage], results: Sequence[SendResult], now: datetime,
) -> SentRequest:
    return SentRequest(
        request_id=request_id, ack=command.ack, sent_at=now,
        expires_at=messages[0].expires_at if messages else None,
        correlation_id=command.correlation_id, properties=command.outcome_properties,
        messages=messages, results=results,
    )


def _record(
    store: StatusStore, command: C2DCommand, request_id: str, messages: Sequence[C2DMessage],
    results: Sequence[SendResult], now: datetime,
) -> bool:
    """Write the status rows; False (logged) when the status table cannot be written."""
    try:
        store.record_sent(_sent_request(command, request_id, messages, results, now))
    except StoreUnavailable as error:
        return _write_failed(request_id, error)
    return True


def _recorded(writing: Future[None], request_id: str) -> bool:
    """Wait for a status write started in the background; False (logged here, in the invocation's own
    thread, so the line stays with the invocation) when the table could not be written."""
    try:
        writing.result()
    except StoreUnavailable as error:
        return _write_failed(request_id, error)
    return True


def _write_failed(request_id: str, error: StoreUnavailable) -> bool:
    log_event(logger, "status-write-failed", logging.ERROR, requestId=request_id, reason=error.message)
    return False


#: Status-table writes of fan-outs, run alongside the rest of the request (see `send_to_devices`).
_STATUS_WRITES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="c2d-status-write")

_STATUS_UNAVAILABLE_NOTE = "the status table could not be written: follow this message on the outcome topic"


def send_to_device(
    device_id: str, raw_body: bytes, deps: SendDependencies, links: StatusLinks,
    now: Callable[[], datetime] = utc_now,
) -> ApiResponse:
    """POST /api/devices/{deviceId}/messages -> 202 with Location, or the error's status."""
    prepared = _prepare(RequestKind.SINGLE, device_id, raw_body, deps)
    if isinstance(prepared, ApiResponse):
        return prepared
    command, moment, request_id = prepared.command, now(), uuid.uuid4().hex
    messages = command.to_messages(moment)
    results = prepared.sender.send_many(messages)
    log_results(messages, results)
    (message,), (result,) = messages, results
    recorded = result.error is None or result.status == "Unknown"
    if recorded:
        recorded = _record(prepared.store, command, request_id, messages, results, moment)
    if result.error is not None:
        return error_response(result.error)
    body: dict[str, object] = {
        "messageId": message.message_id,
        "deviceId": message.device_id,
        "ack": message.ack,
        "expiresAt": _iso(message.expires_at),
    }
    if message.correlation_id:
        body["correlationId"] = message.correlation_id
    if not recorded:
        body["note"] = _STATUS_UNAVAILABLE_NOTE
        return ApiResponse(202, body)
    url = links.delivery(message.device_id, message.message_id)
    body["statusUrl"] = url
    return ApiResponse(202, body, {"Location": url, "Retry-After": str(prepared.status.poll_s)})


def send_to_devices(
    raw_body: bytes, deps: SendDependencies, links: StatusLinks, *, respond_async: bool = False,
    now: Callable[[], datetime] = utc_now,
) -> ApiResponse:
    """POST /api/messages (fan-out) -> 207 with one result per device, in request order; with
    `Prefer: respond-async`, 202 with the request's status URL in `Location`."""
    prepared = _prepare(RequestKind.FAN_OUT, None, raw_body, deps)
    if isinstance(prepared, ApiResponse):
        return prepared
    command, moment, request_id = prepared.command, now(), uuid.uuid4().hex
    indexes = {device: i for i, device in enumerate(command.device_ids)}
    messages = command.to_messages(moment, lambda device: fan_out_message_id(request_id, indexes[device]))
    results = prepared.sender.send_many(messages)
    # When nothing got through because IoT Hub itself is out of reach, say so with its status.
    if results and all(isinstance(r.error, HubLevelError) for r in results):
        log_results(messages, results)
        return error_response(results[0].error)  # type: ignore[arg-type]
    # The status rows are written while the send is logged and the answer built (the table's round
    # trip overlaps that work); the answer waits for the write and carries status URLs only if it worked.
    sent = _sent_request(command, request_id, messages, results, moment)
    writing = _STATUS_WRITES.submit(prepared.store.record_sent, sent)
    try:
        log_results(messages, results)
        counts = {"Sent": 0, "Failed": 0, "Unknown": 0}
        for result in results:
            counts[result.status] += 1
        entries = [_result_entry(result, links) for result in results]
    finally:
        recorded = _recorded(writing, request_id)
    if not recorded:
        entries = [_result_entry(result, None) for result in results]
    body: dict[str, object] = {
        "requestId": request_id,
        "correlationId": command.correlation_id,
        "ack": command.ack,
        "expiresAt": _iso(messages[0].expires_at) if messages else None,
        "sent": counts["Sent"],
        "failed": counts["Failed"],
        "unknown": counts["Unknown"],
        "results": entries,
    }
    if not recorded:
        body["note"] = _STATUS_UNAVAILABLE_NOTE
        return ApiResponse(207, body)
    body["statusUrl"] = links.request(request_id)
    if respond_async:
        headers = {
            "Location": links.request(request_id), "Retry-After": str(prepared.status.poll_s),
            "Preference-Applied": "respond-async",
        }
        return ApiResponse(202, body, headers)
    return ApiResponse(207, body)


def _result_entry(result: SendResult, links: StatusLinks | None) -> dict[str, object]:
    entry: dict[str, object] = {
        "deviceId": result.device_id,
        "messageId": result.message_id,
        "status": result.status,
        "error": result.error.to_dict() if result.error else None,
    }
    if links is not None and result.status != "Failed":
        entry["statusUrl"] = links.delivery(result.device_id, result.message_id)
    return entry


# ---- status endpoints -------------------------------------------------------------------------------
def _not_found(what: str) -> ApiResponse:
    return error_response(NotFound(f"{what} was not sent by this app (or has expired from its status table)"))


def delivery_status(
    device_id: str, message_id: str, store: Callable[[], StatusStore], settings: Callable[[], StatusSettings],
    now: Callable[[], datetime] = utc_now,
) -> ApiResponse:
    """GET /api/devices/{deviceId}/messages/{messageId} -> 200 final, 202 pending (Retry-After), 404 unknown."""
    try:
        status = settings()
        delivery = store().delivery(device_id, message_id)
    except ConfigurationError as error:
        return _misconfigured(error)
    except StoreUnavailable as error:
        return error_response(error)
    if delivery is None:
        return _not_found(f"message {message_id} to device {device_id}")
    view = status_of(delivery, now(), timedelta(seconds=status.feedback_grace_s))
    return _status_answer(view.final, view.to_dict(), status.poll_s)


def request_status(
    request_id: str, store: Callable[[], StatusStore], settings: Callable[[], StatusSettings],
    links: StatusLinks, now: Callable[[], datetime] = utc_now,
) -> ApiResponse:
    """GET /api/requests/{requestId} -> 200 once every delivery is final, 202 before, 404 unknown."""
    try:
        status = settings()
        deliveries = store().request(request_id)
    except ConfigurationError as error:
        return _misconfigured(error)
    except StoreUnavailable as error:
        return error_response(error)
    if deliveries is None:
        return _not_found(f"request {request_id}")
    moment, grace = now(), timedelta(seconds=status.feedback_grace_s)
    views: list[StatusView] = [status_of(d, moment, grace) for d in deliveries]
    counts: dict[str, int] = {}
    for view in views:
        counts[view.status] = counts.get(view.status, 0) + 1
    final = all(v.final for v in views)
    first = deliveries[0] if deliveries else None
    body: dict[str, object] = {
        "requestId": request_id,
        "final": final,
        "devices": len(views),
        "pending": sum(1 for v in views if not v.final),
        "counts": counts,
        "correlationId": first.correlation_id if first else None,
        "ack": first.ack if first else None,
        "deliveries": [
            {**v.to_dict(), "statusUrl": links.delivery(v.delivery.device_id, v.delivery.message_id)} for v in views
        ],
    }
    return _status_answer(final, body, status.poll_s)


def _status_answer(final: bool, body: dict[str, object], poll_s: int) -> ApiResponse:
    if final:
        return ApiResponse(200, body)
    return ApiResponse(202, body, {"Retry-After": str(poll_s)})


# ---- purge ------------------------------------------------------------------------------------------
def purge_device_queue(device_id: str, registry: Callable[[], DeviceRegistry]) -> ApiResponse:
    """DELETE /api/devices/{deviceId}/messages -> 200 with the number of messages purged."""
    if not IOTHUB_ID.fullmatch(device_id or ""):
        return error_response(ValidationFailed([bad_id("deviceId")]))
    try:
        purged = registry().purge(device_id)
    except ConfigurationError as error:
        return _misconfigured(error)
    except C2DError as error:
        return error_response(error)
    log_event(logger, "purge", deviceId=device_id, purged=purged)
    return ApiResponse(
        200,
        {
            "deviceId": device_id,
            "purged": purged,
            "note": "purged messages that asked for feedback (ack full or negative) get a Purged outcome",
        },
    )

