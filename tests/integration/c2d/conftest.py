"""The c2d adapters against the local emulators, over real sockets and TLS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from c2d_testing.devices import DECOY_DEVICE, ODD_DEVICE
from c2d_testing.localcloud import trusting

from c2d.config import IoTHubSettings, ServiceBusSettings, TableSettings
from c2d.status_store import StatusStore
from c2d.tables import Table
from localcloud.azurite import Azurite, azurite
from localcloud.iothub.launcher import IoTHubProcess, running_iothub
from localcloud.servicebus.launcher import ServiceBusProcess, running_servicebus

DEVICES = [{"device_id": f"dev-{i}", "primary_key": f"ZGV2aWNlLWtleS0{i}LXRlc3QtdGVzdC10ZXN0LXRlc3Q="} for i in range(4)]
DEVICES += [{"device_id": ODD_DEVICE}, {"device_id": DECOY_DEVICE}]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IoTHubProcess]:
    work = tmp_path_factory.mktemp("iothub")
    with (
        running_iothub(work, extra_config={"devices": DEVICES}, limits={"feedback_interval_s": 0.2}) as emulator,
        trusting(emulator.ca_bundle),  # trust the local CA, as a user would
    ):
        yield emulator


@pytest.fixture(autouse=True)
def clean_hub(request: pytest.FixtureRequest) -> None:
    if "hub" in request.fixturenames:
        request.getfixturevalue("hub").admin.reset()


@pytest.fixture
def hub_settings(hub: IoTHubProcess) -> IoTHubSettings:
    return IoTHubSettings.from_connection_string(
        hub.service_connection_string, amqp_port=hub.ports.amqp, send_timeout_s=10.0
    )


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bus() -> Iterator[ServiceBusProcess]:
    """The Service Bus emulator with its default entities (topic c2d-outcomes, subscriptions all/failed/succeeded)."""
    with running_servicebus() as emulator:
        yield emulator


@pytest.fixture
def bus_settings(bus: ServiceBusProcess) -> ServiceBusSettings:
    return ServiceBusSettings(topic="c2d-outcomes", connection_string=bus.connection_string, retry_total=0)


@pytest.fixture(scope="module")
def storage() -> Iterator[Azurite]:
    """Azurite (queue and table services) for the send journal and the status table."""
    with azurite() as instance:
        yield instance


@pytest.fixture
def ledger(storage: Azurite) -> Iterator[StatusStore]:
    """A status table of its own for each test."""
    table = Table(TableSettings(table=f"t{uuid.uuid4().hex[:12]}", connection_string=storage.connection_string))
    try:
        yield StatusStore(table)
    finally:
        table.close()
