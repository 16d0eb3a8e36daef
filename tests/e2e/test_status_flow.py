"""The workflow-facing flow end to end (issue: status endpoint, correlation, device queries, purge):
POST, follow `Location` until 200; reject and expiry; a worker killed between publishing an outcome
and recording it; fan-out by registry query; purge. Through the local host, both emulators and Azurite."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from c2d_testing.devices import device_https
from c2d_testing.localcloud import LocalCloud, local_cloud, trusting, wait_until
from c2d_testing.storage_proxy import StorageProxy, storage_proxy

from localcloud.app_settings import FUNCTION_KEY
from localcloud.azurite import Azurite
from localcloud.azurite import connection_string as azurite_connection_string
from localcloud.outcome_reader import OutcomeReader

pytestmark = pytest.mark.e2e
LISBON = ["lis-1", "lis-2"]
DEVICES = [
    *({"device_id": d, "tags": {"site": "lisbon"}, "reported": {"fw": 2}} for d in LISBON),
    {"device_id": "por-1", "tags": {"site": "porto"}, "reported": {"fw": 2}},
    {"device_id": "lis-new", "tags": {"site": "lisbon"}, "reported": {"fw": 3}},
    *({"device_id": d} for d in ("st-ok", "st-reject", "st-expire", "st-crash", "st-purge")),
]


@pytest.fixture(scope="module")
def proxy() -> Iterator[StorageProxy]:
    with storage_proxy("http://127.0.0.1:1") as running:  # its target is set once Azurite runs
        yield running


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, proxy: StorageProxy) -> Iterator[LocalCloud]:
    def through_proxy(storage: Azurite) -> str:
        proxy.target = f"http://{storage.host}:{storage.table_port}"
        return azurite_connection_string(storage.host, storage.port, proxy.port)

    settings = {"FEEDBACK_SCHEDULE": "* * * * * *", "C2D_STATUS_POLL_SECONDS": "1", "C2D_FEEDBACK_GRACE_SECONDS": "0"}
    limits = {"feedback_interval_s": 0.3, "feedback_lock_s": 3.0}
    with local_cloud(
        Path(tmp_path_factory.mktemp("status")), devices=DEVICES, hub_limits=limits, settings=settings,
        storage_connection=through_proxy,
    ) as running, trusting(running.hub.ca_bundle):
        yield running


@pytest.fixture
def outcomes(cloud: LocalCloud) -> Iterator[OutcomeReader]:
    reader = OutcomeReader(cloud.bus.connection_string)
    reader.poll(0.2)
    reader.seen.clear()
    try:
        yield reader
    finally:
        reader.close()


def call(method: str, url: str, *, key: str | None = None, body: object = None, headers: dict | None = None):
    """One HTTP request; returns (status, headers, JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if key:
        request.add_header("x-functions-key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        payload = error.read()
        return error.code, dict(error.headers), json.loads(payload) if payload else {}


def follow(location: str, timeout_s: float = 60) -> dict[str, Any]:
    """Poll a status URL as a Logic App does: with no header of its own, honouring Retry-After."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, headers, body = call("GET", location)
        if status == 200:
            return body
        assert status == 202, (status, body)
        assert time.monotonic() < deadline, f"still pending after {timeout_s} s: {body}"
        time.sleep(min(float(headers.get("Retry-After", "1")), 1.0))


def send(cloud: LocalCloud, device: str, body: dict) -> tuple[dict, str]:
    status, headers, answer = cloud.post(f"/api/devices/{device}/messages", body)
    assert status == 202, answer
    assert "code=" in headers["Location"], "the status URL carries the caller's key"
    return answer, headers["Location"]


def test_post_then_follow_location_until_success_with_the_callers_correlation(cloud, outcomes) -> None:
    answer, location = send(cloud, "st-ok", {
        "payload": {"cmd": "on"}, "correlationId": "run-42", "properties": {"x-workflow-run-id": "wf-42"},
    })
    status, headers, pending = call("GET", location)
    assert status == 202 and int(headers["Retry-After"]) >= 1 and pending["status"] == "Sent"
    assert device_https(cloud.hub, "st-ok") == 0

    final = follow(location)
    assert final["status"] == "Success" and final["final"] is True
    assert final["correlationId"] == "run-42" and final["properties"] == {"x-workflow-run-id": "wf-42"}
    outcomes.wait_for(lambda seen: outcomes.for_message(answer["messageId"]), 30, "the outcome event")
    (event,) = outcomes.for_message(answer["messageId"])
    assert event.properties["correlationId"] == "run-42" and event.properties["x-workflow-run-id"] == "wf-42"


def test_rejected_and_expired_are_final(cloud) -> None:
    _, rejected = send(cloud, "st-reject", {"payload": 1})
    assert device_https(cloud.hub, "st-reject", action="reject") == 0
    assert follow(rejected)["status"] == "Rejected"

    _, expiring = send(cloud, "st-expire", {"payload": 1, "ttlSeconds": 60})
    cloud.hub.admin.advance_clock(61)  # nobody fetches the message before it expires
    assert follow(expiring)["status"] == "Expired"


def test_unknown_message_is_404_and_a_wrong_key_is_refused(cloud) -> None:
    base = cloud.host.base_url
    assert call("GET", f"{base}/api/devices/st-ok/messages/never-sent", key=FUNCTION_KEY)[0] == 404
    assert call("GET", f"{base}/api/devices/st-ok/messages/never-sent?code=wrong")[0] == 401


def test_worker_killed_between_publish_and_status_update_then_one_final_state(cloud, proxy, outcomes) -> None:
    answer, location = send(cloud, "st-crash", {"payload": 1})
    proxy.hold_writes()  # FeedbackProcessor can publish but not record the outcome
    try:
        assert device_https(cloud.hub, "st-crash") == 0
        outcomes.wait_for(lambda seen: outcomes.for_message(answer["messageId"]), 30, "the published outcome")
        wait_until(lambda: proxy.held > 0, 10, "the outcome's status write to reach storage")
        os.kill(int(cloud.host.host_status()["workerPid"]), signal.SIGKILL)
        wait_until(lambda: cloud.host.host_status().get("workerRestarts", 0) >= 1, 60, "the worker to restart")
    finally:
        proxy.release_writes()
    final = follow(location, timeout_s=90)  # after the feedback lock (3 s) runs out, IoT Hub redelivers it
    assert final["status"] == "Success"
    time.sleep(2)
    outcomes.poll(0.5)
    assert len(outcomes.for_message(answer["messageId"])) == 1, "republished, and dropped as a duplicate"
    assert proxy.dropped >= 1, "the killed worker's status write never reached storage"


def test_fan_out_by_query_reaches_exactly_the_matching_devices(cloud) -> None:
    cloud.hub.admin.reset()
    cloud.hub.admin.update_twin("lis-new", reported={"fw": 3})
    query = "SELECT deviceId FROM devices WHERE tags.site = 'lisbon' AND properties.reported.fw < 3"
    status, headers, body = call(
        "POST", cloud.host.base_url + "/api/messages", key=FUNCTION_KEY,
        body={"query": query, "payload": {"cmd": "update"}}, headers={"Prefer": "respond-async"},
    )
    assert status == 202 and headers["Preference-Applied"] == "respond-async", body
    assert sorted(r["deviceId"] for r in body["results"]) == LISBON
    queued = cloud.hub.admin.state()["devices"]
    assert {d for d, messages in queued.items() if messages} == set(LISBON)
    for device in LISBON:
        assert device_https(cloud.hub, device) == 0
    final = follow(headers["Location"])
    assert final["counts"] == {"Success": 2} and final["pending"] == 0

    too_many = call("POST", cloud.host.base_url + "/api/messages", key=FUNCTION_KEY,
                    body={"query": "SELECT * FROM devices WHERE tags.site = 'lisbon' GROUP BY x", "payload": 1})
    assert too_many[0] == 400 and too_many[2]["error"]["details"][0]["field"] == "query"


def test_purge_returns_the_count_and_the_device_receives_nothing(cloud, outcomes) -> None:
    cloud.hub.admin.reset()
    locations = [send(cloud, "st-purge", {"payload": n})[1] for n in range(3)]
    status, _, body = call("DELETE", cloud.host.base_url + "/api/devices/st-purge/messages", key=FUNCTION_KEY)
    assert status == 200 and body["purged"] == 3
    assert device_https(cloud.hub, "st-purge", timeout_s=2) == 1, "nothing left for the device"
    assert {follow(location)["status"] for location in locations} == {"Purged"}
