"""FeedbackProcessor's logic (c2d.feedback_drain) with the real adapters and both emulators: feedback is
accepted only after its outcomes are on the topic; with Service Bus down it is released and nothing is lost."""

from __future__ import annotations

import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceiveMode
from c2d_testing.devices import device_https

from c2d.config import FeedbackSettings
from c2d.feedback_drain import drain_feedback
from c2d.iothub import C2DSender, FeedbackReceiver
from c2d.messages import C2DMessage
from c2d.servicebus import OutcomePublisher

pytestmark = pytest.mark.integration
FAST = FeedbackSettings(max_drain_s=3.0, idle_wait_s=0.5, batch_size=16)


def read_all(bus) -> list:
    out = []
    with ServiceBusClient.from_connection_string(bus.connection_string) as client, client.get_subscription_receiver(
        "c2d-outcomes", "all", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        while batch := receiver.receive_messages(max_message_count=100, max_wait_time=1.5):
            out.extend(batch)
    return out


def send_and_complete(hub, hub_settings, ids: list[str]) -> None:
    with C2DSender(hub_settings) as sender:
        assert all(r.sent for r in sender.send_many([C2DMessage("dev-0", i, b"x") for i in ids]))
    assert device_https(hub, "dev-0", count=len(ids)) == 0


def test_drain_publishes_then_accepts(hub, hub_settings, bus, bus_settings, ledger) -> None:
    read_all(bus)
    ids = [f"flow-{i}" for i in range(12)]
    send_and_complete(hub, hub_settings, ids)
    time.sleep(1.0)  # feedback flush interval is 0.2 s in the test hub

    with FeedbackReceiver(hub_settings) as receiver, OutcomePublisher(bus_settings) as publisher:
        report = drain_feedback(receiver, publisher, ledger, FAST)

    assert report.published == 12 and report.released == 0
    assert sorted(str(m.correlation_id) for m in read_all(bus)) == sorted(ids)
    assert hub.admin.state()["feedback"] == [], "accepted feedback must be gone from the hub"


def feedback_on_hub(hub) -> list[dict]:
    return hub.admin.state()["feedback"]


def drain_until(receiver, publisher, ledger, want: int, timeout_s: float = 30.0) -> int:
    published, deadline = 0, time.monotonic() + timeout_s
    while published < want and time.monotonic() < deadline:
        published += drain_feedback(receiver, publisher, ledger, FAST).published
    return published


def test_topic_unreachable_leaves_feedback_untouched_then_publishes_everything_once(
    hub, hub_settings, bus, bus_settings, ledger
) -> None:
    read_all(bus)
    ids = [f"outage-{i}" for i in range(8)]
    send_and_complete(hub, hub_settings, ids)
    time.sleep(1.0)

    with FeedbackReceiver(hub_settings) as receiver, OutcomePublisher(bus_settings) as publisher:
        bus.admin.refuse_connections(4.0)
        bus.admin.drop_connections()
        for _ in range(3):
            down = drain_feedback(receiver, publisher, ledger, FAST)
            assert down.stopped == "unreachable" and down.received == 0
        waiting = feedback_on_hub(hub)
        assert waiting and all(f["deliveryCount"] == 0 for f in waiting), "no delivery may be spent while down"
        time.sleep(4.5)
        drain_until(receiver, publisher, ledger, 8)

    outcomes = read_all(bus)
    assert sorted(str(m.correlation_id) for m in outcomes) == sorted(ids), "every outcome exactly once"


def test_topic_lost_after_the_check_releases_and_loses_nothing(hub, hub_settings, bus, bus_settings, ledger) -> None:
    read_all(bus)
    ids = [f"lost-{i}" for i in range(8)]
    send_and_complete(hub, hub_settings, ids)
    time.sleep(1.0)

    with FeedbackReceiver(hub_settings) as receiver, OutcomePublisher(bus_settings) as publisher:
        publisher.check_reachable()  # the link is open: the next check does not touch the network
        bus.admin.refuse_connections(3.0)
        bus.admin.drop_connections()
        down = drain_feedback(receiver, publisher, ledger, FAST)
        assert down.published == 0 and down.released >= 1 and down.accepted == 0
        time.sleep(3.5)
        drain_until(receiver, publisher, ledger, 8)

    outcomes = read_all(bus)
    assert sorted(str(m.correlation_id) for m in outcomes) == sorted(ids), "every outcome exactly once"


def test_idle_receiver_holds_no_feedback_between_runs(hub, hub_settings, bus, bus_settings, ledger) -> None:
    """Hole 10: the feedback link used to stay open with 16 credits between runs, so new feedback
    was delivered and locked while nobody processed it (each lock expiry costs a delivery)."""
    read_all(bus)
    with FeedbackReceiver(hub_settings) as receiver, OutcomePublisher(bus_settings) as publisher:
        drain_feedback(receiver, publisher, ledger, FAST)  # a run ends: the link must not linger
        send_and_complete(hub, hub_settings, ["idle-0", "idle-1"])
        time.sleep(1.5)  # feedback is flushed to the endpoint while no run is active
        waiting = feedback_on_hub(hub)
        assert waiting, "the hub should hold the new feedback"
        assert all(not f.get("locked") and f["deliveryCount"] == 0 for f in waiting), waiting
        drain_until(receiver, publisher, ledger, 2)
    assert sorted(str(m.correlation_id) for m in read_all(bus)) == ["idle-0", "idle-1"]
