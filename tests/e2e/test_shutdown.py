"""The app's AMQP clients are closed when its worker shuts down: IoT Hub sees an AMQP close, not a
dropped socket (a dropped socket leaves the hub holding locks and, for a sender, in-flight state until
its own timeouts). Runs the app in the local host, which stops its worker with SIGTERM as Azure does."""

from __future__ import annotations

from pathlib import Path

import pytest
from c2d_testing.localcloud import trusting, wait_until

from localcloud.app_settings import MASTER_KEY, app_settings
from localcloud.azurite import azurite
from localcloud.cloud import post_json
from localcloud.functions_host.launcher import running_host
from localcloud.iothub.launcher import running_iothub
from localcloud.paths import REPO_ROOT
from localcloud.servicebus.launcher import running_servicebus

pytestmark = [pytest.mark.e2e, pytest.mark.fault]


def test_worker_shutdown_closes_the_iot_hub_connections(tmp_path: Path) -> None:
    with (
        running_iothub(tmp_path / "iothub", extra_config={"devices": [{"device_id": "bye-1"}]},
                       limits={"feedback_interval_s": 0.3}) as hub,
        running_servicebus(work_dir=tmp_path / "servicebus") as bus,
        azurite(location=tmp_path / "azurite") as storage,
        trusting(hub.ca_bundle),
    ):
        settings = app_settings(
            iothub_connection_string=hub.service_connection_string, amqp_port=hub.ports.amqp,
            https_port=hub.ports.https, ca_bundle=hub.ca_bundle, servicebus_connection_string=bus.connection_string,
            storage_connection_string=storage.connection_string, extra={"FEEDBACK_SCHEDULE": "0 0 0 1 1 *"},
        )
        with running_host(REPO_ROOT, settings, master_key=MASTER_KEY) as host:
            status, _, body = post_json(host.base_url, "/api/devices/bye-1/messages", {"payload": 1}, "local-function-key")
            assert status == 202, body
            assert hub.admin.state()["amqp"]["connections"] >= 1, "the sender's link stays open between sends"
            hub.admin.reset()  # count only what happens from here on
        ended = lambda: hub.admin.state()["amqp"]["ended"]  # noqa: E731
        wait_until(lambda: ended()["closed_by_client"] + ended()["dropped"] >= 1, 20, "the connection to end")
        assert ended() == {"closed_by_client": 1, "dropped": 0}, "closed with an AMQP close, not dropped"
