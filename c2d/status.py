"""Delivery status: what a workflow polling the status endpoint learns about one C2D message.

A message is *pending* until its outcome is known, then *final*. What "known" means depends on
the feedback the caller asked for with `ack`, because IoT Hub only reports what `ack` selects:

| ack | final when |
|---|---|
| `full` | IoT Hub's feedback arrives (Success, Expired, DeliveryCountExceeded, Rejected, Purged) |
| `positive` | Success arrives; or expiry (+ grace) passes without it: `Unknown`, inferred (not completed:   |
|            | expired, rejected or dead-lettered; only ack `full` says which)                               |
| `negative` | a failure arrives; or expiry (+ grace) passes without one: `Success`, inferred                |
| `none` | at once: `Sent`, and nothing more can be known |

A send that failed (`SendFailed`) or whose result is unknown (`Unknown`) is final at once.
Inferred outcomes carry `inferred: true`; the grace covers IoT Hub's feedback batching and the
FeedbackProcessor schedule (`C2D_FEEDBACK_GRACE_SECONDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: IoT Hub's delivery outcomes (feedback statusCode) and this app's own final send statuses.
FEEDBACK_OUTCOMES = frozenset({"Success", "Expired", "DeliveryCountExceeded", "Rejected", "Purged"})
SENT, SEND_FAILED, UNKNOWN = "Sent", "SendFailed", "Unknown"


@dataclass(frozen=True)
class Delivery:
    """One message to one device as the status store knows it."""

    device_id: str
    message_id: str
    request_id: str
    ack: str
    send_status: str  # Sent | SendFailed | Unknown
    sent_at: datetime
    expires_at: datetime | None
    correlation_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    send_error: Mapping[str, object] | None = None
    #: IoT Hub's feedback, once FeedbackProcessor recorded it.
    outcome: str | None = None
    outcome_description: str | None = None
    outcome_at: str | None = None


@dataclass(frozen=True)
class StatusView:
    """The answer for one delivery: final or not, and what is known."""

    final: bool
    status: str
    inferred: bool
    note: str
    delivery: Delivery

    def to_dict(self) -> dict[str, object]:
        d = self.delivery
        body: dict[str, object] = {
            "deviceId": d.device_id,
            "messageId": d.message_id,
            "requestId": d.request_id,
            "status": self.status,
            "final": self.final,
            "ack": d.ack,
            "sentAt": _iso(d.sent_at),
            "expiresAt": _iso(d.expires_at),
        }
        if d.correlation_id:
            body["correlationId"] = d.correlation_id
        if d.properties:
            body["properties"] = dict(d.properties)
        if self.inferred:
            body["inferred"] = True
        if d.outcome_at:
            body["outcomeAt"] = d.outcome_at
        if d.outcome_description:
            body["description"] = d.outcome_description
        if d.send_error:
            body["error"] = dict(d.send_error)
        if self.note:
            body["note"] = self.note
        return body


def status_of(delivery: Delivery, now: datetime, grace: timedelta) -> StatusView:
    """Decide what can be said of a delivery now (see the module docstring's table)."""
    if delivery.send_status != SENT:
        return StatusView(True, delivery.send_status, False, "", delivery)
    if delivery.outcome is not None:
        return StatusView(True, delivery.outcome, False, "", delivery)
    expired = delivery.expires_at is not None and now >= delivery.expires_at + grace
    ack = delivery.ack
    if ack == "none":
        return StatusView(True, SENT, False, "ack is none: IoT Hub reports no delivery outcome", delivery)
    if ack == "negative":
        if expired:
            return StatusView(
                True, "Success", True, "ack is negative and no failure was reported by expiry: delivered", delivery
            )
        return StatusView(
            False, SENT, False, "ack is negative: only a failure is reported; final at expiry without one", delivery
        )
    if ack == "positive":
        if expired:
            return StatusView(
                True, UNKNOWN, True,
                "ack is positive and no Success was reported by expiry: the message was not completed "
                "(expired, rejected or dead-lettered; IoT Hub reports which only with ack full)",
                delivery,
            )
        return StatusView(False, SENT, False, "waiting for the device; only Success is reported", delivery)
    return StatusView(False, SENT, False, "waiting for IoT Hub's delivery feedback", delivery)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None
