"""One emulator subprocess per session (free ports, fast timers); state reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.iothub.launcher import IoTHubProcess, running_iothub


@pytest.fixture(scope="session")
def iothub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IoTHubProcess]:
    with running_iothub(tmp_path_factory.mktemp("iothub")) as emulator, emulator.use_in_process():
        yield emulator


@pytest.fixture
def hub(iothub_emulator: IoTHubProcess) -> Iterator[IoTHubProcess]:
    iothub_emulator.admin.reset()
    yield iothub_emulator
    if iothub_emulator.process.poll() is not None:
        pytest.fail(f"emulator died:\n{iothub_emulator.log_tail()}")
