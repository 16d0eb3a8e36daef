"""`log_results`: one `c2d.send` line per message; with INFO off, failures are still logged."""

from __future__ import annotations

import logging

import pytest

from c2d.errors import DeviceNotFound
from c2d.messages import C2DMessage, SendResult
from c2d.sending import log_results

MESSAGES = [C2DMessage(device_id=f"d{i}", message_id=f"m{i}", body=b"x") for i in range(3)]
RESULTS = [SendResult("d0", "m0"), SendResult("d1", "m1", DeviceNotFound("gone")), SendResult("d2", "m2")]


def test_one_line_per_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="c2d.send"):
        log_results(MESSAGES, RESULTS)
    assert [(r.levelno, f'"deviceId":"d{i}"' in r.getMessage()) for i, r in enumerate(caplog.records)] == [
        (logging.INFO, True), (logging.WARNING, True), (logging.INFO, True)
    ]


def test_with_info_off_only_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="c2d.send"):
        log_results(MESSAGES, RESULTS)
    assert len(caplog.records) == 1 and '"error":"DeviceNotFound"' in caplog.records[0].getMessage()
