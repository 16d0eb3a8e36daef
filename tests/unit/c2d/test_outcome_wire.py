"""c2d.outcome_wire / c2d.servicebus_batches: the bytes and batches they build equal what the stock
azure-servicebus SDK builds from `to_service_bus_message(outcome)` (its own encoder, no network)."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.exceptions import MessageSizeExceededError

from c2d.errors import DeviceNotFound
from c2d.feedback import FeedbackRecord
from c2d.messages import C2DMessage
from c2d.outcome_wire import encode_outcome
from c2d.outcomes import Outcome, outcome_from_feedback, send_failed_outcome
from c2d.servicebus import to_service_bus_message
from c2d.servicebus_batches import EncodedBatch, encoded_batches, probe_outcomes, wire_check

STATUSES = ["Success", "Expired", "DeliveryCountExceeded", "Rejected", "Purged"]


def sdk_bytes(outcome: Outcome) -> bytes:
    """What the SDK writes for the outcome inside a batch (its own encoder, one data section)."""
    batch = ServiceBusMessageBatch(max_size_in_bytes=10 * 1024 * 1024)
    batch.add_message(to_service_bus_message(outcome))
    return bytes(batch._message[5][0])


def varied_outcomes() -> list[Outcome]:
    """Every size class around the one-byte-length limits, non-ASCII text, caller properties."""
    outcomes = list(probe_outcomes())
    for i, length in enumerate((0, 1, 100, 200, 230, 240, 250, 254, 255, 256, 257, 300, 1000, 70_000)):
        text = ("ü" if i % 2 else "a") * length
        record = FeedbackRecord(f"m-{text}"[:20000], f"dev-{i}", STATUSES[i % 5], text, "2026-11-26T10:00:00Z", "1")
        outcomes.append(outcome_from_feedback(record))
        outcomes.append(outcome_from_feedback(
            record, correlation_id=f"run-{text[:300]}", caller_properties={f"x-p{j}": text[: 40 * j] for j in range(6)}
        ))  # fmt: skip
    error = DeviceNotFound("the device does not exist", tracking_id="t-1")
    message = C2DMessage(device_id="dev-x", message_id="job-1", body=b"{}", correlation_id="wf-1",
                         properties={"x-workflow-run-id": "wf-1", "other": "dropped"})
    outcomes.append(send_failed_outcome(message, error, request_id="q-1"))
    outcomes.append(send_failed_outcome(None, error, request_id="q-2", device_id="dev-y", message_id="job-2"))
    return outcomes


VARIED = varied_outcomes()


@pytest.mark.parametrize("outcome", VARIED, ids=[f"{i}-{o.status}" for i, o in enumerate(VARIED)])
def test_encoded_outcome_is_byte_identical_to_the_sdk(outcome: Outcome) -> None:
    encoded = encode_outcome(outcome)
    assert encoded is not None
    assert encoded.message_id == outcome.message_id
    assert encoded.payload == sdk_bytes(outcome)


def test_wire_check_passes_with_the_installed_sdk() -> None:
    assert wire_check(to_service_bus_message) is None


def test_wire_check_notices_when_the_sdk_writes_something_else() -> None:
    def as_text(outcome: Outcome) -> ServiceBusMessage:
        message = to_service_bus_message(outcome)
        message.content_type = "text/plain"
        return message

    assert wire_check(as_text) == "probe 0 encodes differently"


class BatchSource:
    """Hands out real SDK batches of a given size limit, as `ServiceBusSender.create_message_batch` does."""

    def __init__(self, max_size_in_bytes: int) -> None:
        self.max_size_in_bytes = max_size_in_bytes

    def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=self.max_size_in_bytes)


def stock_batches(outcomes: list[Outcome], max_size_in_bytes: int) -> list[ServiceBusMessageBatch]:
    """The publisher's former loop: the SDK encodes, a new batch when one is full."""
    batches = [ServiceBusMessageBatch(max_size_in_bytes=max_size_in_bytes)]
    for outcome in outcomes:
        try:
            batches[-1].add_message(to_service_bus_message(outcome))
        except MessageSizeExceededError:
            batches.append(ServiceBusMessageBatch(max_size_in_bytes=max_size_in_bytes))
            batches[-1].add_message(to_service_bus_message(outcome))
    return batches


@pytest.mark.parametrize("max_size", [2_000, 20_000, 262_144])
def test_batches_split_and_encode_exactly_like_the_sdk(max_size: int) -> None:
    outcomes = [o for o in varied_outcomes() if len(sdk_bytes(o)) < max_size - 400] * 3
    ours = list(encoded_batches(BatchSource(max_size), outcomes, to_service_bus_message))  # type: ignore[arg-type]
    stock = stock_batches(outcomes, max_size)
    assert [len(b) for b in ours] == [len(b) for b in stock]
    assert [b.size_in_bytes for b in ours] == [b.size_in_bytes for b in stock]
    assert [b._message for b in ours] == [b._message for b in stock]  # envelope and every data section


def test_a_property_only_the_sdk_encodes_goes_through_the_sdk_in_the_same_batch() -> None:
    odd = outcome_from_feedback(
        FeedbackRecord("m-1", "dev-1", "Success", "Success", "2026-11-26T10:00:00Z", "1"),
        caller_properties={"x-count": 7},  # type: ignore[dict-item]  # not a string: only the SDK knows its encoding
    )
    plain = outcome_from_feedback(FeedbackRecord("m-2", "dev-2", "Expired", "Expired", "2026-11-26T10:00:00Z", "1"))
    assert encode_outcome(odd) is None
    batch = EncodedBatch(ServiceBusMessageBatch(max_size_in_bytes=262_144))
    assert batch.add(plain, to_service_bus_message) and batch.add(odd, to_service_bus_message)
    assert batch.batch._message == stock_batches([plain, odd], 262_144)[0]._message


def test_an_outcome_larger_than_a_batch_raises_message_size_exceeded() -> None:
    huge = outcome_from_feedback(FeedbackRecord("m", "dev", "Rejected", "x" * 5000, "2026-11-26T10:00:00Z", "1"))
    small = outcome_from_feedback(FeedbackRecord("s", "dev", "Success", "Success", "2026-11-26T10:00:00Z", "1"))
    with pytest.raises(MessageSizeExceededError):
        list(encoded_batches(BatchSource(4_000), [small, huge], to_service_bus_message))  # type: ignore[arg-type]
    with pytest.raises(MessageSizeExceededError):  # as the SDK's own add_message would
        stock_batches([huge], 4_000)
