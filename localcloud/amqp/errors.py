"""The AMQP error conditions the emulators send, and one way to build them."""

from __future__ import annotations

import uuid

from proton import Condition, symbol

UNAUTHORIZED_ACCESS = "amqp:unauthorized-access"
NOT_FOUND = "amqp:not-found"
DECODE_ERROR = "amqp:decode-error"
NOT_IMPLEMENTED = "amqp:not-implemented"
MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"
RESOURCE_LIMIT_EXCEEDED = "amqp:resource-limit-exceeded"
TRACKING_ID = symbol("com.microsoft:tracking-id")


def error_condition(name: str, description: str, tracking_id: str | None = None) -> Condition:
    """A condition as Azure's services send it: with a tracking id, so that condition, description and
    info are all present (the SDKs read them by position)."""
    return Condition(name, description, {TRACKING_ID: tracking_id or uuid.uuid4().hex})
