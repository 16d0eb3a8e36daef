"""The hub's AMQP nodes and message mapping: proton Message <-> the store's CloudMessage / FeedbackMessage."""

from __future__ import annotations

import json
import re
import urllib.parse

from proton import Message, symbol, timestamp

from .hub import Hub
from .store import CloudMessage, FeedbackMessage

DEVICEBOUND_PATH = "messages/devicebound"  # C2D sends (link paths compared lower-case)
FEEDBACK_PATH = "messages/servicebound/feedback"
FEEDBACK_CONTENT_TYPE = "application/vnd.microsoft.iothub.feedback.json"
_TO_RE = re.compile(r"^/devices/([^/]+)/messages/devicebound/?$", re.IGNORECASE)


def text_of(value: object) -> str | None:
    if type(value) is str or value is None:  # the common case first: this runs for every property
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def symbol_text(value: object) -> str | None:
    """A content-type/encoding symbol's text; None when the sender set none.

    python-qpid-proton reports a missing symbol as `symbol('None')` (the text "None"), which
    would reach devices as `$.ct=None`; no real MIME type or encoding is spelt "None".
    """
    text = text_of(value)
    return None if not text or text == "None" else text


def _body_bytes(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, list):
        return b"".join(_body_bytes(part) for part in body)
    return json.dumps(body, default=str).encode()


def to_cloud_message(hub: Hub, msg: Message) -> tuple[str, CloudMessage]:
    address = msg.address or ""
    match = _TO_RE.match(address)
    device_id = urllib.parse.unquote(match.group(1)) if match else ""
    raw_props = msg.properties
    props: dict[str, str] = {str(k): text_of(v) or "" for k, v in raw_props.items()} if raw_props else {}
    ack = props.pop("iothub-ack", "none").lower()
    expiry = msg.expiry_time
    return device_id, CloudMessage(
        device_id=device_id,
        body=_body_bytes(msg.body),
        message_id=text_of(msg.id),
        enqueued_at=0.0,
        expires_at=float(expiry if expiry and expiry > 0 else hub.store.default_expiry()),
        to=address,
        correlation_id=text_of(msg.correlation_id),
        user_id=text_of(msg.user_id) or None,
        content_type=symbol_text(msg.content_type),
        content_encoding=symbol_text(msg.content_encoding),
        ack=ack,
        app_properties=props,
    )


def feedback_to_message(hub: Hub, fb: FeedbackMessage) -> Message:
    return Message(
        id=fb.message_id,
        body=json.dumps(fb.records).encode(),
        inferred=True,
        content_type=FEEDBACK_CONTENT_TYPE,
        user_id=hub.config.hub_name.encode(),
        delivery_count=max(fb.delivery_count - 1, 0),
        annotations={symbol("iothub-enqueuedtime"): timestamp(int(fb.enqueued_at * 1000))},
    )
