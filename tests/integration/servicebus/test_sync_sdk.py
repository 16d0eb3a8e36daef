"""The unmodified azure-servicebus SDK (sync) against the emulator over real sockets."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
)
from localcloud_testing.servicebus import receive

from localcloud.servicebus.launcher import ServiceBusProcess

pytestmark = pytest.mark.integration



def _client(conn_str: str, **kwargs: object) -> ServiceBusClient:
    return ServiceBusClient.from_connection_string(conn_str, **kwargs)  # type: ignore[arg-type]


def _ids(messages) -> set[str]:
    return {m.message_id for m in messages}


def test_property_round_trip(conn_str: str) -> None:
    sent = ServiceBusMessage(
        b'{"x": 1}',
        message_id="rt-1",
        correlation_id="corr-rt",
        subject="the-subject",
        content_type="application/json",
        to="someone",
        reply_to="reply-queue",
        application_properties={"status": "Failed", "count": 7, "ratio": 0.5, "flag": True},
    )
    with _client(conn_str) as client:
        with client.get_queue_sender("roundtrip-sync") as sender:
            sender.send_messages(sent)
        with client.get_queue_receiver("roundtrip-sync") as receiver:
            [got] = receive(receiver, 1)
            assert got.message_id == "rt-1"
            assert got.correlation_id == "corr-rt"
            assert got.subject == "the-subject"
            assert got.content_type == "application/json"
            assert got.to == "someone"
            assert got.reply_to == "reply-queue"
            assert b"".join(got.body) == b'{"x": 1}'
            assert got.application_properties == {b"status": b"Failed", b"count": 7, b"ratio": 0.5, b"flag": True}
            assert got.delivery_count == 0
            assert got.sequence_number >= 1
            assert got.enqueued_time_utc is not None
            assert got.locked_until_utc > datetime.now(UTC)
            receiver.complete_message(got)
            assert receive(receiver, 1, deadline_s=1) == []


def test_batch_fans_out_through_filters(conn_str: str, servicebus: ServiceBusProcess) -> None:
    specs = [
        ("f-ok", {"status": "Success"}, None, None),
        ("f-fail", {"status": "Failed"}, None, None),
        ("f-rich-prio", {"status": "Failed", "priority": 9, "region": "eu"}, "alert", None),
        ("f-rich-dev", {"status": "Failed", "priority": 1, "deviceId": "crit-7", "region": "us"}, "alert", None),
        ("f-muted", {"status": "Failed", "priority": 9, "region": "eu", "muted": True}, "alert", None),
        ("f-wrong-region", {"status": "Failed", "priority": 9, "region": "asia"}, "alert", None),
        ("f-null", {"status": "Success"}, None, "corr-1"),
        ("f-null-code", {"status": "Success", "code": 3}, None, "corr-1"),
    ]
    with _client(conn_str) as client:
        with client.get_topic_sender("outcomes-sync") as sender:
            batch = sender.create_message_batch()
            for mid, props, subject, corr in specs:
                batch.add_message(
                    ServiceBusMessage(
                        mid, message_id=mid, application_properties=props, subject=subject, correlation_id=corr
                    )
                )
            sender.send_messages(batch)
        expected = {
            "all": {s[0] for s in specs},
            "failed": {"f-fail", "f-rich-prio", "f-rich-dev", "f-muted", "f-wrong-region"},
            "succeeded": {"f-ok", "f-null", "f-null-code"},
            "rich": {"f-rich-prio", "f-rich-dev"},
            "nullcheck": {"f-null"},
            "correlation": {"f-rich-prio", "f-muted"},
        }
        # Routing of every subscription, as the broker holds it ...
        for sub, ids in expected.items():
            held = servicebus.admin.messages(f"outcomes-sync/Subscriptions/{sub}")
            assert {m["messageId"] for m in held} == ids, sub
        # ... and what the SDK reads from two of them.
        for sub in ("failed", "rich"):
            with client.get_subscription_receiver("outcomes-sync", sub) as receiver:
                got = receive(receiver, len(expected[sub]))
                got += receive(receiver, 1, deadline_s=0.5)  # nothing more may arrive
                for m in got:
                    receiver.complete_message(m)
                assert _ids(got) == expected[sub], sub


def test_duplicates_dropped_inside_window_accepted_after(conn_str: str, servicebus: ServiceBusProcess) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("dedup-sync") as sender:
            sender.send_messages(ServiceBusMessage("first", message_id="dup-1"))
            sender.send_messages(ServiceBusMessage("second", message_id="dup-1"))
            sender.send_messages(ServiceBusMessage("other", message_id="dup-2"))
            with client.get_queue_receiver("dedup-sync") as receiver:
                got = receive(receiver, 3, deadline_s=1.5)
                for m in got:
                    receiver.complete_message(m)
            assert sorted(str(m) for m in got) == ["first", "other"]
            time.sleep(2 + 0.5)  # past the 2 s duplicate-detection window of the test config
            sender.send_messages(ServiceBusMessage("third", message_id="dup-1"))
        with client.get_queue_receiver("dedup-sync") as receiver:
            [again] = receive(receiver, 1)
            receiver.complete_message(again)
            assert str(again) == "third"


def test_abandon_redelivers_with_higher_delivery_count(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("abandon-sync") as sender:
            sender.send_messages(ServiceBusMessage("a", message_id="ab-1"))
        with client.get_queue_receiver("abandon-sync") as receiver:
            [first] = receive(receiver, 1)
            assert first.delivery_count == 0
            receiver.abandon_message(first)
            [second] = receive(receiver, 1)
            assert second.message_id == "ab-1"
            assert second.delivery_count == 1
            assert second.sequence_number == first.sequence_number
            receiver.complete_message(second)


def test_dead_letter_carries_reason(conn_str: str, servicebus: ServiceBusProcess) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("deadletter-sync") as sender:
            sender.send_messages(ServiceBusMessage("d", message_id="dl-1", application_properties={"k": "v"}))
        with client.get_queue_receiver("deadletter-sync") as receiver:
            [msg] = receive(receiver, 1)
            receiver.dead_letter_message(msg, reason="bad-payload", error_description="field x missing")
        assert servicebus.admin.entities()["queues"]["deadletter-sync"]["dead_lettered"] == 1
        with client.get_queue_receiver("deadletter-sync", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = receive(dlq, 1)
            assert dead.message_id == "dl-1"
            assert dead.dead_letter_reason == "bad-payload"
            assert dead.dead_letter_error_description == "field x missing"
            assert dead.dead_letter_source == "deadletter-sync"
            assert dead.application_properties[b"k"] == b"v"
            dlq.complete_message(dead)


def test_lock_expiry_redelivers(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("lockexpiry-sync") as sender:
            sender.send_messages(ServiceBusMessage("l", message_id="le-1"))
        with client.get_queue_receiver("lockexpiry-sync") as receiver:
            [first] = receive(receiver, 1)
            # Not settled: the 1 s lock runs out and the message comes back.
            [second] = receive(receiver, 1)
            assert second.message_id == "le-1"
            assert second.delivery_count == 1
            assert second.lock_token != first.lock_token
            with pytest.raises(MessageLockLostError):
                receiver.complete_message(first)
            receiver.complete_message(second)


def test_renew_lock_extends(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("renew-sync") as sender:
            sender.send_messages(ServiceBusMessage("r", message_id="rn-1"))
        with client.get_queue_receiver("renew-sync") as receiver:
            [msg] = receive(receiver, 1)
            first_until = msg.locked_until_utc
            renewed_until = first_until
            # Hold the 2 s lock for 3 s by renewing it every 0.5 s.
            end = time.monotonic() + 3
            while time.monotonic() < end:
                time.sleep(0.5)
                renewed_until = receiver.renew_message_lock(msg)
            assert renewed_until > first_until + timedelta(seconds=1)
            receiver.complete_message(msg)  # would raise MessageLockLostError had the lock expired
            assert receive(receiver, 1, deadline_s=1) == []


def test_max_delivery_count_moves_to_dead_letter(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("maxdelivery-sync") as sender:
            sender.send_messages(ServiceBusMessage("m", message_id="md-1"))
        with client.get_queue_receiver("maxdelivery-sync") as receiver:
            for attempt in range(3):  # MaxDeliveryCount = 3 in the test config
                [msg] = receive(receiver, 1)
                assert msg.delivery_count == attempt
                receiver.abandon_message(msg)
            assert receive(receiver, 1, deadline_s=1) == []
        with client.get_queue_receiver("maxdelivery-sync", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = receive(dlq, 1)
            assert dead.message_id == "md-1"
            assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
            dlq.complete_message(dead)


def test_wrong_key_is_authentication_error(servicebus: ServiceBusProcess) -> None:
    bad = servicebus.connection_string_with_key("not-the-key")
    with _client(bad, retry_total=0) as client, pytest.raises(ServiceBusAuthenticationError):  # noqa: SIM117
        with client.get_queue_sender("roundtrip-sync") as sender:  # opening the link puts the token
            sender.send_messages(ServiceBusMessage("x"))


def test_unknown_entity_is_clear_error(conn_str: str) -> None:
    with _client(conn_str, retry_total=0) as client:
        with client.get_queue_sender("no-such-queue") as sender, pytest.raises(MessagingEntityNotFoundError) as sent:
            sender.send_messages(ServiceBusMessage("x"))
        assert "no-such-queue" in str(sent.value)
        with client.get_queue_receiver("no-such-queue") as receiver, pytest.raises(MessagingEntityNotFoundError):
            receiver.receive_messages(max_wait_time=1)


def test_management_peek_schedule_cancel_defer(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("mgmt-sync") as sender:
            later = datetime.now(UTC) + timedelta(hours=1)
            [cancelled] = sender.schedule_messages(ServiceBusMessage("later", message_id="sc-cancel"), later)
            [kept_seq] = sender.schedule_messages(ServiceBusMessage("soon", message_id="sc-soon"), datetime.now(UTC))
            sender.cancel_scheduled_messages(cancelled)
        with client.get_queue_receiver("mgmt-sync") as receiver:
            peeked = receiver.peek_messages(max_message_count=10)
            assert [m.message_id for m in peeked] == ["sc-soon"]
            [msg] = receive(receiver, 1)
            assert msg.sequence_number == kept_seq
            receiver.defer_message(msg)
            assert receive(receiver, 1, deadline_s=1) == []
            [deferred] = receiver.receive_deferred_messages([kept_seq])
            assert deferred.message_id == "sc-soon"
            receiver.complete_message(deferred)
            assert receiver.peek_messages(max_message_count=10) == []


def test_receive_and_delete_removes_on_delivery(conn_str: str, servicebus: ServiceBusProcess) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("roundtrip-sync") as sender:
            sender.send_messages([ServiceBusMessage(str(i), message_id=f"rd-{i}") for i in range(3)])
        with client.get_queue_receiver(
            "roundtrip-sync", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
        ) as receiver:
            got = receive(receiver, 3)
            assert _ids(got) == {"rd-0", "rd-1", "rd-2"}
        assert servicebus.admin.entities()["queues"]["roundtrip-sync"]["available"] == 0


def test_expired_message_is_dead_lettered(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("ttl-sync") as sender:
            sender.send_messages(ServiceBusMessage("t", message_id="ttl-1", time_to_live=timedelta(seconds=1)))
        with client.get_queue_receiver("ttl-sync", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = receive(dlq, 1)
            assert dead.message_id == "ttl-1"
            assert dead.dead_letter_reason == "TTLExpiredException"
            dlq.complete_message(dead)


def test_sender_survives_dropped_and_refused_connections(conn_str: str, servicebus: ServiceBusProcess) -> None:
    with _client(conn_str, retry_total=10, retry_backoff_factor=0.2, retry_backoff_max=1) as client:
        with client.get_queue_sender("faults-sync") as sender:
            sender.send_messages(ServiceBusMessage("before", message_id="fx-1"))
            assert servicebus.admin.drop_connections() >= 1
            sender.send_messages(ServiceBusMessage("after-drop", message_id="fx-2"))
            servicebus.admin.refuse_connections(1.5)
            servicebus.admin.drop_connections()  # an outage: open connections go, new ones are refused
            sender.send_messages(ServiceBusMessage("after-refuse", message_id="fx-3"))
        with client.get_queue_receiver("faults-sync") as receiver:
            got = receive(receiver, 3)
            for m in got:
                receiver.complete_message(m)
    assert _ids(got) == {"fx-1", "fx-2", "fx-3"}


def test_admin_lists_messages(conn_str: str, servicebus: ServiceBusProcess) -> None:
    mid = f"adm-{uuid.uuid4()}"
    with _client(conn_str) as client, client.get_queue_sender("mgmt-sync") as sender:
        sender.send_messages(ServiceBusMessage("x", message_id=mid, application_properties={"status": "Failed"}))
    listed = servicebus.admin.messages("mgmt-sync")
    assert [(m["messageId"], m["applicationProperties"]["status"]) for m in listed] == [(mid, "Failed")]
    with _client(conn_str) as client, client.get_queue_receiver("mgmt-sync") as receiver:
        for m in receive(receiver, 1):
            receiver.complete_message(m)


def test_max_message_size_is_enforced(conn_str: str) -> None:
    with _client(conn_str) as client, client.get_queue_sender("small-sync") as sender:
        sender.send_messages(ServiceBusMessage(b"x" * 100, message_id="small-ok"))
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * 4096, message_id="small-big"))
        batch = sender.create_message_batch()
        assert batch.max_size_in_bytes <= 1024
    with _client(conn_str) as client, client.get_queue_receiver("small-sync") as receiver:
        got = receive(receiver, 2, deadline_s=2)
        for m in got:
            receiver.complete_message(m)
        assert _ids(got) == {"small-ok"}


def test_closing_receiver_releases_prefetched_messages(conn_str: str) -> None:
    with _client(conn_str) as client:
        with client.get_queue_sender("release-sync") as sender:
            sender.send_messages([ServiceBusMessage(str(i), message_id=f"rel-{i}") for i in range(3)])
        with client.get_queue_receiver("release-sync", prefetch_count=10) as receiver:
            first = receive(receiver, 1)
            receiver.complete_message(first[0])
        # The other two were prefetched under a 30 s lock; released on close, they are
        # available again at once and no delivery was counted against them.
        with client.get_queue_receiver("release-sync") as receiver:
            rest = receive(receiver, 2)
            for m in rest:
                receiver.complete_message(m)
    assert _ids(first) | _ids(rest) == {"rel-0", "rel-1", "rel-2"}
    assert [m.delivery_count for m in rest] == [0, 0]
