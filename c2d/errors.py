"""Error taxonomy: what went wrong, whether retrying can help, and how it maps to HTTP.

Every error raised by the adapters is a `C2DError` subclass, so callers never need to catch
SDK exceptions or bare `Exception`. Messages never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass


class C2DError(Exception):
    """Base of every error the c2d library raises on purpose."""

    code: str = "C2DError"
    http_status: int = 500
    #: True when the same request can never succeed (do not retry it).
    permanent: bool = False
    #: Seconds a caller should wait before retrying, when that is known.
    retry_after_s: int | None = None

    def __init__(self, message: str, *, tracking_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tracking_id = tracking_id

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.retry_after_s is not None:
            body["retryAfterSeconds"] = self.retry_after_s
        if self.tracking_id:
            body["trackingId"] = self.tracking_id
        return body


class DeviceNotFound(C2DError):
    code = "DeviceNotFound"
    http_status = 404
    permanent = True


class DeviceQueueFull(C2DError):
    """The device already has the maximum number of pending C2D messages (50 on IoT Hub)."""

    code = "DeviceQueueFull"
    http_status = 429
    retry_after_s = 30


class MessageTooLarge(C2DError):
    code = "MessageTooLarge"
    http_status = 413
    permanent = True


class Throttled(C2DError):
    code = "Throttled"
    http_status = 429
    retry_after_s = 10


class HubLevelError:
    """Marker: the failure is about reaching IoT Hub at all, not about one message."""


class Unauthorized(C2DError, HubLevelError):
    """IoT Hub refused our credentials: a configuration problem on our side, hence 502 to callers."""

    code = "IoTHubUnauthorized"
    http_status = 502


class Unavailable(C2DError, HubLevelError):
    code = "IoTHubUnavailable"
    http_status = 503
    retry_after_s = 5


class SenderBusy(C2DError, HubLevelError):
    """The app's one IoT Hub link stayed busy longer than the caller may wait: nothing was sent."""

    code = "SenderBusy"
    http_status = 503
    retry_after_s = 2


class OutcomeUnknown(C2DError):
    """The message was handed to IoT Hub but no disposition came back (connection lost, timeout).

    It may or may not have been enqueued; it is never re-sent silently.
    """

    code = "OutcomeUnknown"
    http_status = 504


class Rejected(C2DError):
    """IoT Hub rejected the message with a condition this library does not know."""

    code = "IoTHubRejected"
    http_status = 502


class RequestTooLarge(C2DError):
    """The request body is larger than the app accepts (checked before it is parsed)."""

    code = "RequestTooLarge"
    http_status = 413
    permanent = True


class StoreUnavailable(C2DError):
    """The app's Table storage (send journal, delivery status) could not be read or written."""

    code = "StorageUnavailable"
    http_status = 503
    retry_after_s = 5


class NotFound(C2DError):
    """A status was asked for a message or request this app does not know (never sent, or expired)."""

    code = "NotFound"
    http_status = 404
    permanent = True


class PublishFailed(C2DError):
    """Outcomes could not be published to Service Bus (transient: the feedback is released)."""

    code = "PublishFailed"
    http_status = 503


class ConfigurationError(C2DError):
    """Settings are missing or malformed. The message names the settings, never their values."""

    code = "ConfigurationError"
    http_status = 500

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid app settings: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldProblem:
    """One validation failure: which field, which rule, in words a caller can act on."""

    field: str
    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class ValidationFailed(C2DError):
    code = "ValidationFailed"
    http_status = 400
    permanent = True

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["details"] = [p.to_dict() for p in self.problems]
        return body
