"""When a delivery counts as final, for each `ack` mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from c2d.status import Delivery, status_of

SENT_AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
EXPIRES = SENT_AT + timedelta(hours=1)
GRACE = timedelta(minutes=5)
BEFORE_EXPIRY = SENT_AT + timedelta(minutes=1)
AFTER_GRACE = EXPIRES + GRACE + timedelta(seconds=1)


def delivery(ack: str, *, send_status: str = "Sent", outcome: str | None = None) -> Delivery:
    return Delivery("dev", "m", "r", ack, send_status, SENT_AT, EXPIRES, outcome=outcome)


@pytest.mark.parametrize(
    ("ack", "outcome", "now", "final", "status", "inferred"),
    [
        ("full", None, BEFORE_EXPIRY, False, "Sent", False),
        ("full", None, AFTER_GRACE, False, "Sent", False),  # full always reports: keep waiting
        ("full", "Expired", BEFORE_EXPIRY, True, "Expired", False),
        ("positive", None, BEFORE_EXPIRY, False, "Sent", False),
        ("positive", "Success", BEFORE_EXPIRY, True, "Success", False),
        ("positive", None, AFTER_GRACE, True, "Unknown", True),
        ("negative", None, BEFORE_EXPIRY, False, "Sent", False),
        ("negative", "Rejected", BEFORE_EXPIRY, True, "Rejected", False),
        ("negative", None, AFTER_GRACE, True, "Success", True),
        ("none", None, BEFORE_EXPIRY, True, "Sent", False),
    ],
)
def test_finality_follows_what_ack_lets_iot_hub_report(ack, outcome, now, final, status, inferred) -> None:
    view = status_of(delivery(ack, outcome=outcome), now, GRACE)
    assert (view.final, view.status, view.inferred) == (final, status, inferred)
    body = view.to_dict()
    assert body["final"] is final and body["status"] == status and body.get("inferred", False) is inferred
    if not final or inferred or ack == "none":
        assert body["note"], "say what can still be known"


@pytest.mark.parametrize("send_status", ["SendFailed", "Unknown"])
def test_a_send_that_did_not_succeed_is_final_at_once(send_status: str) -> None:
    view = status_of(delivery("full", send_status=send_status), BEFORE_EXPIRY, GRACE)
    assert view.final and view.status == send_status
