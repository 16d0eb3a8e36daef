"""The product's promises, each driven through the whole app (local Functions host, both emulators,
Azurite) with the fault that used to break it. Run alone with `pytest -m fault`.

- at most once per request: a queued request is never sent twice, whatever fails after the send;
- outcomes exactly once: one per device and event, none lost while the topic is down;
- typed answers, never a 500: bad numbers, big bodies, odd device ids, an idle-expired token.

This app runs with host.json overridden through app settings (as Azure allows) so a failed queue
message is retried after 1 s instead of 30, and FeedbackProcessor runs every second.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient
from c2d_testing.devices import DECOY_DEVICE, ODD_DEVICE, device_https
from c2d_testing.localcloud import LocalCloud, local_cloud, trusting, wait_until

from localcloud.outcome_reader import OutcomeReader

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
DEVICES = ["q-sent", "q-unknown", "same-a", "same-b", "same-c", "idle-1", "outage-fb", ODD_DEVICE, DECOY_DEVICE]
FEEDBACK_MAX_DELIVERY_COUNT = 3


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    settings = {
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:01",
        "FEEDBACK_SCHEDULE": "* * * * * *",
        "FEEDBACK_MAX_DRAIN_SECONDS": "0.8",
        "FEEDBACK_IDLE_WAIT_SECONDS": "0.2",
        "IOTHUB_TOKEN_LIFETIME_SECONDS": "6",
    }
    limits = {"feedback_interval_s": 0.3, "feedback_max_delivery_count": FEEDBACK_MAX_DELIVERY_COUNT}
    with local_cloud(
        Path(tmp_path_factory.mktemp("guarantees")), devices=[{"device_id": d} for d in DEVICES],
        hub_limits=limits, settings=settings,
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


def copies_on_hub(cloud: LocalCloud, device_id: str) -> Counter[str]:
    return Counter(m["messageId"] for m in cloud.hub.admin.state()["devices"].get(device_id, []))


def enqueue(cloud: LocalCloud, request: dict) -> None:
    client = QueueClient.from_connection_string(cloud.storage.connection_string, "c2d-requests")
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    client.send_message(base64.b64encode(json.dumps(request).encode()).decode())


def executions(cloud: LocalCloud, since: int, result: str) -> int:
    return cloud.host.output()[since:].count(f"Executed 'Functions.SendC2DQueue' ({result}")


def test_queue_request_is_sent_once_when_service_bus_is_down_after_the_send(cloud, outcomes) -> None:
    """Hole 1: the outcome publisher was resolved after the send; a publish failure failed the
    invocation and every host retry sent the command again (up to maxDequeueCount copies)."""
    cloud.hub.admin.reset()
    log_start = len(cloud.host.output())
    cloud.bus.admin.refuse_connections(6.0)
    cloud.bus.admin.drop_connections()
    enqueue(cloud, {"deviceIds": ["q-sent", "ghost-q"], "payload": "once", "correlationId": "hole-1"})

    wait_until(lambda: executions(cloud, log_start, "Failed") >= 2, 60, "the host to retry while Service Bus is down")
    outcomes.wait_for(lambda seen: any(o.properties.get("deviceId") == "ghost-q" for o in seen), 60, "SendFailed")
    wait_until(lambda: executions(cloud, log_start, "Succeeded") >= 1, 30, "the request to complete")

    assert list(copies_on_hub(cloud, "q-sent").values()) == [1], "the device must get exactly one copy"
    time.sleep(2)
    outcomes.poll(0.5)
    failed = [o for o in outcomes.seen if o.properties.get("deviceId") == "ghost-q"]
    assert [o.subject for o in failed] == ["SendFailed"], "published exactly once"


def test_unknown_result_is_not_resent_by_a_queue_retry(cloud, outcomes) -> None:
    """Hole 2: the link drops after the transfer, before IoT Hub's disposition; publishing fails too,
    so the host retries. The retry must report `Unknown`, not send a second copy."""
    cloud.hub.admin.reset()
    cloud.hub.admin.disposition_delay(4000)
    log_start = len(cloud.host.output())
    try:
        enqueue(cloud, {"deviceId": "q-unknown", "payload": "maybe", "ack": "none"})
        wait_until(lambda: copies_on_hub(cloud, "q-unknown"), 30, "the transfer to reach the hub")
        cloud.bus.admin.refuse_connections(4.0)
        cloud.bus.admin.drop_connections()
        cloud.hub.admin.drop_connections()  # after the transfer, before the disposition
    finally:
        cloud.hub.admin.disposition_delay(0)

    outcomes.wait_for(lambda seen: any(o.properties.get("deviceId") == "q-unknown" for o in seen), 60, "the outcome")
    wait_until(lambda: executions(cloud, log_start, "Succeeded") >= 1, 30, "the request to complete")
    time.sleep(2)
    outcomes.poll(0.5)
    assert list(copies_on_hub(cloud, "q-unknown").values()) == [1], "never sent a second time"
    assert [o.subject for o in outcomes.seen if o.properties.get("deviceId") == "q-unknown"] == ["Unknown"]


def test_one_message_id_to_three_devices_gives_three_outcomes(cloud, outcomes) -> None:
    """Hole 4: outcome ids were uuid5(messageId, status), so the second and third device's outcome of the
    same caller messageId were dropped by the topic's duplicate detection."""
    cloud.hub.admin.reset()
    message_id = f"same-{uuid.uuid4()}"
    for device in ("same-a", "same-b", "same-c"):
        status, _, body = cloud.post(f"/api/devices/{device}/messages", {"payload": 1, "messageId": message_id})
        assert status == 202, body
        assert device_https(cloud.hub, device) == 0

    outcomes.wait_for(lambda seen: len(outcomes.for_message(message_id)) >= 3, 60, "three outcomes")
    time.sleep(2)
    outcomes.poll(0.5)
    devices = sorted(o.properties["deviceId"] for o in outcomes.for_message(message_id))
    assert devices == ["same-a", "same-b", "same-c"]


def test_send_after_an_idle_token_lifetime_succeeds(cloud) -> None:
    """Hole 5: the SAS token was renewed only during sends; after an idle lifetime (6 s here, 3600 s by
    default) the next send failed with a false 502 Unauthorized."""
    first = cloud.post("/api/devices/idle-1/messages", {"payload": "before"})
    time.sleep(8)
    second = cloud.post("/api/devices/idle-1/messages", {"payload": "after"})
    assert (first[0], second[0]) == (202, 202), (first, second)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"payload": ' + b"7" * 5000 + b"}", 400, "ValidationFailed"),
        (b'{"payload": "' + b"x" * (1024 * 1024 + 1) + b'"}', 413, "RequestTooLarge"),
    ],
    ids=["5000-digit-number", "body-over-1-MiB"],
)
def test_bad_numbers_and_big_bodies_are_typed_errors_never_500(cloud, raw, status, code) -> None:
    """Hole 6: a 5,000-digit integer made json.loads raise ValueError (a 500); bodies had no cap."""
    for path in ("/api/devices/idle-1/messages", "/api/messages"):
        answer, _, body = cloud.post(path, raw)
        assert answer == status and body["error"]["code"] == code, (path, answer, body)


def test_feedback_survives_a_topic_outage_longer_than_its_delivery_count(cloud, outcomes) -> None:
    """Hole 8: each FeedbackProcessor run received the feedback, failed to publish and released it; IoT
    Hub dropped it after maxDeliveryCount (3 on this hub, 10 by default) and the outcomes were lost."""
    cloud.hub.admin.reset()
    ids = []
    for _ in range(4):
        status, _, body = cloud.post("/api/devices/outage-fb/messages", {"payload": "x", "ack": "positive"})
        assert status == 202
        ids.append(body["messageId"])
    outage_s = 14.0  # > 10 runs of the one-second schedule
    cloud.bus.admin.refuse_connections(outage_s)
    cloud.bus.admin.drop_connections()
    assert device_https(cloud.hub, "outage-fb", count=4) == 0
    time.sleep(outage_s + 0.5)

    outcomes.wait_for(lambda seen: set(ids) <= {o.correlation_id for o in seen}, 60, "every outcome after the outage")
    time.sleep(2)
    outcomes.poll(0.5)
    assert Counter(o.correlation_id for o in outcomes.seen if o.correlation_id in ids) == Counter(dict.fromkeys(ids, 1))
    assert cloud.hub.admin.state()["stats"]["feedback_dead_lettered"] == 0


def test_device_id_with_url_characters_end_to_end(cloud, outcomes) -> None:
    """Hole 9: the C2D `to` address carried the raw device id; IoT Hub URL-decodes it, so `odd%41...`
    reached `oddA...` (or no device). The id travels URL-encoded in the route and in `to`."""
    cloud.hub.admin.reset()
    route = urllib.parse.quote(ODD_DEVICE, safe="")
    status, _, body = cloud.post(f"/api/devices/{route}/messages", {"payload": "odd"})
    assert status == 202 and body["deviceId"] == ODD_DEVICE, body
    assert copies_on_hub(cloud, DECOY_DEVICE) == Counter()
    assert device_https(cloud.hub, ODD_DEVICE) == 0
    outcomes.wait_for(lambda seen: outcomes.for_message(body["messageId"]), 60, "the outcome")
    (outcome,) = outcomes.for_message(body["messageId"])
    assert outcome.subject == "Success" and outcome.properties["deviceId"] == ODD_DEVICE
