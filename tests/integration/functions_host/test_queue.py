"""Storage-queue triggers against Azurite: success, trigger metadata, retries, poison queue, encoding."""

from __future__ import annotations

import contextlib
import datetime as dt
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import (
    BinaryBase64EncodePolicy,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from localcloud.functions_host.launcher import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def queue_client(basic_app: Any) -> Iterator[Callable[..., QueueClient]]:
    """make(name=None, encoding="text"|"binary"|None): a client of the app's queue (or `name`), closed after."""
    clients: list[QueueClient] = []

    def make(name: str | None = None, encoding: str | None = "text") -> QueueClient:
        encode = {"text": TextBase64EncodePolicy(), "binary": BinaryBase64EncodePolicy()}.get(encoding or "")
        client = QueueClient.from_connection_string(
            basic_app.connection_string,
            name or basic_app.queue,
            message_encode_policy=encode,
            message_decode_policy=TextBase64DecodePolicy() if encoding == "text" else None,
        )
        clients.append(client)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    yield make
    for client in clients:
        client.close()


def _work(app: Any, body: str) -> list[dict[str, Any]]:
    return [r for r in app.records("Work") if r["body"] == body]


def _queue_empty(client: QueueClient) -> bool:
    return not client.peek_messages(max_messages=32) and client.get_queue_properties().approximate_message_count == 0


def test_message_is_processed_with_metadata_and_deleted(basic_app: Any, queue_client: Any) -> None:
    client = queue_client()
    body = f"ok {uuid.uuid4()}"
    sent = client.send_message(body)
    [record] = wait_until(lambda: _work(basic_app, body), 60, "the Work function to get the message")
    assert record["id"] == sent.id
    assert record["dequeue_count"] == 1
    assert record["pop_receipt"]
    inserted = dt.datetime.fromisoformat(record["insertion_time"])
    expires = dt.datetime.fromisoformat(record["expiration_time"])
    assert abs((inserted - sent.inserted_on).total_seconds()) < 1
    assert dt.timedelta(days=6) < expires - inserted <= dt.timedelta(days=7)  # default TTL
    assert dt.datetime.fromisoformat(record["next_visible"]) > inserted
    wait_until(lambda: _queue_empty(client), 60, "the message to be deleted")
    basic_app.host.wait_for_output(f"work done {body}")


def test_failing_message_is_retried_then_moved_to_poison_queue(basic_app: Any, queue_client: Any) -> None:
    client = queue_client()
    body = f"fail {uuid.uuid4()}"
    client.send_message(body)
    poison = queue_client(basic_app.queue + "-poison")
    poisoned = wait_until(
        lambda: [m for m in poison.receive_messages(max_messages=32, visibility_timeout=1) if m.content == body],
        60,
        "the message in the poison queue",
    )
    assert len(poisoned) == 1
    # host.json maxDequeueCount = 3: three attempts, each with its own dequeue count
    attempts = _work(basic_app, body)
    assert sorted(r["dequeue_count"] for r in attempts) == [1, 2, 3]
    assert len({r["id"] for r in attempts}) == 1
    wait_until(lambda: _queue_empty(client), 60, "the original queue to be empty")
    basic_app.host.wait_for_output(f"Moving message '{attempts[0]['id']}' to queue '{basic_app.queue}-poison'")


def test_message_not_in_base64_goes_to_poison_without_invocation(basic_app: Any, queue_client: Any) -> None:
    raw = queue_client(encoding=None)
    body = f"not base64 !! {uuid.uuid4()}"
    raw.send_message(body)
    poison = queue_client(basic_app.queue + "-poison", encoding=None)
    wait_until(
        lambda: [m for m in poison.peek_messages(max_messages=32) if m.content == body],
        60,
        "the undecodable message in the poison queue",
    )
    assert _work(basic_app, body) == []


def test_binary_message_body_arrives_intact(basic_app: Any, queue_client: Any) -> None:
    client = queue_client(encoding="binary")
    body = f"binary {uuid.uuid4()}"
    client.send_message(body.encode())
    wait_until(lambda: _work(basic_app, body), 60, "the Work function to get the binary message")


def test_queue_output_binding_feeds_the_queue_trigger(basic_app: Any) -> None:
    tag = uuid.uuid4()
    bodies = [f"chained {tag} {i}" for i in range(3)]
    req = urllib.request.Request(basic_app.host.base_url + "/api/Enqueue", data="\n".join(bodies).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
        assert resp.read() == b"queued 3"
    for body in bodies:  # sent base64-encoded by the output binding, decoded again by the trigger
        wait_until(lambda b=body: _work(basic_app, b), 60, f"the Work function to get {body!r}")
