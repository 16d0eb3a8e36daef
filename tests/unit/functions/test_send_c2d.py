"""SendC2D and SendC2DFanOut called through `main` with real azure.functions.HttpRequest objects."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from c2d_testing.fakes import FAKE_KEY, sent_messages

import SendC2D
import SendC2DFanOut
from c2d.errors import (
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    Rejected,
    Throttled,
    Unauthorized,
    Unavailable,
)


def post_device(device_id: str, body: object, *, raw: bytes | None = None) -> func.HttpResponse:
    request = func.HttpRequest(
        method="POST",
        url=f"http://localhost/api/devices/{device_id}/messages",
        headers={"content-type": "application/json"},
        route_params={"deviceId": device_id},
        body=raw if raw is not None else json.dumps(body).encode(),
    )
    return SendC2D.main(request)


def post_fan_out(body: object) -> func.HttpResponse:
    request = func.HttpRequest(
        method="POST", url="http://localhost/api/messages", headers={}, body=json.dumps(body).encode()
    )
    return SendC2DFanOut.main(request)


def body_of(response: func.HttpResponse) -> dict:
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


def test_send_returns_202_with_message_id_and_expiry(sender) -> None:
    response = post_device("dev-1", {"payload": {"cmd": "reboot"}, "ttlSeconds": 120, "correlationId": "job-7"})

    assert response.status_code == 202
    body = body_of(response)
    (message,) = sent_messages(sender)
    assert body["messageId"] == message.message_id
    assert body["deviceId"] == "dev-1" and body["ack"] == "full" and body["correlationId"] == "job-7"
    assert message.body == b'{"cmd":"reboot"}'
    assert message.content_type == "application/json" and message.content_encoding == "utf-8"
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert message.expires_at is not None and abs((expires - message.expires_at).total_seconds()) < 1


def test_all_fields_reach_the_adapter(sender) -> None:
    response = post_device(
        "dev-1",
        {
            "payloadBase64": base64.b64encode(b"\x00\x01binary").decode(),
            "messageId": "my-id-1",
            "correlationId": "corr",
            "contentType": "application/x-custom",
            "contentEncoding": "gzip",
            "ack": "negative",
            "ttlSeconds": 60,
            "properties": {"priority": "high", "x-team": "ops"},
        },
    )
    assert response.status_code == 202
    (message,) = sent_messages(sender)
    assert message.message_id == "my-id-1"
    assert message.body == b"\x00\x01binary"
    assert message.ack == "negative"
    assert message.content_type == "application/x-custom" and message.content_encoding == "gzip"
    assert dict(message.properties) == {"priority": "high", "x-team": "ops"}


def test_string_payload_is_sent_as_text(sender) -> None:
    assert post_device("dev-1", {"payload": "héllo"}).status_code == 202
    (message,) = sent_messages(sender)
    assert message.body == "héllo".encode()
    assert message.content_type.startswith("text/plain")


def test_default_ttl_comes_from_settings(sender, monkeypatch) -> None:
    monkeypatch.setenv("C2D_DEFAULT_TTL_SECONDS", "600")
    before = datetime.now(UTC)
    post_device("dev-1", {"payload": 1})
    after = datetime.now(UTC)
    (message,) = sent_messages(sender)
    assert before + timedelta(seconds=600) <= message.expires_at <= after + timedelta(seconds=600)


INVALID_REQUESTS = [
    # (description, device id in route, raw body, field, rule)
    ("not json", "dev-1", b"{nope", "body", "json"),
    ("empty body", "dev-1", b"", "body", "required"),
    ("array body", "dev-1", b"[1,2]", "body", "type"),
    ("not utf-8", "dev-1", b'{"payload":"\xff"}', "body", "json"),
    ("no payload", "dev-1", b'{"ack":"full"}', "payload", "one-of"),
    ("both payloads", "dev-1", b'{"payload":1,"payloadBase64":"AA=="}', "payload", "one-of"),
    ("bad base64", "dev-1", b'{"payloadBase64":"%%%"}', "payloadBase64", "base64"),
    ("base64 not string", "dev-1", b'{"payloadBase64":12}', "payloadBase64", "base64"),
    ("unknown field", "dev-1", b'{"payload":1,"colour":"red"}', "colour", "unknown-field"),
    ("deviceIds on single route", "dev-1", b'{"payload":1,"deviceIds":["a"]}', "deviceIds", "unknown-field"),
    ("bad ack", "dev-1", b'{"payload":1,"ack":"sometimes"}', "ack", "enum"),
    ("ttl too small", "dev-1", b'{"payload":1,"ttlSeconds":59}', "ttlSeconds", "range"),
    ("ttl too large", "dev-1", b'{"payload":1,"ttlSeconds":172801}', "ttlSeconds", "range"),
    ("ttl not integer", "dev-1", b'{"payload":1,"ttlSeconds":90.5}', "ttlSeconds", "range"),
    ("ttl boolean", "dev-1", b'{"payload":1,"ttlSeconds":true}', "ttlSeconds", "range"),
    ("device id too long", "d" * 129, b'{"payload":1}', "deviceId", "iothub-id"),
    ("device id bad char", "dev/1", b'{"payload":1}', "deviceId", "iothub-id"),
    ("device id space", "dev 1", b'{"payload":1}', "deviceId", "iothub-id"),
    ("message id bad char", "dev-1", b'{"payload":1,"messageId":"a b"}', "messageId", "iothub-id"),
    ("message id too long", "dev-1", b'{"payload":1,"messageId":"' + b"m" * 129 + b'"}', "messageId", "iothub-id"),
    ("correlation id not string", "dev-1", b'{"payload":1,"correlationId":5}', "correlationId", "printable-ascii"),
    ("content type control char", "dev-1", b'{"payload":1,"contentType":"a\\u0001"}', "contentType", "printable-ascii"),
    ("properties not object", "dev-1", b'{"payload":1,"properties":["a"]}', "properties", "type"),
    ("property value not string", "dev-1", b'{"payload":1,"properties":{"n":1}}', "properties.n", "type"),
    ("reserved iothub- property", "dev-1", b'{"payload":1,"properties":{"iothub-ack":"none"}}', "properties.iothub-ack", "reserved"),
    ("reserved $ property", "dev-1", b'{"payload":1,"properties":{"$.mid":"x"}}', "properties.$.mid", "reserved"),
    ("reserved system name", "dev-1", b'{"payload":1,"properties":{"message-id":"x"}}', "properties.message-id", "reserved"),
    ("property name with space", "dev-1", b'{"payload":1,"properties":{"a b":"x"}}', "properties.a b", "name"),
    ("payload NaN", "dev-1", b'{"payload":NaN}', "payload", "json"),
    ("too large", "dev-1", json.dumps({"payload": "x" * 65_500}).encode(), "payload", "max-size"),
    ("too large with properties", "dev-1",
     json.dumps({"payload": "x" * 40_000, "properties": {"p": "y" * 30_000}}).encode(), "payload", "max-size"),
]


@pytest.mark.parametrize(("device_id", "raw", "field", "rule"), [r[1:] for r in INVALID_REQUESTS],
                         ids=[r[0] for r in INVALID_REQUESTS])
def test_invalid_request_is_400_naming_field_and_rule_and_nothing_is_sent(sender, device_id, raw, field, rule) -> None:
    response = post_device(device_id, None, raw=raw)

    assert response.status_code == 400
    error = body_of(response)["error"]
    assert error["code"] == "ValidationFailed"
    assert {"field": field, "rule": rule} in [{"field": d["field"], "rule": d["rule"]} for d in error["details"]]
    sender.send_many.assert_not_called()


def test_every_problem_is_reported_at_once(sender) -> None:
    response = post_device("dev-1", {"payload": 1, "ack": "x", "ttlSeconds": 1, "colour": "red"})
    fields = {d["field"] for d in body_of(response)["error"]["details"]}
    assert fields == {"ack", "ttlSeconds", "colour"}
    sender.send_many.assert_not_called()


ERRORS = [
    (DeviceNotFound("device dev-1 is not registered"), 404, "DeviceNotFound", None),
    (DeviceQueueFull("queue full"), 429, "DeviceQueueFull", "30"),
    (MessageTooLarge("too large"), 413, "MessageTooLarge", None),
    (Throttled("throttled"), 429, "Throttled", "10"),
    (Unauthorized("refused"), 502, "IoTHubUnauthorized", None),
    (Unavailable("unreachable"), 503, "IoTHubUnavailable", "5"),
    (OutcomeUnknown("no disposition"), 504, "OutcomeUnknown", None),
    (Rejected("odd condition", tracking_id="T-1"), 502, "IoTHubRejected", None),
]


@pytest.mark.parametrize(("error", "status", "code", "retry_after"), ERRORS, ids=[e[2] for e in ERRORS])
def test_iothub_errors_map_to_status_and_json(sender, error, status, code, retry_after) -> None:
    sender.errors["dev-1"] = error
    response = post_device("dev-1", {"payload": 1})

    assert response.status_code == status
    body = body_of(response)
    assert body["error"]["code"] == code
    assert response.headers.get("Retry-After") == retry_after
    assert "Traceback" not in response.get_body().decode()


def test_fan_out_keeps_request_order_and_reports_partial_failure(sender) -> None:
    devices = [f"dev-{i}" for i in range(5)]
    sender.errors.update({"dev-1": DeviceNotFound("nope"), "dev-3": OutcomeUnknown("lost")})

    response = post_fan_out({"deviceIds": devices, "payload": {"a": 1}, "correlationId": "batch-1"})

    assert response.status_code == 207
    body = body_of(response)
    assert [r["deviceId"] for r in body["results"]] == devices
    assert [r["status"] for r in body["results"]] == ["Sent", "Failed", "Sent", "Unknown", "Sent"]
    assert body["results"][1]["error"]["code"] == "DeviceNotFound"
    assert (body["sent"], body["failed"], body["unknown"]) == (3, 1, 1)
    message_ids = [r["messageId"] for r in body["results"]]
    assert len(set(message_ids)) == 5
    assert sender.send_many.call_count == 1, "a fan-out must reach the adapter as one pipelined call"
    assert [m.message_id for m in sent_messages(sender)] == message_ids
    assert all(m.correlation_id == "batch-1" for m in sent_messages(sender))


def test_fan_out_with_hub_unreachable_answers_503(sender) -> None:
    for device in ("a", "b"):
        sender.errors[device] = Unavailable("down")
    response = post_fan_out({"deviceIds": ["a", "b"], "payload": 1})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"payload": 1}, "deviceIds", "required"),
        ({"payload": 1, "deviceIds": []}, "deviceIds", "count"),
        ({"payload": 1, "deviceIds": [f"d{i}" for i in range(1001)]}, "deviceIds", "count"),
        ({"payload": 1, "deviceIds": ["a", "b", "a"]}, "deviceIds", "unique"),
        ({"payload": 1, "deviceIds": ["a", "b c"]}, "deviceIds[1]", "iothub-id"),
        ({"payload": 1, "deviceIds": "a"}, "deviceIds", "count"),
        ({"payload": 1, "deviceIds": ["a"], "messageId": "m1"}, "messageId", "not-with-deviceIds"),
    ],
)
def test_fan_out_validation(sender, body, field, rule) -> None:
    response = post_fan_out(body)
    assert response.status_code == 400
    details = body_of(response)["error"]["details"]
    assert any(d["field"] == field and d["rule"] == rule for d in details), details
    sender.send_many.assert_not_called()


def test_fan_out_cap_is_a_setting(sender, monkeypatch) -> None:
    devices = [f"d{i}" for i in range(1500)]
    assert post_fan_out({"deviceIds": devices, "payload": 1}).status_code == 400
    monkeypatch.setenv("C2D_MAX_FAN_OUT", "1500")
    response = post_fan_out({"deviceIds": devices, "payload": 1})
    assert response.status_code == 207 and body_of(response)["sent"] == 1500
    assert sender.send_many.call_count == 1
    too_many = body_of(post_fan_out({"deviceIds": [*devices, "one-more"], "payload": 1}))["error"]["details"]
    assert any(d["rule"] == "count" and "1 to 1500" in d["message"] for d in too_many)


def test_fan_out_of_1000_devices_is_one_call(sender) -> None:
    response = post_fan_out({"deviceIds": [f"d{i}" for i in range(1000)], "payload": 1})
    assert response.status_code == 207
    assert body_of(response)["sent"] == 1000
    assert sender.send_many.call_count == 1


def test_missing_settings_answer_500_without_values_and_log_every_name(monkeypatch, caplog) -> None:
    monkeypatch.delenv("IOTHUB_CONNECTION_STRING")
    monkeypatch.setenv("C2D_DEFAULT_TTL_SECONDS", "5")
    caplog.set_level(logging.INFO)

    response = post_device("dev-1", {"payload": 1})

    assert response.status_code == 500
    assert body_of(response)["error"]["code"] == "ConfigurationError"
    assert "C2D_DEFAULT_TTL_SECONDS" in caplog.text


def test_bad_connection_string_is_named_but_never_echoed(monkeypatch, caplog) -> None:
    monkeypatch.setenv("IOTHUB_CONNECTION_STRING", f"HostName=h.azure-devices.net;SharedAccessKey={FAKE_KEY}")
    caplog.set_level(logging.DEBUG)

    response = post_device("dev-1", {"payload": 1})

    assert response.status_code == 500
    assert "IOTHUB_CONNECTION_STRING" in caplog.text and "SharedAccessKeyName" in caplog.text
    assert FAKE_KEY not in caplog.text
    assert FAKE_KEY not in response.get_body().decode()


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b'{"payload": ' + b"9" * 5000 + b"}", "json"),
        (b'{"payload": 1, "ttlSeconds": ' + b"1" * 5000 + b"}", "json"),
        (b'{"payload": 1e999}', "json"),
        (b'{"payload": 1, "ttlSeconds": 1e999}', "range"),
        (b"[" * 100_000 + b"]" * 100_000, "json"),
    ],
    ids=["5000-digit-payload", "5000-digit-ttl", "infinite-payload", "infinite-ttl", "deep-nesting"],
)
def test_json_the_parser_cannot_hold_is_400_never_500(sender, raw, rule) -> None:
    """Hole 6: a 5,000-digit integer used to raise ValueError inside json.loads (a 500)."""
    for response in (post_device("dev-1", None, raw=raw), post_fan_out_raw(raw)):
        assert response.status_code == 400, response.get_body()[:300]
        assert rule in {d["rule"] for d in body_of(response)["error"]["details"]}
    sender.send_many.assert_not_called()


def post_fan_out_raw(raw: bytes) -> func.HttpResponse:
    return SendC2DFanOut.main(func.HttpRequest(method="POST", url="http://localhost/api/messages", headers={}, body=raw))


def test_body_over_the_cap_is_413_before_parsing(sender, monkeypatch, mocker) -> None:
    monkeypatch.setenv("C2D_MAX_REQUEST_BYTES", "2048")
    parse = mocker.patch("c2d.http_api.parse_json_body", side_effect=AssertionError("must not parse"))
    raw = json.dumps({"payload": "x" * 3000}).encode()
    for response in (post_device("dev-1", None, raw=raw), post_fan_out_raw(raw)):
        assert response.status_code == 413
        error = body_of(response)["error"]
        assert error["code"] == "RequestTooLarge" and "2048" in error["message"]
    parse.assert_not_called()
    sender.send_many.assert_not_called()


def test_default_cap_is_one_mebibyte(sender) -> None:
    just_over = b'{"payload": "' + b"x" * (1024 * 1024) + b'"}'
    assert post_device("dev-1", None, raw=just_over).status_code == 413
