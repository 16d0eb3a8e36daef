"""IoT Hub registry queries over device twins (pure: grammar, three-valued evaluation, paging, errors),
plus one contract test that drives the unmodified azure-iot-hub SDK's query_iot_hub through a fake
HTTP adapter into handle_query_request (no sockets)."""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.protocol.models import QuerySpecification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msrest.exceptions import HttpOperationError
from requests.adapters import HTTPAdapter

from localcloud.iothub.twin_query import (
    MAX_QUERY_LENGTH,
    UNDEFINED,
    InvalidQuery,
    MissingQuery,
    QueryError,
    UnsupportedQuery,
    parse_query,
    resolve,
)
from localcloud.iothub.twins import (
    MAX_PAGE_SIZE,
    Twin,
    apply_twin_patch,
    encode_continuation,
    handle_query_request,
    run_query,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def make_twin(device_id: str, tags: dict[str, Any] | None = None, reported: dict[str, Any] | None = None,
              desired: dict[str, Any] | None = None, **fields: Any) -> Twin:
    patch: dict[str, Any] = {"tags": tags or {}, "properties": {"reported": reported or {}, "desired": desired or {}}}
    return apply_twin_patch(Twin(device_id, **fields), patch, now=NOW)


FLEET = [
    make_twin("lisbon-1", {"site": "lisbon", "location": {"building": "B1", "floor": 2}, "flag": True},
              {"firmware": 2, "battery": 80}, {"telemetry": {"interval": 30}}, connection_state="Connected"),
    make_twin("lisbon-2", {"site": "lisbon", "location": {"building": "B2", "floor": 5}},
              {"firmware": "2.1.0"}, {"telemetry": {"interval": 60}}),
    make_twin("porto-1", {"site": "porto", "location": {"building": "P1", "floor": 1}, "flag": False},
              {"firmware": 1.5}, status="disabled"),
    make_twin("porto-2", {"site": "porto", "owner": "it's ana", "quote": 'say "hi"', "group": "g1", "my-key": 7},
              {"firmware": "1.0"}),
    make_twin("bare"),
    make_twin("Zeta", {"site": "Lisbon", "unicode": "é", "list": [1, 2]}, {"firmware": {"major": 3}}),
]
ALL = {t.device_id for t in FLEET}


def select_ids(query: str, fleet: list[Twin] = FLEET) -> list[str]:
    """Device ids a query selects, following continuation tokens."""
    ids: list[str] = []
    token: str | None = None
    while True:
        page = run_query(query, fleet, MAX_PAGE_SIZE, token)
        ids += [item["deviceId"] for item in page.items]
        if (token := page.continuation_token) is None:
            return ids


def where(condition: str, fleet: list[Twin] = FLEET) -> set[str]:
    return set(select_ids(f"SELECT * FROM devices WHERE {condition}", fleet))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # deviceId, status, connectionState (root names match case-insensitively, values do not)
        ("deviceId = 'porto-1'", {"porto-1"}),
        ("DeviceID = 'porto-1'", {"porto-1"}),
        ("deviceId = 'PORTO-1'", set()),
        ("deviceId IN ['bare', 'Zeta', 'nope']", {"bare", "Zeta"}),
        ("status = 'disabled'", {"porto-1"}),
        ("status <> 'disabled'", ALL - {"porto-1"}),
        ("connectionState = 'Connected'", {"lisbon-1"}),
        # tags, nested tags, strings compare ordinally and case-sensitively
        ("tags.site = 'lisbon'", {"lisbon-1", "lisbon-2"}),
        ('tags.site = "lisbon"', {"lisbon-1", "lisbon-2"}),
        ("tags.site != 'lisbon'", {"porto-1", "porto-2", "Zeta"}),
        ("tags.location.building = 'B2'", {"lisbon-2"}),
        ("tags.location.floor >= 2", {"lisbon-1", "lisbon-2"}),
        ("tags.location.floor < 2", {"porto-1"}),
        ("tags.location.floor <= 2.0", {"lisbon-1", "porto-1"}),
        ("tags.location.floor > -1", {"lisbon-1", "lisbon-2", "porto-1"}),
        ("tags.location.floor = 0x5", {"lisbon-2"}),
        ("tags.site > 'm'", {"porto-1", "porto-2"}),
        ("tags.site < 'm'", {"lisbon-1", "lisbon-2", "Zeta"}),
        ("Tags.site = 'lisbon'", {"lisbon-1", "lisbon-2"}),
        ("tags.Site = 'lisbon'", set()),  # names inside tags are case-sensitive
        # reported / desired properties; numbers vs strings never compare
        ("properties.reported.firmware = 2", {"lisbon-1"}),
        ("properties.reported.firmware = 2.0", {"lisbon-1"}),
        ("properties.reported.firmware = '2.1.0'", {"lisbon-2"}),
        ("properties.reported.firmware > 1", {"lisbon-1", "porto-1"}),
        ("properties.reported.firmware > '1'", {"lisbon-2", "porto-2"}),
        ("properties.reported.firmware != 2", {"porto-1"}),
        ("properties.reported.firmware.major = 3", {"Zeta"}),
        ("properties.Reported.battery = 80", {"lisbon-1"}),
        ("properties.desired.telemetry.interval = 60", {"lisbon-2"}),
        ("properties.desired.$version = 2", {"lisbon-1", "lisbon-2"}),
        ("properties.reported.$version = 1", {"bare"}),
        # missing properties and type mismatches select nothing, even under != and NOT
        ("tags.missing = 'x'", set()),
        ("tags.missing != 'x'", set()),
        ("NOT (tags.missing = 'x')", set()),
        ("tags.site = 1", set()),
        ("NOT tags.site = 1", set()),
        ("tags.location = 'B1'", set()),
        ("tags.location.floor.deeper = 1", set()),
        ("tags.list = 1", set()),
        ("tags.site = null", set()),
        ("tags.site = undefined", set()),
        ("NOT tags.location.floor > 2", {"lisbon-1", "porto-1"}),
        # comparisons between two paths (primitive values only)
        ("properties.desired.telemetry.interval > tags.location.floor", {"lisbon-1", "lisbon-2"}),
        ("tags.site = tags.site", {"lisbon-1", "lisbon-2", "porto-1", "porto-2", "Zeta"}),
        # booleans: bare boolean operands, literals, and only `true` selects
        ("tags.flag", {"lisbon-1"}),
        ("tags.flag = true", {"lisbon-1"}),
        ("tags.flag = FALSE", {"porto-1"}),
        ("NOT tags.flag", {"porto-1"}),
        ("tags.site", set()),
        ("true", ALL),
        ("false", set()),
        ("1 = 1", ALL),
        ("null = null", ALL),
        # IN / NIN
        ("tags.site IN ['porto', 'lisbon']", {"lisbon-1", "lisbon-2", "porto-1", "porto-2"}),
        ("tags.site NIN ['porto', 'lisbon']", {"Zeta"}),
        ("tags.location.floor IN [1, 5]", {"porto-1", "lisbon-2"}),
        ("tags.location.floor NIN [1, 5]", {"lisbon-1"}),
        ("tags.location.floor NIN ['1']", set()),
        ("tags.location.floor IN [-1, 0x2, 'x']", {"lisbon-1"}),
        ("properties.reported.firmware IN [2, '1.0']", {"lisbon-1", "porto-2"}),
        ("tags.missing NIN ['x']", set()),
        # IS_DEFINED: anything assigned, objects included
        ("IS_DEFINED(tags.location)", {"lisbon-1", "lisbon-2", "porto-1"}),
        ("is_defined(tags.location.floor)", {"lisbon-1", "lisbon-2", "porto-1"}),
        ("NOT Is_Defined(tags)", {"bare"}),
        ("IS_DEFINED(properties.reported.firmware) AND NOT IS_DEFINED(tags.location)", {"porto-2", "Zeta"}),
        ("IS_DEFINED(deviceId)", ALL),
        # string literals: both quote styles and the documented escapes
        ("tags.owner = 'it\\'s ana'", {"porto-2"}),
        ("tags.owner = \"it's ana\"", {"porto-2"}),
        ("tags.quote = 'say \"hi\"'", {"porto-2"}),
        ("tags.quote = \"say \\\"hi\\\"\"", {"porto-2"}),
        ("tags.unicode = '\\u00e9'", {"Zeta"}),
        ("tags.unicode = '\\u00E9'", {"Zeta"}),
        ("tags.unicode = 'é'", {"Zeta"}),
        ("deviceId = 'porto\\u002d1'", {"porto-1"}),
        ("tags.owner = 'it\\\\'", set()),
        # names that are keywords or not identifiers are quoted with [[ ]]
        ("tags.[[group]] = 'g1'", {"porto-2"}),
        ("tags.[[my-key]] = 7", {"porto-2"}),
        ("[[tags]].[[site]] = 'porto'", {"porto-1", "porto-2"}),
        # keywords are case-insensitive
        ("tags.site = 'porto' aNd NoT status = 'disabled'", {"porto-2"}),
        ("tags.site = 'porto' or tags.site = 'Lisbon'", {"porto-1", "porto-2", "Zeta"}),
        ("tags.site in ['porto'] AND tags.location.floor nin [2]", {"porto-1"}),
    ],
)
def test_where_selects(condition: str, expected: set[str]) -> None:
    assert where(condition) == expected


@pytest.mark.parametrize(
    ("query", "same_as"),
    [
        # NOT binds tighter than AND, AND tighter than OR
        ("NOT tags.site = 'porto' AND tags.flag", "(NOT tags.site = 'porto') AND tags.flag"),
        ("tags.site = 'porto' OR tags.site = 'lisbon' AND tags.flag",
         "tags.site = 'porto' OR (tags.site = 'lisbon' AND tags.flag)"),
        ("tags.flag AND tags.site = 'lisbon' OR status = 'disabled'",
         "(tags.flag AND tags.site = 'lisbon') OR status = 'disabled'"),
        ("NOT tags.flag OR tags.flag AND NOT status = 'enabled'",
         "(NOT tags.flag) OR (tags.flag AND (NOT status = 'enabled'))"),
        ("NOT NOT tags.flag", "tags.flag"),
        ("NOT tags.location.floor IN [1, 2]", "NOT (tags.location.floor IN [1, 2])"),
    ],
)
def test_operator_precedence(query: str, same_as: str) -> None:
    assert where(query) == where(same_as)


def test_precedence_changes_results_when_parenthesized_differently() -> None:
    assert where("tags.site = 'porto' OR tags.site = 'lisbon' AND tags.flag") == {"porto-1", "porto-2", "lisbon-1"}
    assert where("(tags.site = 'porto' OR tags.site = 'lisbon') AND tags.flag") == {"lisbon-1"}
    assert where("NOT tags.site = 'porto' AND tags.flag") == {"lisbon-1"}
    # porto-2 and bare have no tags.flag: false AND undefined = false, true AND undefined = undefined.
    assert where("NOT (tags.site = 'porto' AND tags.flag = false)") == {"lisbon-1", "lisbon-2", "Zeta"}


def test_keywords_and_collection_are_case_insensitive() -> None:
    assert select_ids("select * from DEVICES where tags.site = 'porto'") == ["porto-1", "porto-2"]
    assert select_ids("SeLeCt * FrOm devices") == sorted(ALL)


def test_select_star_returns_whole_twins_in_device_id_order() -> None:
    page = run_query("SELECT * FROM devices", FLEET)
    assert page.item_type == "twin"
    assert page.continuation_token is None
    assert [item["deviceId"] for item in page.items] == sorted(ALL)  # ordinal: "Zeta" < "bare"
    lisbon = next(item for item in page.items if item["deviceId"] == "lisbon-1")
    assert lisbon == FLEET[0].to_json()
    assert page.response_headers() == {"Content-Type": "application/json; charset=utf-8", "x-ms-item-type": "twin"}


def test_projections() -> None:
    page = run_query("SELECT deviceId, tags.location.floor, properties.reported.firmware AS fw, STATUS FROM devices "
                     "WHERE tags.site = 'lisbon'", FLEET)
    assert page.item_type == "raw"
    assert page.items == [
        {"deviceId": "lisbon-1", "floor": 2, "fw": 2, "status": "enabled"},
        {"deviceId": "lisbon-2", "floor": 5, "fw": "2.1.0", "status": "enabled"},
    ]
    # An undefined projection is left out of the item; objects project whole.
    assert run_query("SELECT deviceId, tags.location FROM devices WHERE deviceId IN ['bare', 'porto-1']", FLEET).items == [
        {"deviceId": "bare"},
        {"deviceId": "porto-1", "location": {"building": "P1", "floor": 1}},
    ]
    assert run_query("SELECT DeviceId, LastActivityTime FROM devices WHERE deviceId = 'bare'", FLEET).items == [
        {"deviceId": "bare", "lastActivityTime": "0001-01-01T00:00:00Z"},
    ]
    assert run_query("SELECT properties.reported FROM devices WHERE deviceId = 'bare'", FLEET).items == [
        {"reported": {"$metadata": {"$lastUpdated": "0001-01-01T00:00:00Z"}, "$version": 1}},
    ]


def test_evaluation_helpers() -> None:
    doc = FLEET[0].to_json()
    assert resolve(doc, ("TAGS", "site")) == "lisbon"
    assert resolve(doc, ("tags", "SITE")) is UNDEFINED
    assert resolve(doc, ("tags", "site", "x")) is UNDEFINED
    assert not UNDEFINED
    assert repr(UNDEFINED) == "undefined"
    assert parse_query("SELECT * FROM devices") is parse_query("SELECT * FROM devices")  # cached


# ------------------------------------------------------------------------------------------- errors
ERROR_BODY = re.compile(
    r"Tracking ID:[0-9a-f]{32}-G:0-TimeStamp:\d\d/\d\d/\d{4} \d\d:\d\d:\d\d"
)


@pytest.mark.parametrize(
    ("query", "error", "text"),
    [
        ("SELECT * FROM devices WHERE", InvalidQuery, "Syntax error: unexpected end of the query"),
        ("SELECT * FROM devices WHERE tags.site == 'x'", InvalidQuery, "Syntax error at line 1, column 40, near '= 'x''"),
        ("SELECT * FROM devices WHERE tags.site = 'x", InvalidQuery, "Syntax error"),
        ("SELECT * FROM devices WHERE tags.group = 'g1'", InvalidQuery, "near 'group"),
        ("SELECT * FROM devices WHERE tags.site LIKE 'l%'", InvalidQuery, "Syntax error"),
        ("SELECT * FROM devices WHERE tags.site IN ('a', 'b')", InvalidQuery, "Syntax error"),
        ("SELECT * FROM devices WHERE tags.site IN []", InvalidQuery, "at least one constant"),
        ("SELECT * FROM devices WHERE tags.site IN [tags.x]", InvalidQuery, "constants only"),
        ("SELECT * FROM devices WHERE tags.site = '\\n'", InvalidQuery, "Invalid escape sequence"),
        ("SELECT * FROM devices WHERE tags.site = '\\u00e'", InvalidQuery, "Invalid escape sequence"),
        ("SELECT * FROM devices WHERE IS_DEFINED('x')", InvalidQuery, "IS_DEFINED takes one property path"),
        ("SELECT * FROM devices WHERE IS_DEFINED(tags.a, tags.b)", InvalidQuery, "IS_DEFINED takes one property path"),
        ("SELECT * FROM devices WHERE frobnicate(tags.a)", InvalidQuery, "Unknown function frobnicate"),
        ("SELECT * FROM things", InvalidQuery, "Unknown collection 'things'"),
        ("SELECT * FROM devices ORDER BY deviceId", InvalidQuery, "Syntax error"),
        ("SELECT *, deviceId FROM devices", InvalidQuery, "Syntax error"),
        ("SELECT deviceId FROM devices WHERE", InvalidQuery, "Syntax error"),
        ("SELECT tags.site, properties.reported.site FROM devices", InvalidQuery, "Duplicate name(s) in the SELECT list: site"),
        ("DELETE FROM devices", InvalidQuery, "Syntax error"),
        ("SELECT * FROM devices WHERE " + "deviceId = 'x' OR " * 500 + "true", InvalidQuery, f"the maximum is {MAX_QUERY_LENGTH}"),
        ("SELECT COUNT() AS n FROM devices", UnsupportedQuery, "Aggregate COUNT()"),
        ("SELECT tags.site, COUNT() AS n FROM devices GROUP BY tags.site", UnsupportedQuery, "GROUP BY"),
        ("SELECT AVG(properties.reported.firmware) AS a FROM devices", UnsupportedQuery, "Aggregate AVG()"),
        ("SELECT TOP 10 * FROM devices", UnsupportedQuery, "SELECT TOP"),
        ("SELECT * FROM devices.modules", UnsupportedQuery, "FROM devices.modules"),
        ("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j'", UnsupportedQuery, "FROM devices.jobs"),
        ("SELECT * FROM Devices.Modules", UnsupportedQuery, "FROM devices.modules"),
        ("SELECT * FROM devices WHERE STARTSWITH(deviceId, 'l')", UnsupportedQuery, "Function STARTSWITH"),
        ("SELECT * FROM devices WHERE is_number(tags.x)", UnsupportedQuery, "Function IS_NUMBER"),
        ("SELECT * FROM devices WHERE tags.location.floor + 1 > 2", UnsupportedQuery, "Arithmetic operator '+'"),
        ("SELECT * FROM devices WHERE tags.location.floor % 2 = 0", UnsupportedQuery, "Arithmetic operator '%'"),
        ("SELECT * FROM devices WHERE -tags.location.floor < 0", UnsupportedQuery, "Arithmetic operator 'unary -'"),
        ("SELECT 1 AS one FROM devices", UnsupportedQuery, "property paths only"),
    ],
)
def test_rejected_queries(query: str, error: type[QueryError], text: str) -> None:
    with pytest.raises(error) as caught:
        run_query(query, FLEET)
    assert text in caught.value.message
    assert caught.value.status == 400
    assert caught.value.error_code == "BadRequest"


def test_error_reply_has_the_real_hub_shape() -> None:
    with pytest.raises(UnsupportedQuery) as caught:
        parse_query("SELECT COUNT() FROM devices")
    reply = caught.value.to_reply(tracking_id="0145380c335046479275c10be0eb278f", now=NOW)
    assert reply.status == 400
    assert reply.headers == {"Content-Type": "application/json; charset=utf-8", "iothub-errorcode": "BadRequest"}
    assert reply.json() == {
        "Message": "ErrorCode:BadRequest;Aggregate COUNT() is not supported by the local IoT Hub emulator",
        "ExceptionMessage": "Tracking ID:0145380c335046479275c10be0eb278f-G:0-TimeStamp:03/04/2026 05:06:07",
    }
    fresh = caught.value.to_reply().json()  # a new tracking id and the current time by default
    assert ERROR_BODY.fullmatch(fresh["ExceptionMessage"])


@pytest.mark.parametrize("query", [None, "", "   "])
def test_missing_query_is_argument_null_like_the_real_hub(query: str | None) -> None:
    with pytest.raises(MissingQuery) as caught:
        parse_query(query)
    # The body a real hub sent for a query request without a query (Azure/azure-iot-sdks#941).
    assert caught.value.body(tracking_id="0145380c335046479275c10be0eb278f", now=datetime(2016, 11, 10, 8, 37, 23, tzinfo=UTC)) == {
        "Message": "ErrorCode:ArgumentNull;BadRequest",
        "ExceptionMessage": "Tracking ID:0145380c335046479275c10be0eb278f-G:0-TimeStamp:11/10/2016 08:37:23",
    }
    assert caught.value.to_reply().headers["iothub-errorcode"] == "ArgumentNull"


def test_non_string_query_is_invalid() -> None:
    with pytest.raises(InvalidQuery, match="must be a string"):
        parse_query(42)


# ------------------------------------------------------------------------------------------- paging
def test_pages_return_each_device_once_in_a_stable_order() -> None:
    expected = select_ids("SELECT * FROM devices")
    for size in range(1, len(FLEET) + 2):
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            page = run_query("SELECT * FROM devices", FLEET, size, token)
            assert 0 < len(page.items) <= size
            seen += [item["deviceId"] for item in page.items]
            pages += 1
            if (token := page.continuation_token) is None:
                break
            assert page.response_headers()["x-ms-continuation"] == token
        assert seen == expected
        assert pages == -(-len(FLEET) // size)  # the last page is never empty


def test_paging_over_a_filter_and_a_projection() -> None:
    first = run_query("SELECT deviceId FROM devices WHERE tags.site IN ['lisbon', 'porto']", FLEET, "3")
    assert first.items == [{"deviceId": "lisbon-1"}, {"deviceId": "lisbon-2"}, {"deviceId": "porto-1"}]
    assert first.item_type == "raw"
    second = run_query("SELECT deviceId FROM devices WHERE tags.site IN ['lisbon', 'porto']", FLEET, "3",
                       first.continuation_token)
    assert second.items == [{"deviceId": "porto-2"}]
    assert second.continuation_token is None
    empty = run_query("SELECT * FROM devices WHERE false", FLEET, 1)
    assert (empty.items, empty.continuation_token) == ([], None)


def test_changes_between_pages_never_repeat_a_device() -> None:
    fleet = [Twin(f"d{i}") for i in range(6)]
    page = run_query("SELECT * FROM devices", fleet, 3)
    assert [i["deviceId"] for i in page.items] == ["d0", "d1", "d2"]
    # d1 removed and d0a added behind the cursor, d2a ahead of it, d4 changed: resume after d2.
    fleet = [t for t in fleet if t.device_id != "d1"] + [Twin("d0a"), Twin("d2a")]
    fleet[3] = apply_twin_patch(fleet[3], {"tags": {"x": 1}})
    rest = select_remaining("SELECT * FROM devices", fleet, 3, page.continuation_token)
    assert rest == ["d2a", "d3", "d4", "d5"]


def select_remaining(query: str, fleet: list[Twin], size: int, token: str | None) -> list[str]:
    ids: list[str] = []
    while token is not None:
        page = run_query(query, fleet, size, token)
        ids += [item["deviceId"] for item in page.items]
        token = page.continuation_token
    return ids


def test_page_size_is_capped_at_100_and_defaults_to_100() -> None:
    fleet = [Twin(f"dev-{i:03}") for i in range(250)]
    assert len(run_query("SELECT * FROM devices", fleet).items) == 100
    assert len(run_query("SELECT * FROM devices", fleet, 1000).items) == 100
    assert len(run_query("SELECT * FROM devices", fleet, " 7 ").items) == 7
    assert len(select_ids("SELECT deviceId FROM devices", fleet)) == 250


@pytest.mark.parametrize("count", [0, -1, "0", "abc", "1.5", True])
def test_invalid_max_item_count(count: Any) -> None:
    with pytest.raises(InvalidQuery, match="x-ms-max-item-count"):
        run_query("SELECT * FROM devices", FLEET, count)


@pytest.mark.parametrize(
    ("token", "text"),
    [
        ("not-base64!!", "Invalid continuation token"),
        (base64.urlsafe_b64encode(b"[1, 2]").decode(), "Invalid continuation token"),
        (base64.urlsafe_b64encode(b'{"q": "x"}').decode(), "Invalid continuation token"),
        (encode_continuation("SELECT deviceId FROM devices", "a"), "does not belong to this query"),
    ],
)
def test_invalid_continuation_tokens(token: str, text: str) -> None:
    with pytest.raises(InvalidQuery, match=text):
        run_query("SELECT * FROM devices", FLEET, 2, token)


# ----------------------------------------------------------------------------------- HTTP exchange
def test_handle_query_request_success_and_paging() -> None:
    body = json.dumps({"query": "SELECT * FROM devices WHERE tags.site = 'porto'"}).encode()
    reply = handle_query_request(body, {"X-MS-Max-Item-Count": "1"}, FLEET, api_version="2021-04-12")
    assert reply.status == 200
    assert reply.headers["x-ms-item-type"] == "twin"
    assert [t["deviceId"] for t in reply.json()] == ["porto-1"]
    follow = handle_query_request(body, {"x-ms-max-item-count": "1", "x-ms-continuation": reply.headers["x-ms-continuation"]},
                                  FLEET, api_version="2021-04-12")
    assert [t["deviceId"] for t in follow.json()] == ["porto-2"]
    assert "x-ms-continuation" not in follow.headers
    # An empty x-ms-continuation header is a first page, like no header.
    again = handle_query_request({"query": "SELECT deviceId FROM devices"}, {"x-ms-continuation": ""}, FLEET,
                                 api_version="2021-04-12")
    assert again.status == 200 and again.headers["x-ms-item-type"] == "raw"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"", "ArgumentNull", "ErrorCode:ArgumentNull;BadRequest"),
        (None, "ArgumentNull", "ErrorCode:ArgumentNull;BadRequest"),
        (b"{}", "ArgumentNull", "ErrorCode:ArgumentNull;BadRequest"),
        (b'{"query": null}', "ArgumentNull", "ErrorCode:ArgumentNull;BadRequest"),
        (b'{"query": 5}', "BadRequest", "ErrorCode:BadRequest;query must be a string"),
        (b"[1]", "BadRequest", "ErrorCode:BadRequest;The request body must be a JSON object"),
        (b"{nope", "BadRequest", "ErrorCode:BadRequest;The request body is not JSON"),
        (b'{"query": "SELECT * FROM devices.jobs"}', "BadRequest", "ErrorCode:BadRequest;FROM devices.jobs"),
    ],
)
def test_handle_query_request_errors(body: bytes | None, code: str, message: str) -> None:
    reply = handle_query_request(body, {}, FLEET, api_version="2021-04-12")
    assert reply.status == 400
    assert reply.headers["iothub-errorcode"] == code
    assert reply.json()["Message"].startswith(message)
    assert ERROR_BODY.fullmatch(reply.json()["ExceptionMessage"])


def test_handle_query_request_requires_api_version() -> None:
    reply = handle_query_request(b'{"query": "SELECT * FROM devices"}', {}, FLEET, api_version=None)
    assert (reply.status, reply.headers["iothub-errorcode"]) == (400, "InvalidProtocolVersion")


@pytest.fixture
def sdk_registry_manager() -> Iterator[tuple[IoTHubRegistryManager, list[requests.PreparedRequest]]]:
    """An unmodified IoTHubRegistryManager whose HTTP requests are answered by handle_query_request."""
    sent: list[requests.PreparedRequest] = []

    def send(_adapter: HTTPAdapter, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        sent.append(request)
        url = urlsplit(request.url or "")
        assert (request.method, url.path) == ("POST", "/devices/query")
        reply = handle_query_request(request.body, request.headers, FLEET,
                                     api_version=parse_qs(url.query).get("api-version", [None])[0])
        response = requests.Response()
        response.status_code = reply.status
        response.reason = "OK" if reply.status == 200 else "Bad Request"
        response.headers.update(reply.headers)
        response._content = reply.body
        response.url, response.request = request.url or "", request
        return response

    key = base64.b64encode(b"k" * 32).decode()
    with mock.patch.object(HTTPAdapter, "send", send):
        yield IoTHubRegistryManager.from_connection_string(
            f"HostName=hub.local;SharedAccessKeyName=iothubowner;SharedAccessKey={key}"), sent


def test_sdk_query_iot_hub_contract(sdk_registry_manager: tuple[IoTHubRegistryManager, list[requests.PreparedRequest]]) -> None:
    registry, sent = sdk_registry_manager
    spec = QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'lisbon' OR status = 'disabled'")
    ids: list[str] = []
    token = None
    while True:
        result = registry.query_iot_hub(spec, token, 2)
        assert result.type == "twin"
        ids += [twin.device_id for twin in result.items]
        if (token := result.continuation_token) is None:
            break
    assert ids == ["lisbon-1", "lisbon-2", "porto-1"]
    first, second = sent
    assert parse_qs(urlsplit(first.url or "").query) == {"api-version": ["2021-04-12"]}
    assert first.headers["x-ms-max-item-count"] == "2"
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "x-ms-continuation" not in first.headers
    assert second.headers["x-ms-continuation"]
    assert json.loads(first.body or b"") == {"query": spec.query}

    twin = registry.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE deviceId = 'lisbon-1'")).items[0]
    assert twin.tags == FLEET[0].tags
    assert twin.properties.reported["firmware"] == 2
    assert twin.properties.desired["$version"] == 2
    assert (twin.etag, twin.version, twin.status, twin.connection_state) == (FLEET[0].etag, 2, "enabled", "Connected")
    assert twin.status_update_time == datetime(1, 1, 1, tzinfo=UTC)

    # Projections arrive as Twin objects too: known names as attributes, the rest in additional_properties.
    projected = registry.query_iot_hub(QuerySpecification(query="SELECT deviceId, tags.site FROM devices WHERE tags.flag"))
    assert projected.type == "raw"
    assert [(t.device_id, t.additional_properties) for t in projected.items] == [("lisbon-1", {"site": "lisbon"})]


def test_sdk_sees_the_400_error(sdk_registry_manager: tuple[IoTHubRegistryManager, list[requests.PreparedRequest]]) -> None:
    registry, _ = sdk_registry_manager
    with pytest.raises(HttpOperationError) as caught:
        registry.query_iot_hub(QuerySpecification(query="SELECT COUNT() AS n FROM devices GROUP BY tags.site"))
    response = caught.value.response
    assert response.status_code == 400
    assert response.headers["iothub-errorcode"] == "BadRequest"
    assert response.json()["Message"].startswith("ErrorCode:BadRequest;")


# --------------------------------------------------------------------------------------- properties
PATHS = ["tags.a", "tags.b", "tags.o.k", "properties.reported.fw", "deviceId"]
_str_values = st.sampled_from(["", "a", "b", "lisbon", "it's"])
_num_values = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]))
_primitive = st.one_of(_str_values, _num_values, st.booleans())
_value = st.one_of(_primitive, st.just({"k": 1}), st.just([1, "a"]))


@st.composite
def fleets(draw: st.DrawFn) -> list[Twin]:
    twins = []
    for index in range(draw(st.integers(1, 7))):
        tags: dict[str, Any] = {}
        for name in ("a", "b"):
            if draw(st.booleans()):
                tags[name] = draw(_value)
        if draw(st.booleans()):
            tags["o"] = {"k": draw(_value)} if draw(st.booleans()) else draw(_primitive)
        reported = {"fw": draw(_value)} if draw(st.booleans()) else {}
        twins.append(make_twin(f"d{index}", tags, reported))
    return twins


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


_literals = st.one_of(_primitive, st.none())
_paths = st.sampled_from(PATHS)
_ops = st.sampled_from(["=", "!=", "<>", "<", ">", "<=", ">="])
atoms = st.one_of(
    st.builds(lambda p, o, v: f"{p} {o} {literal(v)}", _paths, _ops, _literals),
    st.builds(lambda p, o, q: f"{p} {o} {q}", _paths, _ops, _paths),
    st.builds(lambda p, vs: f"{p} IN [{', '.join(map(literal, vs))}]", _paths, st.lists(_literals, min_size=1, max_size=3)),
    st.builds(lambda p, vs: f"{p} NIN [{', '.join(map(literal, vs))}]", _paths, st.lists(_literals, min_size=1, max_size=3)),
    st.builds(lambda p: f"IS_DEFINED({p})", _paths),
    st.builds(literal, st.booleans()),
)
conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(lambda e: f"NOT ({e})", inner),
        st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) OR ({b})", inner, inner),
    ),
    max_leaves=6,
)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(fleets(), conditions)
def test_not_selects_the_complement_among_devices_where_the_condition_is_defined(fleet: list[Twin], e: str) -> None:
    selected, negated = where(e, fleet), where(f"NOT ({e})", fleet)
    defined = where(f"({e}) OR NOT ({e})", fleet)
    assert not selected & negated
    assert selected | negated == defined
    assert where(f"NOT (NOT ({e}))", fleet) == selected


@PROPERTY_SETTINGS
@given(fleets(), _paths, _ops, _literals)
def test_a_comparison_is_defined_exactly_for_values_of_the_literals_type(fleet: list[Twin], path: str, op: str,
                                                                       value: Any) -> None:
    """Missing properties, other JSON types, objects and arrays are neither selected by `x op c` nor
    by `NOT (x op c)`: only twins whose value has c's JSON type take part."""
    def kind(v: Any) -> str:
        return {bool: "bool", int: "number", float: "number", str: "string", type(None): "null"}.get(type(v), "other")

    atom = f"{path} {op} {literal(value)}"
    comparable = {t.device_id for t in fleet if kind(resolve(t.to_json(), tuple(path.split(".")))) == kind(value)}
    assert where(atom, fleet) | where(f"NOT ({atom})", fleet) == comparable


@PROPERTY_SETTINGS
@given(fleets(), conditions, conditions)
def test_de_morgan_and_commutativity(fleet: list[Twin], a: str, b: str) -> None:
    assert where(f"NOT (({a}) AND ({b}))", fleet) == where(f"(NOT ({a})) OR (NOT ({b}))", fleet)
    assert where(f"NOT (({a}) OR ({b}))", fleet) == where(f"(NOT ({a})) AND (NOT ({b}))", fleet)
    assert where(f"({a}) AND ({b})", fleet) == where(f"({b}) AND ({a})", fleet) == where(a, fleet) & where(b, fleet)
    assert where(f"({a}) OR ({b})", fleet) == where(a, fleet) | where(b, fleet)


@PROPERTY_SETTINGS
@given(fleets(), _paths, st.lists(_literals, min_size=1, max_size=3), st.sampled_from(["<", ">", "<=", ">="]), _literals)
def test_in_nin_and_comparison_duality(fleet: list[Twin], path: str, values: list[Any], op: str, value: Any) -> None:
    items = ", ".join(map(literal, values))
    assert where(f"{path} IN [{items}]", fleet) == where(" OR ".join(f"{path} = {literal(v)}" for v in values), fleet)
    assert where(f"{path} NIN [{items}]", fleet) == where(f"NOT ({path} IN [{items}])", fleet)
    opposite = {"<": ">=", ">": "<=", "<=": ">", ">=": "<"}[op]
    assert where(f"NOT ({path} {op} {literal(value)})", fleet) == where(f"{path} {opposite} {literal(value)}", fleet)
    mirrored = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[op]
    assert where(f"{path} {op} {literal(value)}", fleet) == where(f"{literal(value)} {mirrored} {path}", fleet)


@PROPERTY_SETTINGS
@given(fleets(), conditions, st.integers(1, 8))
def test_paging_partitions_the_result(fleet: list[Twin], e: str, size: int) -> None:
    query = f"SELECT deviceId FROM devices WHERE {e}"
    everything = run_query(query, fleet, MAX_PAGE_SIZE).items
    assert select_remaining_items(query, fleet, size) == everything


def select_remaining_items(query: str, fleet: list[Twin], size: int) -> list[dict[str, Any]]:
    page = run_query(query, fleet, size)
    items = list(page.items)
    while page.continuation_token is not None:
        page = run_query(query, fleet, size, page.continuation_token)
        assert page.items
        items += page.items
    return items


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "é[]", max_size=60))
def test_arbitrary_text_parses_or_raises_query_error(suffix: str) -> None:
    for text in (suffix, f"SELECT * FROM devices WHERE {suffix}"):
        try:
            parse_query(text)
        except QueryError as exc:
            assert exc.status == 400
