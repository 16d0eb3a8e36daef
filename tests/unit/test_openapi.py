"""openapi.yaml stays true: valid OpenAPI 3, the same fields, limits, enums and error codes as the code,
and real responses from the functions validate against it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import azure.functions as func
import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

import SendC2D
import SendC2DFanOut
from c2d import commands, config, errors
from c2d.messages import ACK_MODES

SPEC = yaml.safe_load((Path(__file__).parents[2] / "openapi.yaml").read_text())
SCHEMAS = SPEC["components"]["schemas"]


def resolve(schema: dict) -> dict:
    """Inline $refs (OpenAPI 3.1 schemas are JSON Schema), for jsonschema."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return resolve(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
        return {k: resolve(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [resolve(item) for item in schema]
    return schema


def test_spec_is_valid_openapi() -> None:
    validate(SPEC)


def test_request_fields_match_the_validator() -> None:
    assert set(SCHEMAS["SendRequest"]["properties"]) == set(commands.COMMON_FIELDS)
    assert set(SCHEMAS["FanOutRequest"]["properties"]) == (set(commands.COMMON_FIELDS) - {"messageId"}) | {
        "deviceIds", "query"
    }
    assert SCHEMAS["FanOutRequest"]["properties"]["query"]["maxLength"] == commands.MAX_QUERY_LENGTH
    assert SCHEMAS["FanOutRequest"]["properties"]["query"]["pattern"] == commands.QUERY_PATTERN.pattern
    assert SCHEMAS["AckMode"]["enum"] == list(ACK_MODES)
    ttl = SCHEMAS["SendRequest"]["properties"]["ttlSeconds"]
    assert (ttl["minimum"], ttl["maximum"]) == (config.MIN_TTL_SECONDS, config.MAX_TTL_SECONDS)
    assert SCHEMAS["FanOutRequest"]["properties"]["deviceIds"]["maxItems"] == commands.MAX_FAN_OUT
    assert SCHEMAS["IoTHubId"]["pattern"] == commands.IOTHUB_ID.pattern
    assert SCHEMAS["PropertyName"]["pattern"] == commands.PROPERTY_NAME_SCHEMA_PATTERN
    assert SCHEMAS["Text"]["pattern"] == "^[ -~]{1,128}$" and commands.PRINTABLE_ASCII.pattern == "^[\\x20-\\x7e]{1,128}$"


@settings(max_examples=500, deadline=None)
@given(name=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
       | st.sampled_from(sorted(commands.RESERVED_PROPERTY_NAMES)).map(str.upper) | st.just("iothub-X"))
def test_spec_property_name_rule_equals_the_validator(name: str) -> None:
    spec_accepts = re.fullmatch(SCHEMAS["PropertyName"]["pattern"], name) is not None
    try:
        commands.parse_command({"payload": 1, "properties": {name: "v"}}, commands.RequestKind.SINGLE,
                               route_device_id="d")
        code_accepts = True
    except errors.ValidationFailed:
        code_accepts = False
    assert spec_accepts == code_accepts


def test_every_error_code_is_documented() -> None:
    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    codes = {c.code for c in subclasses(errors.C2DError)} - {"C2DError", "PublishFailed"}
    assert set(SCHEMAS["Error"]["properties"]["code"]["enum"]) == codes


def response_schema(path: str, status: int) -> dict:
    response = SPEC["paths"][path]["post"]["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return resolve(response["content"]["application/json"]["schema"])


@pytest.mark.parametrize(
    ("device", "body", "status"),
    [("dev-1", {"payload": {"a": 1}, "correlationId": "c"}, 202), ("dev-1", {"payload": 1, "ack": "x"}, 400)],
)
def test_single_responses_match_the_spec(sender, device, body, status) -> None:
    response = SendC2D.main(func.HttpRequest(method="POST", url="http://x", route_params={"deviceId": device},
                                             body=json.dumps(body).encode()))
    assert response.status_code == status
    jsonschema.validate(json.loads(response.get_body()), response_schema("/devices/{deviceId}/messages", status))


def test_fan_out_response_matches_the_spec(sender) -> None:
    sender.errors["b"] = errors.DeviceNotFound("gone")
    response = SendC2DFanOut.main(func.HttpRequest(method="POST", url="http://x",
                                                   body=json.dumps({"deviceIds": ["a", "b"], "payload": 1}).encode()))
    assert response.status_code == 207
    jsonschema.validate(json.loads(response.get_body()), response_schema("/messages", 207))
