"""Cold start: from starting the local Functions host (and its worker) to the first HTTP response, and
`python -X importtime` of each function module. SendC2D must not import Service Bus code and
FeedbackProcessor must not import the HTTP path."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import Figure
from localcloud.azurite import azurite
from localcloud.functions_host.launcher import running_host
from localcloud.iothub.launcher import running_iothub
from localcloud.servicebus.launcher import running_servicebus
from localcloud.stack import MASTER_KEY, REPO_ROOT, LocalCloud, app_settings

GOAL_TEXT = {
    "SendC2D": "no Service Bus code",
    "SendC2DFanOut": "no Service Bus code",
    "FeedbackProcessor": "no HTTP path",
}
FORBIDDEN = {
    "SendC2D": ("azure.servicebus", "c2d.servicebus", "c2d.feedback_drain"),
    "SendC2DFanOut": ("azure.servicebus", "c2d.servicebus", "c2d.feedback_drain"),
    "FeedbackProcessor": ("c2d.http_api", "c2d.commands", "c2d.queue_api"),
}


def import_profile(module: str) -> tuple[float, set[str]]:
    """Total import time (ms, sum of self times) and the modules imported, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    total_us, names = 0, set()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        total_us += int(self_us)
        names.add(name.strip())
    return total_us / 1000, names


def run(work_dir: Path) -> list[Figure]:
    figures = []
    for module in ("SendC2D", "SendC2DFanOut", "SendC2DQueue", "FeedbackProcessor"):
        total_ms, names = import_profile(module)
        leaked = sorted(n for n in names if n.startswith(FORBIDDEN.get(module, ())))
        figures.append(
            Figure("cold start", f"import {module}", total_ms, "ms",
                   GOAL_TEXT.get(module, ""),
                   (not leaked) if module in FORBIDDEN else None, {"modules": len(names), "forbidden": leaked})
        )

    with (
        running_iothub(work_dir / "cold-iothub", extra_config={"devices": [{"device_id": "cold-1"}]}) as hub,
        running_servicebus() as bus,
        azurite(location=work_dir / "cold-azurite") as storage,
    ):
        values = app_settings(
            iothub_connection_string=hub.service_connection_string, amqp_port=hub.ports.amqp,
            https_port=hub.ports.https, ca_bundle=hub.ca_bundle, servicebus_connection_string=bus.connection_string,
            storage_connection_string=storage.connection_string,
        )  # fmt: skip
        start = time.perf_counter()
        with running_host(REPO_ROOT, values, master_key=MASTER_KEY) as host:
            ready = time.perf_counter()
            status, _, body = LocalCloud(hub, bus, storage, host).post("/api/devices/cold-1/messages", {"payload": 1})
            first = time.perf_counter()
            if status != 202:
                raise RuntimeError(f"first request failed: {status} {body}")
    figures += [
        Figure("cold start", "host + worker ready", (ready - start) * 1000, "ms"),
        Figure("cold start", "start to first HTTP response", (first - start) * 1000, "ms",
               detail={"first_request_ms": round((first - ready) * 1000, 1)}),
    ]
    return figures
