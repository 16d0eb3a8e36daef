"""The unmodified azure-servicebus SDK (aio) against the emulator over real sockets."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import (
    MessageLockLostError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
)
from localcloud_testing.servicebus import receive_async

from localcloud.servicebus.launcher import ServiceBusProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]



def _client(conn_str: str, **kwargs: object) -> ServiceBusClient:
    return ServiceBusClient.from_connection_string(conn_str, **kwargs)  # type: ignore[arg-type]


def _ids(messages) -> set[str]:
    return {m.message_id for m in messages}


async def test_property_round_trip(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("roundtrip-aio") as sender:
            await sender.send_messages(
                ServiceBusMessage(
                    "body-text",
                    message_id="rt-a",
                    correlation_id="corr-a",
                    subject="subj-a",
                    content_type="text/plain",
                    application_properties={"status": "Success", "n": 3},
                )
            )
        async with client.get_queue_receiver("roundtrip-aio") as receiver:
            [got] = await receive_async(receiver, 1)
            assert (got.message_id, got.correlation_id, got.subject, got.content_type) == (
                "rt-a",
                "corr-a",
                "subj-a",
                "text/plain",
            )
            assert got.application_properties == {b"status": b"Success", b"n": 3}
            assert str(got) == "body-text"
            await receiver.complete_message(got)


async def test_batch_fans_out_through_filters(conn_str: str) -> None:
    statuses = {"a-ok": "Success", "a-fail": "Failed", "a-exp": "Expired"}
    async with _client(conn_str) as client:
        async with client.get_topic_sender("outcomes-aio") as sender:
            batch = await sender.create_message_batch()
            for mid, status in statuses.items():
                batch.add_message(ServiceBusMessage(mid, message_id=mid, application_properties={"status": status}))
            await sender.send_messages(batch)
        expected = {"all": set(statuses), "failed": {"a-fail", "a-exp"}, "succeeded": {"a-ok"}}
        for sub, ids in expected.items():
            async with client.get_subscription_receiver("outcomes-aio", sub) as receiver:
                got = await receive_async(receiver, len(ids))
                got += await receive_async(receiver, 1, deadline_s=0.5)
                for m in got:
                    await receiver.complete_message(m)
                assert _ids(got) == ids, sub


async def test_duplicates_dropped_inside_window_accepted_after(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("dedup-aio") as sender:
            await sender.send_messages([ServiceBusMessage("first", message_id="dup-a")])
            await sender.send_messages([ServiceBusMessage("second", message_id="dup-a")])
            async with client.get_queue_receiver("dedup-aio") as receiver:
                got = await receive_async(receiver, 2, deadline_s=1.5)
                for m in got:
                    await receiver.complete_message(m)
            assert [str(m) for m in got] == ["first"]
            await asyncio.sleep(2 + 0.5)  # past the 2 s window of the test config
            await sender.send_messages(ServiceBusMessage("third", message_id="dup-a"))
        async with client.get_queue_receiver("dedup-aio") as receiver:
            [again] = await receive_async(receiver, 1)
            await receiver.complete_message(again)
            assert str(again) == "third"


async def test_abandon_redelivers_with_higher_delivery_count(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("abandon-aio") as sender:
            await sender.send_messages(ServiceBusMessage("a", message_id="ab-a"))
        async with client.get_queue_receiver("abandon-aio") as receiver:
            [first] = await receive_async(receiver, 1)
            await receiver.abandon_message(first)
            [second] = await receive_async(receiver, 1)
            assert (second.message_id, first.delivery_count, second.delivery_count) == ("ab-a", 0, 1)
            await receiver.complete_message(second)


async def test_dead_letter_carries_reason(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("deadletter-aio") as sender:
            await sender.send_messages(ServiceBusMessage("d", message_id="dl-a"))
        async with client.get_queue_receiver("deadletter-aio") as receiver:
            [msg] = await receive_async(receiver, 1)
            await receiver.dead_letter_message(msg, reason="why", error_description="because")
        async with client.get_queue_receiver("deadletter-aio", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = await receive_async(dlq, 1)
            assert (dead.message_id, dead.dead_letter_reason, dead.dead_letter_error_description) == (
                "dl-a",
                "why",
                "because",
            )
            await dlq.complete_message(dead)


async def test_lock_expiry_redelivers(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("lockexpiry-aio") as sender:
            await sender.send_messages(ServiceBusMessage("l", message_id="le-a"))
        async with client.get_queue_receiver("lockexpiry-aio") as receiver:
            [first] = await receive_async(receiver, 1)
            [second] = await receive_async(receiver, 1)
            assert (second.message_id, second.delivery_count) == ("le-a", 1)
            with pytest.raises(MessageLockLostError):
                await receiver.complete_message(first)
            await receiver.complete_message(second)


async def test_renew_lock_extends(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("renew-aio") as sender:
            await sender.send_messages(ServiceBusMessage("r", message_id="rn-a"))
        async with client.get_queue_receiver("renew-aio") as receiver:
            [msg] = await receive_async(receiver, 1)
            first_until = renewed_until = msg.locked_until_utc
            end = time.monotonic() + 3  # 1.5 times the 2 s lock
            while time.monotonic() < end:
                await asyncio.sleep(0.5)
                renewed_until = await receiver.renew_message_lock(msg)
            assert renewed_until > first_until + timedelta(seconds=1)
            await receiver.complete_message(msg)


async def test_max_delivery_count_moves_to_dead_letter(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("maxdelivery-aio") as sender:
            await sender.send_messages(ServiceBusMessage("m", message_id="md-a"))
        async with client.get_queue_receiver("maxdelivery-aio") as receiver:
            for _ in range(3):
                [msg] = await receive_async(receiver, 1)
                await receiver.abandon_message(msg)
            assert await receive_async(receiver, 1, deadline_s=1) == []
        async with client.get_queue_receiver("maxdelivery-aio", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = await receive_async(dlq, 1)
            assert (dead.message_id, dead.dead_letter_reason) == ("md-a", "MaxDeliveryCountExceeded")
            await dlq.complete_message(dead)


async def test_wrong_key_is_authentication_error(servicebus: ServiceBusProcess) -> None:
    bad = servicebus.connection_string_with_key("not-the-key")
    async with _client(bad, retry_total=0) as client:
        with pytest.raises(ServiceBusAuthenticationError):
            async with client.get_queue_sender("roundtrip-aio") as sender:
                await sender.send_messages(ServiceBusMessage("x"))


async def test_unknown_entity_is_clear_error(conn_str: str) -> None:
    async with _client(conn_str, retry_total=0) as client:
        with pytest.raises(MessagingEntityNotFoundError):
            async with client.get_queue_sender("no-such-queue-aio") as sender:
                await sender.send_messages(ServiceBusMessage("x"))
        with pytest.raises(MessagingEntityNotFoundError):
            async with client.get_subscription_receiver("outcomes-aio", "no-such-sub") as receiver:
                await receiver.receive_messages(max_wait_time=1)


async def test_management_peek_schedule_cancel_defer(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("mgmt-aio") as sender:
            [cancelled] = await sender.schedule_messages(
                ServiceBusMessage("later", message_id="sc-x"), datetime.now(UTC) + timedelta(hours=1)
            )
            [kept] = await sender.schedule_messages(ServiceBusMessage("soon", message_id="sc-y"), datetime.now(UTC))
            await sender.cancel_scheduled_messages(cancelled)
        async with client.get_queue_receiver("mgmt-aio") as receiver:
            assert [m.message_id for m in await receiver.peek_messages(max_message_count=10)] == ["sc-y"]
            [msg] = await receive_async(receiver, 1)
            await receiver.defer_message(msg)
            [deferred] = await receiver.receive_deferred_messages([kept])
            assert deferred.message_id == "sc-y"
            await receiver.complete_message(deferred)


async def test_receive_and_delete(conn_str: str) -> None:
    async with _client(conn_str) as client:
        async with client.get_queue_sender("roundtrip-aio") as sender:
            await sender.send_messages([ServiceBusMessage(str(i), message_id=f"rd-a{i}") for i in range(2)])
        async with client.get_queue_receiver(
            "roundtrip-aio", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
        ) as receiver:
            assert _ids(await receive_async(receiver, 2)) == {"rd-a0", "rd-a1"}
            assert await receive_async(receiver, 1, deadline_s=1) == []


async def test_sender_survives_dropped_connections(conn_str: str, servicebus: ServiceBusProcess) -> None:
    async with _client(conn_str, retry_total=10, retry_backoff_factor=0.2, retry_backoff_max=1) as client:
        async with client.get_queue_sender("faults-aio") as sender:
            await sender.send_messages(ServiceBusMessage("before", message_id="fa-1"))
            await asyncio.to_thread(servicebus.admin.drop_connections)
            await sender.send_messages(ServiceBusMessage("after", message_id="fa-2"))
        async with client.get_queue_receiver("faults-aio") as receiver:
            got = await receive_async(receiver, 2)
            for m in got:
                await receiver.complete_message(m)
    assert _ids(got) == {"fa-1", "fa-2"}
