"""What the end-to-end tests share: the devices their hub registers, and the local cloud itself
(localcloud.stack, also behind `make demo` and `make up`)."""

from __future__ import annotations

from localcloud.functions_host.launcher import wait_until
from localcloud.stack import REPO_ROOT, LocalCloud, local_cloud, trusting

FAN_OUT_DEVICES = [f"fan-{i:03d}" for i in range(200)]
E2E_DEVICES = ["mqtt-1", "https-1", "https-2", "https-3", "purge-1", "expire-1", "queue-1", "outage-1", *FAN_OUT_DEVICES]

__all__ = ["E2E_DEVICES", "FAN_OUT_DEVICES", "REPO_ROOT", "LocalCloud", "local_cloud", "trusting", "wait_until"]
