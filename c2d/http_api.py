"""HTTP API logic for SendC2D: request bytes in, `ApiResponse` out. No azure.functions types here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from c2d.commands import C2DCommand, RequestKind, check_body_size, parse_command, parse_json_body, utc_now
from c2d.config import SendSettings
from c2d.errors import C2DError, ConfigurationError, HubLevelError, RequestTooLarge, ValidationFailed
from c2d.logs import log_event
from c2d.messages import C2DMessage, SendResult
from c2d.ports import MessageSender
from c2d.sending import send_command

logger = logging.getLogger("c2d.http")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, object]
    headers: Mapping[str, str] = field(default_factory=dict)


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


def _send(
    kind: RequestKind,
    device_id: str | None,
    raw_body: bytes,
    get_sender: Callable[[], MessageSender],
    get_settings: Callable[[], SendSettings],
    now: Callable[[], datetime],
) -> tuple[C2DCommand, list[C2DMessage], list[SendResult]] | ApiResponse:
    """Settings, size, validation, then the send; an early answer when one of the first three fails."""
    try:
        settings = get_settings()
        check_body_size(raw_body, settings.max_request_bytes)
        command = parse_command(
            parse_json_body(raw_body), kind, route_device_id=device_id, default_ttl_s=settings.default_ttl_s
        )
        sender = get_sender()
    except ConfigurationError as error:
        return _misconfigured(error)
    except (ValidationFailed, RequestTooLarge) as error:
        return error_response(error)
    messages, results = send_command(command, sender, now())
    return command, messages, results


def send_to_device(
    device_id: str,
    raw_body: bytes,
    get_sender: Callable[[], MessageSender],
    get_settings: Callable[[], SendSettings],
    now: Callable[[], datetime] = utc_now,
) -> ApiResponse:
    """POST /api/devices/{deviceId}/messages -> 202, or the error's status."""
    sent = _send(RequestKind.SINGLE, device_id, raw_body, get_sender, get_settings, now)
    if isinstance(sent, ApiResponse):
        return sent
    _, (message,), (result,) = sent
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
    return ApiResponse(202, body)


def send_to_devices(
    raw_body: bytes,
    get_sender: Callable[[], MessageSender],
    get_settings: Callable[[], SendSettings],
    now: Callable[[], datetime] = utc_now,
) -> ApiResponse:
    """POST /api/messages (fan-out) -> 207 with one result per device, in request order."""
    sent = _send(RequestKind.FAN_OUT, None, raw_body, get_sender, get_settings, now)
    if isinstance(sent, ApiResponse):
        return sent
    command, messages, results = sent
    # When nothing got through because IoT Hub itself is out of reach, say so with its status.
    if results and all(isinstance(r.error, HubLevelError) for r in results):
        return error_response(results[0].error)  # type: ignore[arg-type]
    counts = {"Sent": 0, "Failed": 0, "Unknown": 0}
    for result in results:
        counts[result.status] += 1
    return ApiResponse(
        207,
        {
            "correlationId": command.correlation_id,
            "ack": command.ack,
            "expiresAt": _iso(messages[0].expires_at) if messages else None,
            "sent": counts["Sent"],
            "failed": counts["Failed"],
            "unknown": counts["Unknown"],
            "results": [_result_entry(result) for result in results],
        },
    )


def _result_entry(result: SendResult) -> dict[str, object]:
    return {
        "deviceId": result.device_id,
        "messageId": result.message_id,
        "status": result.status,
        "error": result.error.to_dict() if result.error else None,
    }
