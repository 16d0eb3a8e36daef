"""Property-based tests of the request validator: random JSON never raises anything but
ValidationFailed, never yields a 500, and an invalid request never reaches the sender."""

from __future__ import annotations

import json

import azure.functions as func
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import SendC2D
import SendC2DFanOut
from c2d.commands import MAX_MESSAGE_BYTES, RequestKind, message_size, parse_command
from c2d.errors import ValidationFailed

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["payload", "payloadBase64", "messageId", "correlationId", "contentType", "contentEncoding", "ack",
     "ttlSeconds", "properties", "deviceIds", "deviceId", "extra"]
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["none", "positive", "negative", "full", "AAEC", "dev-1", 60, 172800, 59]),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    st.lists(st.text(alphabet="abc-_.", min_size=1, max_size=5), max_size=5),
)
requests = st.dictionaries(field_names, field_values, max_size=8)
devices = st.text(max_size=130) | st.sampled_from(["dev-1", "a", "x" * 128])

SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@given(data=requests | json_values, kind=st.sampled_from(list(RequestKind)), device=devices)
def test_parse_never_raises_anything_but_validation_failed(data, kind, device) -> None:
    try:
        command = parse_command(data, kind, route_device_id=device)
    except ValidationFailed as error:
        assert error.problems and all(p.field and p.rule and p.message for p in error.problems)
        return
    # Whatever is accepted is a sendable message.
    assert command.device_ids and command.ack in ("none", "positive", "negative", "full")
    assert 60 <= command.ttl_s <= 172800
    size = message_size(command.body, command.properties, max(command.device_ids, key=len),
                        command.message_id or "x" * 36, command.correlation_id, command.content_type,
                        command.content_encoding)
    assert size <= MAX_MESSAGE_BYTES


@SLOW
@given(data=requests | json_values, device=devices)
def test_http_single_never_500_and_invalid_never_sent(sender, data, device) -> None:
    sender.send_many.reset_mock()
    request = func.HttpRequest(method="POST", url="http://x/api", route_params={"deviceId": device},
                               body=json.dumps(data).encode())
    response = SendC2D.main(request)
    assert response.status_code in (202, 400)
    if response.status_code == 400:
        sender.send_many.assert_not_called()
        assert json.loads(response.get_body())["error"]["code"] == "ValidationFailed"
    else:
        assert sender.send_many.call_count == 1


@SLOW
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_500(sender, raw) -> None:
    sender.send_many.reset_mock()
    response = SendC2DFanOut.main(func.HttpRequest(method="POST", url="http://x/api/messages", body=raw))
    assert response.status_code in (207, 400)
    if response.status_code == 400:
        sender.send_many.assert_not_called()
