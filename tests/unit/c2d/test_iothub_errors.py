"""The adapter's mapping from uamqp's per-message failures (real uamqp exception objects) to typed errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from uamqp import constants, errors

from c2d.errors import (
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    Rejected,
    Throttled,
    Unauthorized,
)
from c2d.iothub import _to_amqp, error_from_disposition, sas_token
from c2d.messages import C2DMessage


def rejection(condition: bytes | constants.ErrorCodes, description: bytes = b"", tracking: bytes | None = b"T-1"):
    info = {b"com.microsoft:tracking-id": tracking} if tracking else None
    return errors.MessageSendFailed(condition, description, info)


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (rejection(constants.ErrorCodes.NotFound), DeviceNotFound),
        (rejection(constants.ErrorCodes.ResourceLimitExceeded), DeviceQueueFull),
        (rejection(constants.ErrorCodes.LinkMessageSizeExceeded), MessageTooLarge),
        (rejection(constants.ErrorCodes.UnauthorizedAccess), Unauthorized),
        (errors.MessageException(b"com.microsoft:device-container-throttled", b"slow", None), Throttled),
        (errors.MessageException(b"com.example:odd", b"?", None), Rejected),
    ],
)
def test_rejection_conditions(exception, expected) -> None:
    error = error_from_disposition(exception, "dev-1")
    assert type(error) is expected


def test_tracking_id_is_kept() -> None:
    error = error_from_disposition(rejection(constants.ErrorCodes.NotFound, tracking=b"abc-123"), "dev-1")
    assert error.tracking_id == "abc-123"
    assert error.to_dict()["trackingId"] == "abc-123"


def test_timeout_and_no_disposition_are_unknown_not_failed() -> None:
    assert type(error_from_disposition(TimeoutError("Message send timed out."), "d")) is OutcomeUnknown
    assert type(error_from_disposition(None, "d")) is OutcomeUnknown


def test_send_error_without_a_disposition_is_unknown_not_rejected() -> None:
    """What uamqp reports for a message still awaiting its disposition when the connection drops."""
    synthesized = errors.MessageSendFailed(constants.ErrorCodes.UnknownError)
    error = error_from_disposition(synthesized, "dev-1")
    assert type(error) is OutcomeUnknown and "dev-1" in str(error)


def test_hub_rejection_with_unknown_error_condition_stays_a_rejection() -> None:
    error = error_from_disposition(rejection(constants.ErrorCodes.UnknownError, b"something broke"), "dev-1")
    assert type(error) is Rejected and error.tracking_id == "T-1"


def test_amqp_message_carries_every_field() -> None:
    expires = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    message = _to_amqp(
        C2DMessage(
            device_id="dev-1", message_id="m-1", body=b"hi", ack="positive", expires_at=expires,
            correlation_id="c-1", content_type="text/plain", content_encoding="utf-8", properties={"k": "v"},
        )
    )
    props = message.properties
    assert props.message_id == b"m-1" and props.correlation_id == b"c-1"
    assert props.to == b"/devices/dev-1/messages/devicebound"
    assert props.absolute_expiry_time == int(expires.timestamp() * 1000)
    assert message.application_properties == {"iothub-ack": "positive", "k": "v"}
    assert b"".join(message.get_data()) == b"hi"


def test_sas_token_shape_and_signature() -> None:
    token = sas_token("h.azure-devices.net", "service", "a2V5", lifetime_s=60).token
    assert token.startswith("SharedAccessSignature sr=h.azure-devices.net&sig=")
    assert token.endswith("&skn=service")
    assert "a2V5" not in token
