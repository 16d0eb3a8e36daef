"""The send journal and the delivery status store with the real azure-data-tables SDK against Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from c2d.config import TableSettings
from c2d.errors import DeviceNotFound, OutcomeUnknown, StoreUnavailable
from c2d.journal import SendJournal
from c2d.messages import C2DMessage, SendResult
from c2d.status import status_of
from c2d.status_store import OutcomeRecord, SentRequest, StatusStore, fan_out_message_id, placement
from c2d.tables import Table
from localcloud.azurite import Azurite, azurite

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def storage() -> Iterator[Azurite]:
    with azurite() as instance:
        yield instance


@pytest.fixture
def table(storage: Azurite) -> Iterator[Table]:
    table = Table(TableSettings(table=f"t{uuid.uuid4().hex[:12]}", connection_string=storage.connection_string))
    try:
        yield table
    finally:
        table.close()


def sent(request_id: str, devices: list[str], *, fan_out: bool, errors: dict | None = None, ack: str = "full"):
    errors = errors or {}
    messages = [
        C2DMessage(device, fan_out_message_id(request_id, i) if fan_out else f"msg-{device}", b"x", ack=ack,
                   expires_at=NOW + timedelta(hours=1), correlation_id="run-7", properties={"x-run": "7"})
        for i, device in enumerate(devices)
    ]
    results = [SendResult(m.device_id, m.message_id, errors.get(m.device_id)) for m in messages]
    return SentRequest(request_id, ack, NOW, NOW + timedelta(hours=1), "run-7", {"x-run": "7"}, messages, results)


def test_journal_claims_once_and_returns_what_was_recorded(table: Table) -> None:
    journal = SendJournal(table)
    assert journal.claim("q-1") is None
    earlier = journal.claim("q-1")
    assert earlier is not None and earlier.results == {}, "claimed, nothing recorded yet"
    assert earlier.result_for("dev-1", "m-1").status == "Unknown"

    journal.record("q-1", [SendResult("dev-1", "m-1"), SendResult("dev-2", "m-2", DeviceNotFound("gone"))])
    again = journal.claim("q-1")
    assert again is not None
    assert again.result_for("dev-1", "m-1").status == "Sent"
    failed = again.result_for("dev-2", "m-2")
    assert failed.status == "Failed" and failed.error is not None and failed.error.code == "DeviceNotFound"

    journal.release("q-2")  # releasing what was never claimed is fine
    assert journal.claim("q-2") is None
    journal.release("q-2")
    assert journal.claim("q-2") is None, "a released claim can be taken again"


def test_fan_out_of_2500_devices_round_trips_in_request_order(table: Table) -> None:
    store = StatusStore(table)
    request_id = uuid.uuid4().hex
    devices = [f"d-{i:04d}" for i in range(2500)]
    store.record_sent(sent(request_id, devices, fan_out=True, errors={"d-0007": OutcomeUnknown("lost")}))

    deliveries = store.request(request_id)
    assert deliveries is not None and [d.device_id for d in deliveries] == devices
    assert deliveries[7].send_status == "Unknown" and deliveries[8].send_status == "Sent"
    one = store.delivery("d-1234", fan_out_message_id(request_id, 1234))
    assert one is not None and one.correlation_id == "run-7" and one.properties == {"x-run": "7"}
    assert store.delivery("d-1235", fan_out_message_id(request_id, 1234)) is None, "wrong device for that id"
    assert store.delivery("d-1234", fan_out_message_id(uuid.uuid4().hex, 1234)) is None


def test_outcome_makes_a_delivery_final_and_reprocessing_changes_nothing(table: Table) -> None:
    store = StatusStore(table)
    store.record_sent(sent("r" * 32, ["thermo|1#?"], fan_out=False))
    message_id = "msg-thermo|1#?"
    pending = store.delivery("thermo|1#?", message_id)
    assert pending is not None and not status_of(pending, NOW, timedelta(minutes=5)).final

    outcome = OutcomeRecord("thermo|1#?", message_id, "Rejected", "Message rejected", "2026-12-02T12:00:03.1234567Z")
    store.record_outcomes([outcome])
    store.record_outcomes([outcome])  # a redelivered feedback batch
    final = store.delivery("thermo|1#?", message_id)
    assert final is not None and final.outcome == "Rejected"
    view = status_of(final, NOW, timedelta(minutes=5))
    assert view.final and view.status == "Rejected"
    assert store.contexts([("thermo|1#?", message_id)])[("thermo|1#?", message_id)].correlation_id == "run-7"


def test_fan_out_outcomes_are_packed_rows_and_reprocessing_changes_nothing(table: Table) -> None:
    store = StatusStore(table)
    request_id = uuid.uuid4().hex
    devices = [f"d-{i:04d}" for i in range(250)]
    store.record_sent(sent(request_id, devices, fan_out=True))
    at = "2026-12-02T12:00:03.1234567Z"
    outcomes = [OutcomeRecord(d, fan_out_message_id(request_id, i), "Success" if i % 3 else "Expired",
                              "Success" if i % 3 else "Message expired", at) for i, d in enumerate(devices[:200])]
    store.record_outcomes(outcomes[:120])
    store.record_outcomes(outcomes[100:])  # redelivered feedback, batched differently: 100-119 again
    store.record_outcomes(outcomes[:120])  # the same batch again: the same rows

    rows = list(table.client().query_entities("PartitionKey eq @pk", parameters={"pk": "req|" + request_id}))
    packed = [r for r in rows if str(r["RowKey"]).startswith("out|")]
    assert 2 <= len(packed) <= 4, "a few packed rows per device chunk, not one row per device"
    deliveries = store.request(request_id)
    assert deliveries is not None
    assert [d.outcome for d in deliveries] == [o.status for o in outcomes] + [None] * 50
    assert deliveries[3].outcome_description == "Message expired" and deliveries[3].outcome_at == at
    one = store.delivery("d-0151", fan_out_message_id(request_id, 151))
    assert one is not None and one.outcome == "Success" and one.outcome_at == at
    assert store.delivery("d-0210", fan_out_message_id(request_id, 210)).outcome is None  # type: ignore[union-attr]


def test_fan_out_outcome_rows_of_earlier_versions_are_still_read(table: Table) -> None:
    store = StatusStore(table)
    request_id = uuid.uuid4().hex
    store.record_sent(sent(request_id, ["d-0", "d-1"], fan_out=True))
    table.client().upsert_entity({  # what earlier versions wrote for a fan-out outcome
        "PartitionKey": "req|" + request_id, "RowKey": "dev|d-1", "DeviceId": "d-1",
        "MessageId": fan_out_message_id(request_id, 1), "Outcome": "Rejected", "Description": "Message rejected",
        "OutcomeAt": "2026-12-02T12:00:04Z", "RecordedAt": "2026-12-02T12:00:05Z",
    })
    assert store.delivery("d-1", fan_out_message_id(request_id, 1)).outcome == "Rejected"  # type: ignore[union-attr]
    assert [d.outcome for d in store.request(request_id) or []] == [None, "Rejected"]


def test_contexts_of_fan_outs_are_read_once_per_store_and_of_single_sends_every_time(table: Table) -> None:
    store = StatusStore(table)
    fan_out = uuid.uuid4().hex
    store.record_sent(sent(fan_out, ["d-0", "d-1"], fan_out=True))
    store.record_sent(sent("c" * 32, ["dev-9"], fan_out=False))
    keys = [("d-0", fan_out_message_id(fan_out, 0)), ("d-1", fan_out_message_id(fan_out, 1)), ("dev-9", "msg-dev-9")]
    assert {k: c.correlation_id for k, c in store.contexts(keys).items()} == dict.fromkeys(keys, "run-7")

    table.client().delete_entity(partition_key="req|" + fan_out, row_key="request")
    resent = sent("d" * 32, ["dev-9"], fan_out=False)
    store.record_sent(SentRequest(**{**resent.__dict__, "correlation_id": "run-8"}))
    again = store.contexts(keys)
    assert again[keys[1]].correlation_id == "run-7", "a fan-out's request row never changes: read once"
    assert again[keys[2]].correlation_id == "run-8", "a re-sent single message id: read again"
    assert set(StatusStore(table).contexts(keys)) == {keys[2]}, "each store (each run) reads afresh"


def test_a_resent_message_id_does_not_inherit_the_previous_outcome(table: Table) -> None:
    store = StatusStore(table)
    store.record_sent(sent("a" * 32, ["dev-9"], fan_out=False))
    store.record_outcomes([OutcomeRecord("dev-9", "msg-dev-9", "Success", "Success", "2026-12-02T12:00:01Z")])
    later = SentRequest(**{**sent("b" * 32, ["dev-9"], fan_out=False).__dict__, "sent_at": NOW + timedelta(hours=1)})
    store.record_sent(later)
    delivery = store.delivery("dev-9", "msg-dev-9")
    assert delivery is not None and delivery.outcome is None, "the outcome belonged to the earlier send"


def test_rows_past_retention_are_removed(table: Table) -> None:
    store = StatusStore(table)
    request_id = uuid.uuid4().hex
    store.record_sent(sent(request_id, [f"d-{i}" for i in range(150)], fan_out=True))
    SendJournal(table).claim("q-old")
    assert store.remove_older_than(datetime.now(UTC) - timedelta(days=1)) == 0
    removed = store.remove_older_than(datetime.now(UTC) + timedelta(seconds=5))
    assert removed >= 4  # request row + 2 device rows + journal row
    assert store.request(request_id) is None


def test_unreachable_storage_is_store_unavailable(storage: Azurite) -> None:
    settings = TableSettings(table="nowhere", connection_string=storage.connection_string.replace(
        f":{storage.table_port}/", ":9/"))
    with pytest.raises(StoreUnavailable):
        StatusStore(Table(settings)).check_reachable()


def test_placement_is_a_function_of_the_ids() -> None:
    assert placement("dev", fan_out_message_id("f" * 32, 12)).index == 12
    assert placement("dev", "my-own-id").partition == "one|dev|my-own-id"
    assert placement("a/b#c", "m?").partition == "one|a%2Fb%23c|m%3F"
