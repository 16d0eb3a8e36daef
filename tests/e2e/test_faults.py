"""Fault tests through the whole app: a connection dropped mid-fan-out, throttling, and the worker killed
between publishing outcomes and accepting their feedback. Run alone with `pytest -m fault`."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from c2d_testing.devices import device_https
from c2d_testing.localcloud import LocalCloud, local_cloud, trusting, wait_until

from localcloud.outcome_reader import OutcomeReader

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
DROP_DEVICES = [f"drop-{i:03d}" for i in range(400)]
KILL_DEVICES = [f"kill-{i:02d}" for i in range(30)]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    devices = [{"device_id": d} for d in [*DROP_DEVICES, *KILL_DEVICES, "throttle-1", "throttle-2"]]
    # A failed queue message comes back after 1 s instead of host.json's 30 (an app-setting override, as in Azure).
    settings = {"AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01"}
    with local_cloud(
        Path(tmp_path_factory.mktemp("faults")), devices=devices, hub_limits={"feedback_interval_s": 0.3},
        settings=settings,
    ) as running, trusting(running.hub.ca_bundle):
        yield running


def hub_messages(cloud: LocalCloud) -> dict[str, list[str]]:
    return {device: [m["messageId"] for m in queue] for device, queue in cloud.hub.admin.state()["devices"].items()}


def test_connection_dropped_mid_fan_out_reports_exactly_what_happened(cloud) -> None:
    cloud.hub.admin.reset()
    cloud.hub.admin.disposition_delay(300)  # dispositions in flight while the connection drops
    dropper = threading.Timer(0.8, cloud.hub.admin.drop_connections)
    dropper.start()
    try:
        status, _, body = cloud.post("/api/messages", {"deviceIds": DROP_DEVICES, "payload": "x", "ack": "none"})
    finally:
        dropper.join()
        cloud.hub.admin.disposition_delay(0)

    assert status in (207, 503), body
    results = body["results"] if status == 207 else []
    on_hub = hub_messages(cloud)
    delivered = Counter(mid for device in DROP_DEVICES for mid in on_hub.get(device, []))
    assert all(count == 1 for count in delivered.values()), "no message may reach a device twice"
    reported = {r["messageId"]: r for r in results}
    for result in results:
        copies = delivered[result["messageId"]]
        if result["status"] == "Sent":
            assert copies == 1, result
        elif result["status"] == "Failed":
            assert copies == 0, result
        else:
            assert result["status"] == "Unknown" and copies <= 1
    assert set(delivered) <= set(reported), "a message reached a device but the response did not report it"
    if status == 207:
        assert body["sent"] + body["failed"] + body["unknown"] == len(DROP_DEVICES)


def test_throttled_send_is_429_with_retry_after_never_500(cloud) -> None:
    cloud.hub.admin.reset()
    cloud.hub.admin.throttle(1)
    try:
        first = cloud.post("/api/devices/throttle-1/messages", {"payload": 1})
        second = cloud.post("/api/devices/throttle-1/messages", {"payload": 2})
        fan_out = cloud.post("/api/messages", {"deviceIds": ["throttle-1", "throttle-2"], "payload": 3})
    finally:
        cloud.hub.admin.throttle(0)
    assert first[0] == 202
    status, headers, body = second
    assert status == 429 and body["error"]["code"] == "Throttled"
    assert int(headers["Retry-After"]) > 0
    assert fan_out[0] == 207
    assert {r["error"]["code"] for r in fan_out[2]["results"]} == {"Throttled"}


def test_queued_request_is_retried_through_throttling_and_sent_once(cloud) -> None:
    cloud.hub.admin.reset()
    client = QueueClient.from_connection_string(cloud.storage.connection_string, "c2d-requests")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    cloud.hub.admin.throttle(1)
    cloud.post("/api/devices/throttle-2/messages", {"payload": "uses up the quota"})
    cloud.hub.admin.reset()
    cloud.hub.admin.throttle(1)
    cloud.post("/api/devices/throttle-2/messages", {"payload": "uses up the quota"})
    log_before = len(cloud.host.output())
    client.send_message(base64.b64encode(b'{"deviceId": "throttle-2", "payload": "queued"}').decode())

    def refused() -> bool:  # the first attempt was refused by the hub and raised, so the host will retry
        log = cloud.host.output()[log_before:]
        return "Executed 'Functions.SendC2DQueue' (Failed" in log and "Throttled" in log

    wait_until(refused, 60, "the queued send to be throttled")
    cloud.hub.admin.throttle(0)
    wait_until(lambda: len(hub_messages(cloud)["throttle-2"]) == 2, 90, "the host's retry to send it")
    time.sleep(2)
    assert len(hub_messages(cloud)["throttle-2"]) == 2, "sent exactly once after the retry"
    log = cloud.host.output()[log_before:]
    assert "Executed 'Functions.SendC2DQueue' (Succeeded" in log


def test_worker_killed_between_publish_and_accept_loses_and_duplicates_nothing(cloud) -> None:
    cloud.hub.admin.reset()
    subscriptions = {name: OutcomeReader(cloud.bus.connection_string, name) for name in ("all", "succeeded")}
    for reader in subscriptions.values():
        reader.poll(0.2)
        reader.seen.clear()
    status, _, body = cloud.post("/api/messages", {"deviceIds": KILL_DEVICES, "payload": "k", "ack": "positive"})
    assert status == 207 and body["sent"] == len(KILL_DEVICES)
    ids = {r["messageId"] for r in body["results"]}
    log_before = len(cloud.host.output())
    for device in KILL_DEVICES:
        assert device_https(cloud.hub, device) == 0

    # Kill the worker as soon as it logs published outcomes: it is then between publish and accept.
    wait_until(lambda: "c2d.outcome " in cloud.host.output()[log_before:], 60, "outcomes to be published")
    os.kill(int(cloud.host.host_status()["workerPid"]), signal.SIGKILL)
    wait_until(lambda: cloud.host.host_status().get("workerRestarts", 0) >= 1, 60, "the host to restart the worker")

    try:
        for name, reader in subscriptions.items():
            reader.wait_for(lambda seen: ids <= {o.correlation_id for o in seen}, 90, f"every outcome on {name}")
        time.sleep(4)  # redelivered feedback republishes now: duplicate detection must drop it
        for name, reader in subscriptions.items():
            reader.poll(1.0)
            counts = Counter(o.correlation_id for o in reader.seen if o.correlation_id in ids)
            assert counts == Counter(dict.fromkeys(ids, 1)), f"{name}: {counts}"
    finally:
        for reader in subscriptions.values():
            reader.close()
