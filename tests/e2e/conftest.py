"""End-to-end: this repository's app in the local Functions host (real Python worker), against the IoT Hub
and Service Bus emulators and Azurite, driven with the real SDKs over real sockets.

With C2D_E2E_FUNCTIONS_URL set, `cloud` is a deployed app (or `func start`) and real services instead
(c2d_testing.external); tests that need an emulator's admin hooks then skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from c2d_testing.external import external_cloud_from_environment, external_target_requested
from c2d_testing.localcloud import E2E_DEVICES, local_cloud, trusting


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if external_target_requested():
        external = external_cloud_from_environment()
        external.hub.register(E2E_DEVICES)
        try:
            yield external
        finally:
            external.hub.unregister()
        return
    work = tmp_path_factory.mktemp("localcloud")
    devices = [{"device_id": d} for d in E2E_DEVICES]
    with local_cloud(
        Path(work), devices=devices, hub_limits={"feedback_interval_s": 0.3, "max_delivery_count": 2}
    ) as running, trusting(running.hub.ca_bundle):  # this process acts as devices and subscribers
        yield running
