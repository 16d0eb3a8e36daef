"""The send journal: what a queue request's first attempt sent, so a retry never sends again.

The Functions host retries a queue message whenever an invocation fails, including after the C2D
send succeeded (Service Bus down while publishing, the worker killed, a timeout). Before sending,
the request is claimed in the journal; after sending, each device's result is recorded. A retry
that finds the claim publishes the recorded results instead of sending; a device with no recorded
result (the attempt died mid-send) is reported `Unknown`, never sent twice.

Rows live in the app's status table, partition `request|<queue message id>`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from c2d.errors import C2DError, OutcomeUnknown
from c2d.messages import SendResult
from c2d.tables import Table, storage_errors, table_key

logger = logging.getLogger(__name__)
_HEADER = "request"
_DEVICE_PREFIX = "device|"
_TRANSACTION_LIMIT = 100  # entities per entity-group transaction


@dataclass(frozen=True)
class RecordedResult:
    """One device's result as the first attempt recorded it."""

    message_id: str
    status: str  # Sent | Failed | Unknown
    error_code: str | None = None
    error_message: str | None = None


class RecordedError(C2DError):
    """A failure read back from the journal: same code and text as the original error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EarlierAttempt:
    """What the journal holds for a request an earlier invocation already claimed."""

    results: Mapping[str, RecordedResult] = field(default_factory=dict)

    def result_for(self, device_id: str, message_id: str) -> SendResult:
        """The recorded result, or `Unknown` when the earlier attempt recorded none (it died mid-send)."""
        recorded = self.results.get(device_id)
        if recorded is None:
            return SendResult(
                device_id,
                message_id,
                OutcomeUnknown("an earlier attempt of this request stopped while sending; it is not sent again"),
            )
        if recorded.status == "Sent":
            return SendResult(device_id, recorded.message_id)
        if recorded.status == "Unknown":
            return SendResult(device_id, recorded.message_id, OutcomeUnknown(recorded.error_message or ""))
        error = RecordedError(recorded.error_code or "C2DError", recorded.error_message or "")
        return SendResult(device_id, recorded.message_id, error)


class SendJournal:
    """Claims and results of queue requests, in Azure Table storage."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def claim(self, request_id: str) -> EarlierAttempt | None:
        """Claim the request before sending. None: it is new and now ours to send. Otherwise an
        earlier attempt claimed it (and maybe recorded results): do not send.

        Raises `StoreUnavailable` (nothing was sent, so the host's retry is safe).
        """
        partition = _partition(request_id)
        client = self._table.client()
        with storage_errors("claim the queue request in the send journal"):
            try:
                client.create_entity(
                    {"PartitionKey": partition, "RowKey": _HEADER, "State": "sending", "CreatedAt": _now()}
                )
                return None
            except ResourceExistsError:
                pass
            rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            results = {
                str(row["DeviceId"]): RecordedResult(
                    message_id=str(row["MessageId"]),
                    status=str(row["Status"]),
                    error_code=row.get("ErrorCode"),
                    error_message=row.get("ErrorMessage"),
                )
                for row in rows
                if str(row["RowKey"]).startswith(_DEVICE_PREFIX)
            }
        return EarlierAttempt(results)

    def record(self, request_id: str, results: Sequence[SendResult]) -> None:
        """Record each device's result (in transactions of 100). Raises `StoreUnavailable`."""
        partition = _partition(request_id)
        rows = [
            {
                "PartitionKey": partition,
                "RowKey": _DEVICE_PREFIX + table_key(result.device_id),
                "DeviceId": result.device_id,
                "MessageId": result.message_id,
                "Status": result.status,
                "ErrorCode": result.error.code if result.error else None,
                "ErrorMessage": result.error.message if result.error else None,
            }
            for result in results
        ]
        rows = [{k: v for k, v in row.items() if v is not None} for row in rows]
        client = self._table.client()
        with storage_errors("record the send results in the send journal"):
            for start in range(0, len(rows), _TRANSACTION_LIMIT):
                client.submit_transaction([("upsert", row) for row in rows[start:start + _TRANSACTION_LIMIT]])
            client.update_entity({"PartitionKey": partition, "RowKey": _HEADER, "State": "sent", "SentAt": _now()})

    def release(self, request_id: str) -> None:
        """Withdraw the claim: nothing was sent, so the host's retry may send. Raises `StoreUnavailable`."""
        client = self._table.client()
        with storage_errors("withdraw the claim in the send journal"), contextlib.suppress(ResourceNotFoundError):
            client.delete_entity(partition_key=_partition(request_id), row_key=_HEADER)


def _partition(request_id: str) -> str:
    return "request|" + table_key(request_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
