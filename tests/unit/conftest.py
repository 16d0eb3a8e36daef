"""Unit-test fixtures: real azure.functions objects in, the c2d adapters (C2DSender, OutcomePublisher,
FeedbackReceiver) replaced by autospec mocks, so a test fails if it calls them in a way the real one
would not accept."""

from __future__ import annotations

from collections.abc import Sequence
from unittest.mock import Mock

import pytest
from c2d_testing.fakes import SB_CS, SERVICE_CS
from pytest_mock import MockerFixture

from c2d import clients
from c2d.errors import C2DError
from c2d.iothub import C2DSender
from c2d.journal import EarlierAttempt, RecordedResult, SendJournal
from c2d.messages import C2DMessage, SendResult
from c2d.registry import QueryResult, Registry
from c2d.servicebus import OutcomePublisher
from c2d.status_store import StatusStore


@pytest.fixture(autouse=True)
def app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IOTHUB_HOSTNAME", "SERVICEBUS__fullyQualifiedNamespace", "C2D_DEFAULT_TTL_SECONDS", "OUTCOME_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IOTHUB_CONNECTION_STRING", SERVICE_CS)
    monkeypatch.setenv("SERVICEBUS_CONNECTION", SB_CS)
    clients.close_all()


@pytest.fixture
def sender(mocker: MockerFixture) -> Mock:
    """C2DSender double: answers each message with `sender.errors.get(device_id)` (None = sent)."""
    mock = mocker.create_autospec(C2DSender, instance=True)
    mock.errors: dict[str, C2DError] = {}

    def send_many(messages: Sequence[C2DMessage]) -> list[SendResult]:
        return [SendResult(m.device_id, m.message_id, mock.errors.get(m.device_id)) for m in messages]

    mock.send_many.side_effect = send_many
    mocker.patch.object(clients, "get_sender", return_value=mock)
    return mock


@pytest.fixture
def publisher(mocker: MockerFixture) -> Mock:
    """OutcomePublisher double: records published outcomes in `publisher.published`."""
    mock = mocker.create_autospec(OutcomePublisher, instance=True)
    mock.published = []
    mock.publish.side_effect = lambda outcomes: mock.published.extend(outcomes)
    mocker.patch.object(clients, "get_publisher", return_value=mock)
    return mock


@pytest.fixture(autouse=True)
def journal(mocker: MockerFixture) -> Mock:
    """SendJournal double keeping claims and results in memory (`journal.claims`: request id -> results)."""
    mock = mocker.create_autospec(SendJournal, instance=True)
    mock.claims = {}

    def claim(request_id: str) -> EarlierAttempt | None:
        if request_id not in mock.claims:
            mock.claims[request_id] = {}
            return None
        return EarlierAttempt(dict(mock.claims[request_id]))

    def record(request_id: str, results: Sequence[SendResult]) -> None:
        mock.claims[request_id] = {
            r.device_id: RecordedResult(
                r.message_id, r.status, r.error.code if r.error else None, r.error.message if r.error else None
            )
            for r in results
        }

    mock.claim.side_effect = claim
    mock.record.side_effect = record
    mock.release.side_effect = lambda request_id: mock.claims.pop(request_id, None)
    mocker.patch.object(clients, "get_journal", return_value=mock)
    return mock


@pytest.fixture(autouse=True)
def status_store(mocker: MockerFixture) -> Mock:
    """StatusStore double: `status_store.sent` (SentRequest list) and `status_store.outcomes` record the
    writes; reads answer nothing unless a test sets `delivery` / `request` / `contexts` return values."""
    mock = mocker.create_autospec(StatusStore, instance=True)
    mock.sent, mock.outcomes = [], []
    mock.record_sent.side_effect = mock.sent.append
    mock.record_outcomes.side_effect = mock.outcomes.extend
    mock.contexts.return_value = {}
    mock.delivery.return_value = None
    mock.request.return_value = None
    mocker.patch.object(clients, "get_status_store", return_value=mock)
    return mock


@pytest.fixture(autouse=True)
def registry(mocker: MockerFixture) -> Mock:
    """Registry double: `registry.devices` is what every query selects; `registry.purged` what a purge returns."""
    mock = mocker.create_autospec(Registry, instance=True)
    mock.devices, mock.purged = [], 0
    mock.query_device_ids.side_effect = lambda query, cap: QueryResult(list(mock.devices), 1)
    mock.purge.side_effect = lambda device_id: mock.purged
    mocker.patch.object(clients, "get_registry", return_value=mock)
    return mock
