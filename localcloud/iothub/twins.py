"""Device twins as the registry query returns them, twin patches, and the paged query over a fleet.

Pure: no I/O and no hub state; callers own the twins and pass a clock value where time matters.

- `Twin.to_json()` is the twin document of `POST /devices/query` (and GET /twins/{id}): deviceId, etag,
  deviceEtag, status, statusUpdateTime, connectionState, lastActivityTime, cloudToDeviceMessageCount,
  authenticationType, x509Thumbprint, modelId, version, tags, properties.desired/reported (each with
  $metadata and $version), capabilities; azure-iot-hub deserializes it into `protocol.models.Twin`.
- `apply_twin_patch()` merges tags / desired / reported with JSON merge-patch (RFC 7386: null deletes,
  objects merge, anything else replaces) and keeps versions, etag and $metadata the way the hub does.
- `run_query()` runs a query over twins, one page at a time; `handle_query_request()` is the whole
  HTTP exchange of `POST /devices/query` as `IoTHubRegistryManager.query_iot_hub` performs it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from .twin_query import (
    JSON_CONTENT_TYPE,
    HttpReply,
    HubError,
    InvalidQuery,
    ItemType,
    MissingQuery,
    QueryError,
    parse_query,
)

EPOCH: Final = "0001-01-01T00:00:00Z"  # what the hub reports for times that never happened
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 100  # "a max page size of less than or equal to 100 records" (query language doc)
MAX_DEPTH: Final = 10  # nesting of objects in tags / desired / reported
MAX_KEY_BYTES: Final = 1024
SIZE_LIMITS: Final = {"tags": 8 * 1024, "desired": 32 * 1024, "reported": 32 * 1024}

ITEM_TYPE_HEADER: Final = "x-ms-item-type"
CONTINUATION_HEADER: Final = "x-ms-continuation"
MAX_ITEM_COUNT_HEADER: Final = "x-ms-max-item-count"


def iso8601(moment: datetime) -> str:
    """The hub's timestamp format: UTC, seven fractional digits, Z (2020-07-09T13:55:50.7976985Z).
    A naive datetime is taken as UTC."""
    utc = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class TwinSection:
    """`properties.desired` or `properties.reported`: the values, their `$metadata` and `$version`."""

    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=lambda: {"$lastUpdated": EPOCH})
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        return {**copy.deepcopy(self.values), "$metadata": copy.deepcopy(self.metadata), "$version": self.version}


@dataclass
class Twin:
    """A device twin. `version` counts every change to tags, desired or reported properties; the twin
    etag is derived from it (base64 of the 8-byte big-endian version, the form the hub's etags have)."""

    device_id: str
    status: str = "enabled"  # enabled | disabled
    status_reason: str | None = None
    status_update_time: str = EPOCH
    connection_state: str = "Disconnected"  # Connected | Disconnected
    last_activity_time: str = EPOCH
    cloud_to_device_message_count: int = 0
    authentication_type: str = "sas"  # sas | selfSigned | certificateAuthority | none
    device_etag: str = ""  # the device identity's etag (registry), when the caller has one
    model_id: str = ""
    version: int = 1
    tags: dict[str, Any] = field(default_factory=dict)
    desired: TwinSection = field(default_factory=TwinSection)
    reported: TwinSection = field(default_factory=TwinSection)

    @property
    def etag(self) -> str:
        return base64.b64encode(self.version.to_bytes(8, "big")).decode()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"deviceId": self.device_id, "etag": self.etag}
        if self.device_etag:
            doc["deviceEtag"] = self.device_etag
        doc["status"] = self.status
        if self.status_reason is not None:
            doc["statusReason"] = self.status_reason
        doc.update({
            "statusUpdateTime": self.status_update_time,
            "connectionState": self.connection_state,
            "lastActivityTime": self.last_activity_time,
            "cloudToDeviceMessageCount": self.cloud_to_device_message_count,
            "authenticationType": self.authentication_type,
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "modelId": self.model_id,
            "version": self.version,
        })
        if self.tags:  # a twin that never had tags has no "tags" member
            doc["tags"] = copy.deepcopy(self.tags)
        doc["properties"] = {"desired": self.desired.to_json(), "reported": self.reported.to_json()}
        doc["capabilities"] = {"iotEdge": False}
        return doc


# ------------------------------------------------------------------------------------------ patches
class TwinPatchError(HubError):
    """A twin patch the hub refuses: 400 ArgumentInvalid, or 412 PreconditionFailed on an etag mismatch."""

    error_code = "ArgumentInvalid"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, returning a new value (neither argument is modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _check_values(section: str, values: Mapping[str, Any], depth: int = 1) -> None:
    """Names and nesting of a patch (a merge patch spells out every path it writes, so the merged
    section is never deeper than the patch or the section before it)."""
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise TwinPatchError(f"{section}: property names must be non-empty strings")
        if any(c in ".$ " or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key):
            raise TwinPatchError(f"{section}: property name {key!r} contains '.', '$', a space or a control character")
        if len(key.encode()) > MAX_KEY_BYTES:
            raise TwinPatchError(f"{section}: property name longer than {MAX_KEY_BYTES} bytes")
        _check_value(section, key, value, depth)


def _check_value(section: str, key: str, value: Any, depth: int) -> None:
    if isinstance(value, Mapping):
        if depth > MAX_DEPTH:
            raise TwinPatchError(f"{section}: objects nest deeper than {MAX_DEPTH} levels")
        _check_values(section, value, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(section, key, item, depth)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise TwinPatchError(f"{section}: {key!r} is not a JSON value")


def _update_metadata(metadata: dict[str, Any], old: Any, patch: Mapping[str, Any], stamp: dict[str, Any]) -> None:
    """Mirror a merge patch onto `$metadata`: every written node gets `stamp` ($lastUpdated, and
    $lastUpdatedVersion for desired properties), deleted names lose their metadata."""
    metadata.update(stamp)
    for key, value in patch.items():
        if value is None:
            metadata.pop(key, None)
            continue
        previous = old.get(key) if isinstance(old, Mapping) else None
        if isinstance(value, Mapping):
            child = metadata.get(key) if isinstance(previous, Mapping) and isinstance(metadata.get(key), dict) else {}
            _update_metadata(child, previous, value, stamp)
            metadata[key] = child
        else:
            metadata[key] = dict(stamp)


def _patched_section(name: str, section: TwinSection, patch: Mapping[str, Any], timestamp: str) -> TwinSection:
    version = section.version + 1
    stamp: dict[str, Any] = {"$lastUpdated": timestamp}
    if name == "desired":
        stamp["$lastUpdatedVersion"] = version
    metadata = copy.deepcopy(section.metadata)
    _update_metadata(metadata, section.values, patch, stamp)
    return TwinSection(merge_patch(section.values, patch), metadata, version)


def _size(values: Mapping[str, Any]) -> int:
    return len(json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode())


def apply_twin_patch(twin: Twin, patch: Mapping[str, Any], *, now: datetime | None = None,
                     etag: str | None = None) -> Twin:
    """A new Twin with `patch` applied; `twin` is left as it was.

    `patch` has the twin document's shape, any subset of
    {"tags": {...}, "properties": {"desired": {...}, "reported": {...}}}; each part is a JSON merge patch
    (null deletes a name). `etag` (If-Match; "*" or None = unconditional) must equal the twin's etag.
    Raises TwinPatchError (400 ArgumentInvalid, 412 PreconditionFailed)."""
    if etag not in (None, "*") and etag.strip('"') != twin.etag:
        raise TwinPatchError(f"Twin etag mismatch for device {twin.device_id}", status=412,
                             error_code="PreconditionFailed")
    if not isinstance(patch, Mapping):
        raise TwinPatchError("The twin patch must be a JSON object")
    if unknown := sorted(map(str, set(patch) - {"tags", "properties"})):
        raise TwinPatchError(f"Only tags and properties can be patched, not {', '.join(unknown)}")
    properties = patch.get("properties")
    properties = {} if properties is None else properties
    if not isinstance(properties, Mapping) or set(properties) - {"desired", "reported"}:
        raise TwinPatchError("properties may contain desired and reported only")
    parts = {"tags": patch.get("tags"), "desired": properties.get("desired"), "reported": properties.get("reported")}
    parts = {name: part for name, part in parts.items() if part is not None}
    for name, part in parts.items():
        if not isinstance(part, Mapping):
            raise TwinPatchError(f"{name} must be a JSON object")
        _check_values(name, part)
    parts = {name: part for name, part in parts.items() if part}
    if not parts:
        return copy.deepcopy(twin)

    timestamp = iso8601(now or datetime.now(UTC))
    tags = merge_patch(twin.tags, parts["tags"]) if "tags" in parts else copy.deepcopy(twin.tags)
    desired = (_patched_section("desired", twin.desired, parts["desired"], timestamp)
               if "desired" in parts else copy.deepcopy(twin.desired))
    reported = (_patched_section("reported", twin.reported, parts["reported"], timestamp)
                if "reported" in parts else copy.deepcopy(twin.reported))
    for name, values in (("tags", tags), ("desired", desired.values), ("reported", reported.values)):
        if name in parts and _size(values) > SIZE_LIMITS[name]:
            raise TwinPatchError(f"{name} would exceed {SIZE_LIMITS[name]} bytes")
    return replace(twin, version=twin.version + 1, tags=tags, desired=desired, reported=reported)


# ----------------------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class QueryPage:
    """One page of results. `items` are JSON objects (whole twin documents for SELECT *);
    `continuation_token` is None on the last page."""

    items: list[dict[str, Any]]
    continuation_token: str | None
    item_type: ItemType

    def response_headers(self) -> dict[str, str]:
        headers = {"Content-Type": JSON_CONTENT_TYPE, ITEM_TYPE_HEADER: self.item_type}
        if self.continuation_token is not None:
            headers[CONTINUATION_HEADER] = self.continuation_token
        return headers

    def body(self) -> bytes:
        return json.dumps(self.items).encode()


def _query_fingerprint(query_text: str) -> str:
    return hashlib.sha256(query_text.encode()).hexdigest()[:16]


def encode_continuation(query_text: str, after_device_id: str) -> str:
    raw = json.dumps({"q": _query_fingerprint(query_text), "after": after_device_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_continuation(query_text: str, token: str) -> str:
    """The device id a continuation token resumes after; InvalidQuery if it is not one of ours or was
    issued for another query."""
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        after, fingerprint = state["after"], state["q"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError) as exc:
        raise InvalidQuery("Invalid continuation token") from exc
    if not isinstance(after, str) or fingerprint != _query_fingerprint(query_text):
        raise InvalidQuery("The continuation token does not belong to this query")
    return after


def page_size(max_item_count: int | str | None) -> int:
    """The page size for an `x-ms-max-item-count` value: default 100, larger values capped at 100."""
    if max_item_count is None or max_item_count == "":
        return DEFAULT_PAGE_SIZE
    try:
        count = int(str(max_item_count).strip()) if not isinstance(max_item_count, bool) else 0
    except ValueError:
        count = 0
    if count < 1:
        raise InvalidQuery(f"x-ms-max-item-count must be a positive integer, not {max_item_count!r}")
    return min(count, MAX_PAGE_SIZE)


def run_query(query_text: str, twins: Iterable[Twin], max_item_count: int | str | None = None,
              continuation_token: str | None = None) -> QueryPage:
    """One page of `query_text` over `twins`, in ascending (ordinal) deviceId order.

    The continuation token names the last deviceId served, so a device appears at most once across the
    pages of one query even when twins are added, changed or removed between pages. Raises QueryError."""
    query = parse_query(query_text)
    size = page_size(max_item_count)
    after = decode_continuation(query_text, continuation_token) if continuation_token else None
    items: list[dict[str, Any]] = []
    last_id: str | None = None
    for twin in sorted(twins, key=lambda t: t.device_id):
        if after is not None and twin.device_id <= after:
            continue
        doc = twin.to_json()
        if not query.matches(doc):
            continue
        if len(items) == size:  # one more match exists: this page is full and not the last
            return QueryPage(items, encode_continuation(query_text, last_id or ""), query.item_type)
        items.append(query.project(doc))
        last_id = twin.device_id
    return QueryPage(items, None, query.item_type)


def query_from_body(body: bytes | str | Mapping[str, Any] | None) -> str:
    """The query string of a `POST /devices/query` body ({"query": "..."}); MissingQuery
    (ErrorCode:ArgumentNull) when there is none, InvalidQuery when the body is not that JSON object."""
    if isinstance(body, bytes | str):
        if not body.strip():
            raise MissingQuery("BadRequest")
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise InvalidQuery("The request body is not JSON") from exc
    if body is None:
        raise MissingQuery("BadRequest")
    if not isinstance(body, Mapping):
        raise InvalidQuery('The request body must be a JSON object {"query": "..."}')
    text = body.get("query")
    if text is None or (isinstance(text, str) and not text.strip()):
        raise MissingQuery("BadRequest")
    if not isinstance(text, str):
        raise InvalidQuery("query must be a string")
    return text


def handle_query_request(body: bytes | str | Mapping[str, Any] | None, headers: Mapping[str, str],
                         twins: Iterable[Twin], *, api_version: str | None,
                         tracking_id: str | None = None, now: datetime | None = None) -> HttpReply:
    """The complete `POST /devices/query?api-version=...` exchange, minus authentication.

    `headers` are the request headers (names matched case-insensitively: x-ms-max-item-count,
    x-ms-continuation); `api_version` is the api-version query parameter (None when absent).
    200: JSON array of items, x-ms-item-type (twin | raw), x-ms-continuation unless on the last page.
    400: the classic error envelope plus iothub-errorcode (see QUERY.md)."""
    if not api_version:
        return HubError("api-version is required", error_code="InvalidProtocolVersion").to_reply(
            tracking_id=tracking_id, now=now)
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        page = run_query(query_from_body(body), twins, lowered.get(MAX_ITEM_COUNT_HEADER),
                         lowered.get(CONTINUATION_HEADER) or None)
    except QueryError as exc:
        return exc.to_reply(tracking_id=tracking_id, now=now)
    return HttpReply(200, page.response_headers(), page.body())
