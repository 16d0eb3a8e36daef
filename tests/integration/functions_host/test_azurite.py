"""localcloud.azurite: start on a free port, usable connection string, clean stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from localcloud.azurite import azurite, expand_development_storage

pytestmark = pytest.mark.integration


def test_start_use_and_stop_with_persistent_location(tmp_path: Path) -> None:
    location = tmp_path / "data"
    with azurite(location=location) as instance:
        assert instance.port > 0
        with QueueClient.from_connection_string(instance.connection_string, "roundtrip") as client:
            client.create_queue()
            client.send_message("hello")
            assert [m.content for m in client.receive_messages()] == ["hello"]
        process = instance.process
    assert process.returncode is not None  # stopped
    assert location.is_dir()  # a given location is kept (data survives restarts)
    assert "successfully closed" in (location / "azurite.log").read_text()


def test_temporary_location_is_removed() -> None:
    with azurite() as instance:
        location = instance.location
        assert location.is_dir()
    assert not location.exists()


def test_development_storage_shortcut() -> None:
    expanded = expand_development_storage("UseDevelopmentStorage=true")
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in expanded
    assert expand_development_storage("DefaultEndpointsProtocol=https;X=1") == "DefaultEndpointsProtocol=https;X=1"
