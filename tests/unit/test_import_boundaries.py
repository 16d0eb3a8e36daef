"""Importing a function creates no client and loads only its own path (cold start, and the issue's
`python -c "import SendC2D, FeedbackProcessor, SendC2DQueue"` check), in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules_after_import(*names: str) -> set[str]:
    code = f"import json, sys; import {', '.join(names)}; print(json.dumps(sorted(sys.modules)))"
    # No settings at all: importing must not need them (clients are lazy).
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin"})
    return set(json.loads(result.stdout))


def test_all_functions_import_without_settings_or_clients() -> None:
    loaded = modules_after_import(
        "SendC2D", "FeedbackProcessor", "SendC2DQueue", "SendC2DFanOut", "DeliveryStatus", "RequestStatus",
        "PurgeDeviceQueue", "StatusCleanup",
    )
    assert "uamqp" not in loaded, "no AMQP client library is loaded before the first invocation"
    assert not {m for m in loaded if m.startswith(("azure.servicebus", "c2d.iothub", "c2d.servicebus"))}


@pytest.mark.parametrize(
    ("function", "forbidden"),
    [("SendC2D", "azure.servicebus"), ("SendC2DFanOut", "azure.servicebus"), ("FeedbackProcessor", "c2d.http_api")],
)
def test_each_function_loads_only_its_own_path(function: str, forbidden: str) -> None:
    assert forbidden not in modules_after_import(function)
