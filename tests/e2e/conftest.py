"""End-to-end: this repository's app in the local Functions host (real Python worker), against the IoT Hub
and Service Bus emulators and Azurite, driven with the real SDKs over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from c2d_testing.localcloud import E2E_DEVICES, LocalCloud, local_cloud, trusting


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    work = tmp_path_factory.mktemp("localcloud")
    devices = [{"device_id": d} for d in E2E_DEVICES]
    with local_cloud(
        Path(work), devices=devices, hub_limits={"feedback_interval_s": 0.3, "max_delivery_count": 2}
    ) as running, trusting(running.hub.ca_bundle):  # this process acts as devices and subscribers
        yield running
