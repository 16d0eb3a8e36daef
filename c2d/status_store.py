"""The delivery status store: one place a workflow can ask what became of a message (Azure Table storage).

Layout (table `C2D_STATUS_TABLE`, the same table as the send journal):

- a fan-out request lives in partition `req|<requestId>`: a `request` row (ack, correlation id,
  caller properties, expiry) and `devices|<n>` rows holding the devices' send results in request
  order, `DEVICES_PER_ROW` per row; written in one or two transactions whatever the fan-out size.
  Its message ids are `<requestId>.<index>`, so a feedback record finds its partition and row from
  the message id alone, with no index to maintain;
- a single send lives in partition `one|<deviceId>|<messageId>`: one `request` row;
- FeedbackProcessor records IoT Hub's outcomes in the message's partition: for a single send, a
  `dev|<deviceId>` row; for a fan-out, `out|<n>|<digest>` rows, each holding the outcomes of one feedback
  batch for the devices of `devices|<n>` (index, device, status, description, time), so a batch of 1,000
  outcomes is a handful of rows in one transaction instead of 1,000 rows. The digest is taken from the
  row's content, so processing the same feedback again writes the same rows. (Fan-out outcomes recorded
  by earlier versions as `dev|<deviceId>` rows are still read.)

Writes of the send path replace what an earlier send of the same (device, message id) left; an
outcome older than the send it would describe is ignored, so a caller re-sending a message id never
sees the previous send's outcome. Outcome rows are written with the same values when a feedback batch
is processed again, so re-processing never changes a final state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from c2d.messages import C2DMessage, SendResult
from c2d.status import Delivery
from c2d.tables import Table, storage_errors, table_key

logger = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")
FAN_OUT_MESSAGE_ID = re.compile(r"^([0-9a-f]{32})\.(\d{1,6})$")
DEVICES_PER_ROW = 100
_TRANSACTION_LIMIT = 100
_PROPERTY_CHARS = 30_000  # Table string properties hold at most 32K UTF-16 characters
#: An outcome this much older than the send it would describe belongs to an earlier send of the same id.
_CLOCK_SKEW = timedelta(seconds=5)
_PARALLEL = 8


def fan_out_message_id(request_id: str, index: int) -> str:
    return f"{request_id}.{index}"


@dataclass(frozen=True)
class Placement:
    """Where a (device, message id) lives: its partition and, for a fan-out, its index in the request."""

    partition: str
    index: int | None

    @property
    def is_fan_out(self) -> bool:
        return self.index is not None


def placement(device_id: str, message_id: str) -> Placement:
    match = FAN_OUT_MESSAGE_ID.fullmatch(message_id)
    if match:
        return Placement("req|" + match.group(1), int(match.group(2)))
    return Placement(f"one|{table_key(device_id)}|{table_key(message_id)}", None)


@dataclass(frozen=True)
class SentRequest:
    """What the send path records: the request's common fields and each device's send result."""

    request_id: str
    ack: str
    sent_at: datetime
    expires_at: datetime | None
    correlation_id: str | None
    properties: Mapping[str, str]
    messages: Sequence[C2DMessage]
    results: Sequence[SendResult]


@dataclass(frozen=True)
class OutcomeRecord:
    """IoT Hub's outcome for one message, as FeedbackProcessor records it."""

    device_id: str
    message_id: str
    status: str
    description: str
    at: str  # IoT Hub's enqueuedTimeUtc


@dataclass(frozen=True)
class RequestContext:
    """What a feedback record's outcome event carries from its request: correlation id, caller properties."""

    correlation_id: str | None
    properties: Mapping[str, str]


class StatusStore:
    """The status table's reads and writes. FeedbackProcessor takes a new one per run (`clients.get_status_store`)."""

    def __init__(self, table: Table) -> None:
        self._table = table
        #: Contexts of fan-out requests read so far: a fan-out's `request` row is written once and never
        #: changes (its id is new for every request), and a backlog brings ~1,000 records per request.
        self._fan_out_contexts: dict[str, RequestContext] = {}

    # ---- send path -------------------------------------------------------------------------------
    def record_sent(self, sent: SentRequest) -> None:
        """Write the request and each device's send result. Raises `StoreUnavailable`."""
        entities = _request_entities(sent)
        client = self._table.client()
        with storage_errors("record the send in the status table"):
            by_partition: dict[str, list[dict[str, object]]] = defaultdict(list)
            for entity in entities:
                by_partition[str(entity["PartitionKey"])].append(entity)
            for rows in by_partition.values():
                for start in range(0, len(rows), _TRANSACTION_LIMIT):
                    chunk = rows[start:start + _TRANSACTION_LIMIT]
                    if len(chunk) == 1:
                        client.upsert_entity(chunk[0], mode=UpdateMode.REPLACE)
                    else:
                        client.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}) for row in chunk])

    # ---- FeedbackProcessor ------------------------------------------------------------------------
    def check_reachable(self) -> None:
        """One cheap read: raises `StoreUnavailable` if the table cannot be reached now."""
        client = self._table.client()
        with storage_errors("reach the status table"), contextlib.suppress(ResourceNotFoundError):
            client.get_entity(partition_key="probe", row_key="probe")

    def contexts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RequestContext]:
        """The request context of each (device, message id); missing ones are left out."""
        where = {(d, m): placement(d, m).partition for d, m in keys}
        known = self._fan_out_contexts
        partitions = {partition for partition in where.values() if partition not in known}
        client = self._table.client()

        def read(partition: str) -> tuple[str, RequestContext | None]:
            try:
                row = client.get_entity(partition_key=partition, row_key="request")
            except ResourceNotFoundError:
                return partition, None
            return partition, RequestContext(row.get("CorrelationId"), json.loads(row.get("Properties") or "{}"))

        with storage_errors("read request contexts from the status table"):
            found = dict(self._parallel(read, partitions))
        for partition, context in found.items():
            if context is not None and partition.startswith("req|"):
                known[partition] = context
        return {
            key: context for key, partition in where.items()
            if (context := known.get(partition) or found.get(partition)) is not None
        }

    def record_outcomes(self, outcomes: Sequence[OutcomeRecord]) -> None:
        """Write IoT Hub's outcomes (idempotent). Raises `StoreUnavailable`."""
        by_partition: dict[str, list[dict[str, object]]] = defaultdict(list)
        packed: dict[tuple[str, int], dict[int, list[object]]] = defaultdict(dict)
        recorded_at = _now_text()
        for outcome in outcomes:
            where = placement(outcome.device_id, outcome.message_id)
            if where.index is not None:
                packed[(where.partition, where.index // DEVICES_PER_ROW)][where.index] = [
                    where.index, outcome.device_id, outcome.status, outcome.description, outcome.at
                ]
                continue
            by_partition[where.partition].append(
                {
                    "PartitionKey": where.partition,
                    "RowKey": "dev|" + table_key(outcome.device_id),
                    "DeviceId": outcome.device_id,
                    "MessageId": outcome.message_id,
                    "Outcome": outcome.status,
                    "Description": outcome.description,
                    "OutcomeAt": outcome.at,
                    "RecordedAt": recorded_at,
                }
            )
        for (partition, chunk), entries in packed.items():
            by_partition[partition].append(_outcome_row(partition, chunk, [entries[i] for i in sorted(entries)],
                                                        recorded_at))
        client = self._table.client()

        def write(rows: list[dict[str, object]]) -> None:
            unique = list({str(r["RowKey"]): r for r in rows}.values())
            for start in range(0, len(unique), _TRANSACTION_LIMIT):
                chunk = unique[start:start + _TRANSACTION_LIMIT]
                if len(chunk) == 1:
                    client.upsert_entity(chunk[0])
                else:
                    client.submit_transaction([("upsert", row) for row in chunk])

        with storage_errors("record outcomes in the status table"):
            list(self._parallel(write, by_partition.values()))

    # ---- status endpoint --------------------------------------------------------------------------
    def delivery(self, device_id: str, message_id: str) -> Delivery | None:
        """The delivery, or None if this app never sent that message to that device."""
        where = placement(device_id, message_id)
        wanted = ["request", "dev|" + table_key(device_id)]
        chunk_outcomes: tuple[str, str] | None = None
        if where.index is not None:
            wanted.append(_devices_row(where.index // DEVICES_PER_ROW))
            prefix = _outcome_prefix(where.index // DEVICES_PER_ROW)
            chunk_outcomes = (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        rows = self._rows(where.partition, wanted, chunk_outcomes)
        header = rows.get("request")
        if header is None:
            return None
        if where.index is None:
            entry = [header.get("DeviceId"), header.get("SendStatus"), header.get("Error")]
            if entry[0] != device_id:
                return None
        else:
            chunk = rows.get(_devices_row(where.index // DEVICES_PER_ROW))
            devices = _unpack(chunk) if chunk else []
            position = where.index % DEVICES_PER_ROW
            if position >= len(devices) or devices[position][0] != device_id:
                return None
            entry = devices[position]
        outcome = rows.get("dev|" + table_key(device_id))
        packed = _packed_outcomes(rows).get(where.index) if where.index is not None else None
        if packed is not None and packed["DeviceId"] == device_id:
            outcome = packed
        return _delivery(header, str(entry[0]), message_id, str(entry[1]), entry[2], outcome)

    def request(self, request_id: str) -> list[Delivery] | None:
        """Every delivery of a fan-out request, in request order; None for an unknown request."""
        if not re.fullmatch(r"[0-9a-f]{32}", request_id):
            return None
        partition = "req|" + request_id
        client = self._table.client()
        with storage_errors("read the request from the status table"):
            found = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            rows = {str(r["RowKey"]): r for r in found}
        header = rows.get("request")
        if header is None:
            return None
        chunks = sorted(k for k in rows if k.startswith("devices|"))
        packed = _packed_outcomes(rows)
        deliveries = []
        for chunk_key in chunks:
            base = int(chunk_key.split("|", 1)[1]) * DEVICES_PER_ROW
            for offset, (device, status, error) in enumerate(_unpack(rows[chunk_key])):
                outcome = packed.get(base + offset)
                if outcome is None or outcome["DeviceId"] != device:
                    outcome = rows.get("dev|" + table_key(device))
                deliveries.append(
                    _delivery(header, device, fan_out_message_id(request_id, base + offset), status, error, outcome)
                )
        return deliveries

    # ---- retention --------------------------------------------------------------------------------
    def remove_older_than(self, cutoff: datetime) -> int:
        """Delete every partition whose `request` row was written before `cutoff`; returns rows deleted."""
        client = self._table.client()
        stamp = cutoff.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        deleted = 0
        with storage_errors("remove old rows from the status table"):
            old = client.query_entities(
                "RowKey eq 'request' and CreatedAt lt @cutoff", parameters={"cutoff": stamp}, select=["PartitionKey"]
            )
            for partition in {str(row["PartitionKey"]) for row in old}:
                found = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"])
                keys = [str(r["RowKey"]) for r in found]
                for start in range(0, len(keys), _TRANSACTION_LIMIT):
                    chunk = keys[start:start + _TRANSACTION_LIMIT]
                    client.submit_transaction(
                        [("delete", {"PartitionKey": partition, "RowKey": key}) for key in chunk]
                    )
                    deleted += len(chunk)
        return deleted

    # ---- helpers ----------------------------------------------------------------------------------
    def _rows(
        self, partition: str, row_keys: Sequence[str], key_range: tuple[str, str] | None = None
    ) -> dict[str, dict[str, object]]:
        """The rows of `partition` with one of `row_keys`, or a RowKey in [key_range[0], key_range[1])."""
        client = self._table.client()
        names: dict[str, str] = {f"r{i}": key for i, key in enumerate(row_keys)}
        conditions = [f"RowKey eq @{name}" for name in names]
        if key_range is not None:
            names.update(lo=key_range[0], hi=key_range[1])
            conditions.append("( RowKey ge @lo and RowKey lt @hi )")
        condition = " or ".join(conditions)
        with storage_errors("read the delivery from the status table"):
            rows = client.query_entities(
                f"PartitionKey eq @pk and ( {condition} )", parameters={"pk": partition, **names}
            )
            return {str(row["RowKey"]): dict(row) for row in rows}

    @staticmethod
    def _parallel(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
        """Table calls for different partitions, a few at a time (each is one round trip)."""
        pending = list(items)
        if len(pending) <= 1:
            return [function(item) for item in pending]
        with ThreadPoolExecutor(min(_PARALLEL, len(pending))) as pool:
            return list(pool.map(function, pending))


def _request_entities(sent: SentRequest) -> list[dict[str, object]]:
    common = {
        "RequestId": sent.request_id,
        "Ack": sent.ack,
        "CorrelationId": sent.correlation_id,
        "Properties": json.dumps(dict(sent.properties), separators=(",", ":")) if sent.properties else None,
        "SentAt": _text(sent.sent_at),
        "ExpiresAt": _text(sent.expires_at) if sent.expires_at else None,
        "CreatedAt": _now_text(),
    }
    # One pass, no Placement per message: a fan-out of 10,000 devices comes through here.
    is_fan_out = FAN_OUT_MESSAGE_ID.fullmatch
    entries: list[list[Any]] = []
    singles: list[tuple[C2DMessage, list[Any]]] = []
    for message, result in zip(sent.messages, sent.results, strict=True):
        entry = [result.device_id, result.status, _error(result) if result.error else None]
        entries.append(entry)
        if is_fan_out(message.message_id) is None:
            singles.append((message, entry))
    entities: list[dict[str, object]] = []
    for message, entry in singles:
        entities.append(
            {
                "PartitionKey": placement(message.device_id, message.message_id).partition,
                "RowKey": "request",
                **common,
                "DeviceId": message.device_id,
                "SendStatus": entry[1],
                "Error": json.dumps(entry[2]) if entry[2] else None,
            }
        )
    if len(singles) < len(entries):
        partition = "req|" + sent.request_id
        entities.append({"PartitionKey": partition, "RowKey": "request", **common, "Count": len(entries)})
        for chunk_index, start in enumerate(range(0, len(entries), DEVICES_PER_ROW)):
            entities.append(
                {"PartitionKey": partition, "RowKey": _devices_row(chunk_index),
                 **_pack(entries[start:start + DEVICES_PER_ROW])}
            )
    return [{k: v for k, v in e.items() if v is not None} for e in entities]


def _error(result: SendResult) -> dict[str, object]:
    assert result.error is not None
    return result.error.to_dict()


def _devices_row(chunk_index: int) -> str:
    return f"devices|{chunk_index:05d}"


def _outcome_prefix(chunk_index: int) -> str:
    return f"out|{chunk_index:05d}|"


def _outcome_row(partition: str, chunk_index: int, entries: list[list[object]], recorded_at: str) -> dict[str, object]:
    """One row of packed fan-out outcomes; its key is a digest of its content (same outcomes, same row)."""
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    starts = range(0, len(text), _PROPERTY_CHARS)
    return {
        "PartitionKey": partition,
        "RowKey": _outcome_prefix(chunk_index) + digest,
        **{f"D{i}": text[start:start + _PROPERTY_CHARS] for i, start in enumerate(starts)},
        "RecordedAt": recorded_at,
    }


def _packed_outcomes(rows: Mapping[str, Mapping[str, object]]) -> dict[int, dict[str, object]]:
    """Fan-out index -> outcome (as a `dev|` row holds it) from the `out|` rows among `rows`.

    The same message's outcome may sit in several rows (a feedback batch processed twice, split differently):
    they hold the same final state; the latest time wins should they ever differ.
    """
    found: dict[int, dict[str, object]] = {}
    for key in sorted(k for k in rows if k.startswith("out|")):
        for index, device, status, description, at in _unpack(rows[key]):
            known = found.get(index)
            if known is None or str(at) >= str(known["OutcomeAt"]):
                found[index] = {"DeviceId": device, "Outcome": status, "Description": description, "OutcomeAt": at}
    return found


def _pack(entries: Sequence[Sequence[object]]) -> dict[str, str]:
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    starts = range(0, len(text), _PROPERTY_CHARS)
    return {f"D{i}": text[start:start + _PROPERTY_CHARS] for i, start in enumerate(starts)}


def _unpack(row: Mapping[str, object]) -> list[list[Any]]:
    parts = sorted((int(k[1:]), str(v)) for k, v in row.items() if re.fullmatch(r"D\d+", k))
    return json.loads("".join(text for _, text in parts)) if parts else []


def _delivery(
    header: Mapping[str, object],
    device_id: str,
    message_id: str,
    send_status: str,
    error: object,
    outcome_row: Mapping[str, object] | None,
) -> Delivery:
    sent_at = _parse(str(header.get("SentAt")))
    outcome = outcome_row if outcome_row and _not_before(outcome_row.get("OutcomeAt"), sent_at) else None
    if isinstance(error, str):
        error = json.loads(error)
    return Delivery(
        device_id=device_id,
        message_id=message_id,
        request_id=str(header.get("RequestId") or ""),
        ack=str(header.get("Ack") or "full"),
        send_status=send_status,
        sent_at=sent_at,
        expires_at=_parse(str(header["ExpiresAt"])) if header.get("ExpiresAt") else None,
        correlation_id=str(header["CorrelationId"]) if header.get("CorrelationId") else None,
        properties=json.loads(str(header.get("Properties") or "{}")),
        send_error=error if isinstance(error, dict) else None,
        outcome=str(outcome["Outcome"]) if outcome else None,
        outcome_description=str(outcome.get("Description") or "") if outcome else None,
        outcome_at=str(outcome.get("OutcomeAt") or "") if outcome else None,
    )


def _not_before(outcome_at: object, sent_at: datetime) -> bool:
    try:
        return _parse(str(outcome_at)) >= sent_at - _CLOCK_SKEW
    except ValueError:
        return True  # no usable time on the outcome: trust it


def _parse(text: str) -> datetime:
    value = text.strip().replace("Z", "+00:00")
    if "." in value:  # IoT Hub writes 7 fractional digits; Python takes at most 6
        head, _, rest = value.partition(".")
        digits = re.match(r"\d*", rest).group(0)  # type: ignore[union-attr]
        value = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_text() -> str:
    return _text(datetime.now(UTC))
