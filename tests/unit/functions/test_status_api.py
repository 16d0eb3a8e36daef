"""The workflow-facing HTTP behaviour through `main` with real azure.functions objects: Location and
Retry-After on sends, the status endpoints, query fan-out and purge. Adapters are replaced at the boundary."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
import pytest

import DeliveryStatus
import PurgeDeviceQueue
import RequestStatus
import SendC2D
import SendC2DFanOut
from c2d.errors import DeviceNotFound, FieldProblem, StoreUnavailable, Unavailable, ValidationFailed
from c2d.status import Delivery
from c2d.status_store import FAN_OUT_MESSAGE_ID

NOW = datetime.now(UTC)


def http(function, method: str, path: str, *, body: object = None, headers: dict | None = None,
         params: dict | None = None, route: dict | None = None) -> func.HttpResponse:
    request = func.HttpRequest(
        method=method, url=f"https://myapp.azurewebsites.net{path}", headers=headers or {}, params=params or {},
        route_params=route or {}, body=json.dumps(body).encode() if body is not None else b"",
    )
    return function.main(request)


def body_of(response: func.HttpResponse) -> dict:
    return json.loads(response.get_body())


def test_single_send_answers_202_with_location_retry_after_and_the_callers_key(sender, status_store) -> None:
    response = http(SendC2D, "POST", "/api/devices/dev-1/messages", body={"payload": 1, "correlationId": "run-7"},
                    headers={"x-functions-key": "k3y+/="}, route={"deviceId": "dev-1"})
    assert response.status_code == 202
    body = body_of(response)
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc) == ("https", "myapp.azurewebsites.net")
    assert parts.path == f"/api/devices/dev-1/messages/{body['messageId']}"
    assert parse_qs(parts.query) == {"code": ["k3y+/="]}, "a Logic App does not re-send the header: carry the key"
    assert int(response.headers["Retry-After"]) > 0
    assert body["statusUrl"] == location
    (recorded,) = status_store.sent
    assert recorded.correlation_id == "run-7" and recorded.results[0].sent


def test_location_uses_the_forwarded_host_and_no_key_when_none_was_given(sender) -> None:
    response = http(SendC2D, "POST", "/api/devices/dev-1/messages", body={"payload": 1},
                    headers={"x-forwarded-host": "api.example.com", "x-forwarded-proto": "https"},
                    route={"deviceId": "dev-1"})
    assert response.headers["Location"].startswith("https://api.example.com/api/devices/dev-1/messages/")
    assert "code=" not in response.headers["Location"]


def test_device_and_message_ids_are_escaped_in_status_urls(sender) -> None:
    response = http(SendC2D, "POST", "/api/devices/a%23b/messages", body={"payload": 1, "messageId": "m?1"},
                    route={"deviceId": "a#b"})
    assert urlsplit(response.headers["Location"]).path == "/api/devices/a%23b/messages/m%3F1"


def test_status_table_down_still_sends_but_gives_no_location(sender, status_store) -> None:
    status_store.record_sent.side_effect = StoreUnavailable("could not record")
    response = http(SendC2D, "POST", "/api/devices/dev-1/messages", body={"payload": 1}, route={"deviceId": "dev-1"})
    assert response.status_code == 202 and "Location" not in response.headers
    assert "outcome topic" in body_of(response)["note"]


def test_fan_out_207_by_default_and_202_with_prefer_respond_async(sender, status_store) -> None:
    request = {"deviceIds": ["a", "b"], "payload": 1}
    plain = http(SendC2DFanOut, "POST", "/api/messages", body=request)
    assert plain.status_code == 207 and "Location" not in plain.headers
    results = body_of(plain)["results"]
    assert all(FAN_OUT_MESSAGE_ID.fullmatch(r["messageId"]) for r in results)
    assert all(r["statusUrl"].endswith(f"/messages/{r['messageId']}") for r in results)

    deferred = http(SendC2DFanOut, "POST", "/api/messages", body=request,
                    headers={"Prefer": "respond-async, wait=10"}, params={"code": "abc"})
    assert deferred.status_code == 202 and deferred.headers["Preference-Applied"] == "respond-async"
    body = body_of(deferred)
    assert deferred.headers["Location"] == f"https://myapp.azurewebsites.net/api/requests/{body['requestId']}?code=abc"
    assert len(status_store.sent) == 2 and status_store.sent[1].request_id == body["requestId"]


def test_fan_out_by_query_sends_to_exactly_what_the_registry_selects(sender, registry) -> None:
    registry.devices = ["lisbon-1", "lisbon-2"]
    query = "SELECT deviceId FROM devices WHERE tags.site = 'lisbon'"
    response = http(SendC2DFanOut, "POST", "/api/messages", body={"query": query, "payload": 1})
    assert response.status_code == 207
    assert [m.device_id for call in sender.send_many.call_args_list for m in call.args[0]] == ["lisbon-1", "lisbon-2"]
    registry.query_device_ids.assert_called_once_with(query, 10_000)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"query": "SELECT * FROM devices.modules", "payload": 1}, "devices-query"),
        ({"query": "DELETE FROM devices", "payload": 1}, "devices-query"),
        ({"query": "", "payload": 1}, "type"),
        ({"query": "SELECT * FROM devices", "deviceIds": ["a"], "payload": 1}, "one-of"),
    ],
)
def test_bad_queries_are_400_and_never_reach_the_registry(sender, registry, body, rule) -> None:
    response = http(SendC2DFanOut, "POST", "/api/messages", body=body)
    assert response.status_code == 400
    assert rule in {d["rule"] for d in body_of(response)["error"]["details"]}
    registry.query_device_ids.assert_not_called()
    sender.send_many.assert_not_called()


def test_a_query_over_the_cap_is_400_saying_so(sender, registry, monkeypatch) -> None:
    monkeypatch.setenv("C2D_MAX_QUERY_DEVICES", "2")
    registry.query_device_ids.side_effect = ValidationFailed(
        [FieldProblem("query", "max-devices", "the query selects more than 2 devices")]
    )
    response = http(SendC2DFanOut, "POST", "/api/messages", body={"query": "SELECT * FROM devices", "payload": 1})
    assert response.status_code == 400 and "more than 2" in body_of(response)["error"]["message"]
    registry.query_device_ids.assert_called_once_with("SELECT * FROM devices", 2)
    sender.send_many.assert_not_called()


def delivery(ack: str = "full", outcome: str | None = None) -> Delivery:
    return Delivery("dev-1", "m-1", "r" * 32, ack, "Sent", NOW, NOW + timedelta(hours=1), correlation_id="run-7",
                    properties={"x-run": "7"}, outcome=outcome, outcome_at="2026-12-02T12:00:00Z" if outcome else None)


@pytest.mark.parametrize(
    ("stored", "status", "retry_after"),
    [(None, 404, False), (delivery(), 202, True), (delivery(outcome="Success"), 200, False),
     (delivery(ack="none"), 200, False)],
    ids=["unknown", "pending", "final", "ack-none-final-at-once"],
)
def test_delivery_status_answers(status_store, stored, status, retry_after) -> None:
    status_store.delivery.return_value = stored
    response = http(DeliveryStatus, "GET", "/api/devices/dev-1/messages/m-1", route={"deviceId": "dev-1", "messageId": "m-1"})
    assert response.status_code == status
    assert ("Retry-After" in response.headers) is retry_after
    status_store.delivery.assert_called_once_with("dev-1", "m-1")
    if stored is not None:
        body = body_of(response)
        assert body["correlationId"] == "run-7" and body["deviceId"] == "dev-1" and body["properties"] == {"x-run": "7"}
    else:
        assert body_of(response)["error"]["code"] == "NotFound"


def test_request_status_is_200_only_when_every_delivery_is_final(status_store) -> None:
    route = {"requestId": "r" * 32}
    status_store.request.return_value = [delivery(outcome="Success"), delivery()]
    pending = http(RequestStatus, "GET", f"/api/requests/{'r' * 32}", route=route)
    assert pending.status_code == 202 and body_of(pending)["pending"] == 1
    status_store.request.return_value = [delivery(outcome="Success"), delivery(outcome="Rejected")]
    final = http(RequestStatus, "GET", f"/api/requests/{'r' * 32}", route=route)
    assert final.status_code == 200
    assert body_of(final)["counts"] == {"Success": 1, "Rejected": 1}
    status_store.request.return_value = None
    assert http(RequestStatus, "GET", "/api/requests/nope", route={"requestId": "nope"}).status_code == 404


def test_status_table_unreachable_is_503_with_retry_after(status_store) -> None:
    status_store.delivery.side_effect = StoreUnavailable("could not read")
    response = http(DeliveryStatus, "GET", "/x", route={"deviceId": "d", "messageId": "m"})
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_purge_answers_the_count(registry) -> None:
    registry.purged = 3
    response = http(PurgeDeviceQueue, "DELETE", "/api/devices/dev-1/messages", route={"deviceId": "dev-1"})
    assert response.status_code == 200 and body_of(response)["purged"] == 3
    registry.purge.assert_called_once_with("dev-1")


@pytest.mark.parametrize(("error", "status"), [(DeviceNotFound("gone"), 404), (Unavailable("down"), 503)])
def test_purge_errors_are_typed(registry, error, status) -> None:
    registry.purge.side_effect = error
    response = http(PurgeDeviceQueue, "DELETE", "/api/devices/dev-1/messages", route={"deviceId": "dev-1"})
    assert response.status_code == status


def test_purge_refuses_an_invalid_device_id(registry) -> None:
    response = http(PurgeDeviceQueue, "DELETE", "/api/devices/x/messages", route={"deviceId": "bad/id"})
    assert response.status_code == 400
    registry.purge.assert_not_called()


def test_fan_out_with_the_status_table_down_still_sends_but_gives_no_status_urls(sender, status_store, caplog) -> None:
    status_store.record_sent.side_effect = StoreUnavailable("could not record")
    with caplog.at_level(logging.INFO, logger="c2d"):
        response = http(SendC2DFanOut, "POST", "/api/messages", body={"deviceIds": ["a", "b"], "payload": 1})
    assert response.status_code == 207 and "Location" not in response.headers
    body = body_of(response)
    assert body["sent"] == 2 and "statusUrl" not in body and "outcome topic" in body["note"]
    assert all("statusUrl" not in r for r in body["results"])
    events = [r.getMessage().split(" ", 1)[0] for r in caplog.records]
    assert events.count("c2d.send") == 2 and "c2d.status-write-failed" in events


def test_fan_out_answers_only_once_its_status_rows_are_written(sender, status_store) -> None:
    written = threading.Event()

    def slow_write(sent: object) -> None:
        time.sleep(0.2)  # the write runs alongside the rest of the request: the answer must wait for it
        written.set()

    status_store.record_sent.side_effect = slow_write
    response = http(SendC2DFanOut, "POST", "/api/messages", body={"deviceIds": ["a", "b"], "payload": 1})
    assert written.is_set()
    assert response.status_code == 207 and all("statusUrl" in r for r in body_of(response)["results"])


def test_fan_out_a_bug_in_the_status_write_is_not_swallowed(sender, status_store) -> None:
    status_store.record_sent.side_effect = KeyError("bug")
    with pytest.raises(KeyError):
        http(SendC2DFanOut, "POST", "/api/messages", body={"deviceIds": ["a"], "payload": 1})
