"""Filling azure-servicebus's own `ServiceBusMessageBatch` with outcomes encoded by `c2d.outcome_wire`.

The batch is then sent by the SDK's public `ServiceBusSender.send_messages` (its retries, errors,
authentication and link handling unchanged); only how each message's bytes are produced differs.
This is the one module that relies on SDK internals (azure-servicebus pinned in requirements.txt,
default pyamqp transport): a batch keeps its encoded messages as bytes in `batch._message[5]`, its
running size in `_size`, its count in `_count`, and takes the first message's id on its envelope.

`wire_check` proves, once per process and before first use, that a batch filled here equals one
filled by `add_message(to_service_bus_message(o))` byte for byte and in its size accounting; when
anything differs (another SDK version, the uamqp transport) the publisher stays on the SDK's path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from c2d.outcome_wire import EncodedOutcome, encode_outcome
from c2d.outcomes import SEND_FAILED, Outcome

#: Bytes one message adds to a batch beyond its own encoding (data section header), below and from
#: 256 encoded bytes: the SDK's `_BATCH_MESSAGE_OVERHEAD_COST`, checked by `wire_check`.
_OVERHEAD_SMALL, _OVERHEAD_LARGE = 5, 8
_DATA_INDEX = 5  # pyamqp Message/BatchMessage field order: header, delivery annotations, ..., data


class UnsupportedBatch(Exception):
    """The SDK's batch does not have the shape this module fills (another version or transport)."""


class EncodedBatch:
    """One `ServiceBusMessageBatch` taking pre-encoded messages (and SDK messages, mixed in order)."""

    def __init__(self, batch: ServiceBusMessageBatch) -> None:
        message: object = batch._message
        if not (isinstance(message, list) and len(message) == 9 and isinstance(message[_DATA_INDEX], list)):
            raise UnsupportedBatch(f"unexpected batch message type {type(message).__name__}")
        if not (isinstance(batch._size, int) and isinstance(batch._count, int)):
            raise UnsupportedBatch("unexpected batch size accounting")
        self.batch = batch
        self._envelope = message
        self._data: list[bytes] = message[_DATA_INDEX]

    def __len__(self) -> int:
        return len(self.batch)

    def add_encoded(self, encoded: EncodedOutcome) -> bool:
        """Append the message unless the batch would pass its size limit (then False, batch unchanged)."""
        batch = self.batch
        size = len(encoded.payload)
        size_after = batch._size + size + (_OVERHEAD_SMALL if size < 256 else _OVERHEAD_LARGE)
        if size_after > batch.max_size_in_bytes:
            return False
        self._data.append(encoded.payload)
        batch._size = size_after
        batch._count += 1
        if batch._count == 1:  # as the SDK does: the envelope carries the first message's id
            batch._amqp_transport.set_batch_envelope_properties(self._envelope, encoded.message_id, None, None)
        return True

    def add_message(self, message: ServiceBusMessage) -> bool:
        """Append through the SDK's own encoder (what `wire_check` compares against)."""
        try:
            self.batch.add_message(message)
        except MessageSizeExceededError:
            return False
        return True

    def add(self, outcome: Outcome, to_message: Callable[[Outcome], ServiceBusMessage]) -> bool:
        encoded = encode_outcome(outcome)
        return self.add_message(to_message(outcome)) if encoded is None else self.add_encoded(encoded)


def encoded_batches(
    sender: ServiceBusSender, outcomes: Sequence[Outcome], to_message: Callable[[Outcome], ServiceBusMessage]
) -> Iterator[ServiceBusMessageBatch]:
    """`outcomes` in order, in as few batches as the sender's link allows, each yielded when full
    (the caller sends it; the next is filled after). Raises `MessageSizeExceededError` for an
    outcome too large on its own, and `UnsupportedBatch` before the first batch when the SDK's
    batches have another shape."""
    batch = EncodedBatch(sender.create_message_batch())
    for outcome in outcomes:
        if batch.add(outcome, to_message):
            continue
        if len(batch):
            yield batch.batch
            batch = EncodedBatch(sender.create_message_batch())
            if batch.add(outcome, to_message):
                continue
        raise MessageSizeExceededError(message="an outcome is larger than the topic's message size limit")
    if len(batch):
        yield batch.batch


def probe_outcomes() -> list[Outcome]:
    """Outcomes covering every encoding choice: short and long strings (str8/str32), small and large
    lists and maps (list8/list32, map8/map32), short and long bodies (vbin8/vbin32), whole messages
    under and over 256 bytes (the batch overhead), non-ASCII text, empty strings, caller properties."""
    long_text = "é€-" * 120
    return [
        Outcome("Success", "d", "m", "", "t", "o"),
        Outcome("Success", "dev-1", "msg-1", "Success", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z",
                body={"originalMessageId": "msg-1", "deviceId": "dev-1", "statusCode": "Success"}),
        Outcome(SEND_FAILED, "gerät-ü", long_text, long_text, "2026-11-26T10:00:00.123Z", "request:q-1",
                body={"error": {"code": "DeviceNotFound", "message": long_text}, "n": 1, "none": None},
                correlation_id="run-7", caller_properties={"x-workflow-run-id": "run-7", "x-ü": long_text}),
        Outcome("Expired", "", "", "", "", "", body={}, correlation_id=None, caller_properties={"x-a": ""}),
    ]  # fmt: skip


def wire_check(to_message: Callable[[Outcome], ServiceBusMessage], max_size_in_bytes: int = 1024 * 1024) -> str | None:
    """None when batches filled here equal the SDK's for `probe_outcomes()`; otherwise why not."""
    try:
        return _compare(probe_outcomes(), to_message, max_size_in_bytes)
    except (UnsupportedBatch, AttributeError, TypeError, ValueError, IndexError) as error:
        return f"{type(error).__name__}: {error}"


def _compare(
    outcomes: Sequence[Outcome], to_message: Callable[[Outcome], ServiceBusMessage], max_size_in_bytes: int
) -> str | None:
    stock = ServiceBusMessageBatch(max_size_in_bytes=max_size_in_bytes)
    ours = EncodedBatch(ServiceBusMessageBatch(max_size_in_bytes=max_size_in_bytes))
    for index, outcome in enumerate(outcomes):
        stock.add_message(to_message(outcome))
        encoded = encode_outcome(outcome)
        if encoded is None:
            return f"probe {index} cannot be encoded"
        if not ours.add_encoded(encoded):
            return f"probe {index} does not fit"
        if bytes(stock._message[_DATA_INDEX][-1]) != encoded.payload:
            return f"probe {index} encodes differently"
        if (stock._size, len(stock)) != (ours.batch._size, len(ours)):
            return f"probe {index}: batch size accounting differs"
    if stock._message != ours.batch._message:
        return "batch envelopes differ"
    return None
