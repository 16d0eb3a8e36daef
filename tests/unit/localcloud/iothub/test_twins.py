"""The device twin model and twin patches (pure: JSON merge patch, versions, etag, $metadata)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from azure.iot.hub.protocol import models
from hypothesis import given, settings
from hypothesis import strategies as st
from msrest import Deserializer

from localcloud.iothub.twins import (
    EPOCH,
    Twin,
    TwinPatchError,
    apply_twin_patch,
    iso8601,
    merge_patch,
)

T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
TS0, TS1 = "2026-03-04T05:06:07.1234560Z", "2026-03-04T05:11:07.1234560Z"


def test_a_new_twin_has_the_shape_the_registry_query_returns() -> None:
    assert Twin("dev-1").to_json() == {
        "deviceId": "dev-1",
        "etag": "AAAAAAAAAAE=",
        "status": "enabled",
        "statusUpdateTime": EPOCH,
        "connectionState": "Disconnected",
        "lastActivityTime": EPOCH,
        "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
        "modelId": "",
        "version": 1,
        "properties": {
            "desired": {"$metadata": {"$lastUpdated": EPOCH}, "$version": 1},
            "reported": {"$metadata": {"$lastUpdated": EPOCH}, "$version": 1},
        },
        "capabilities": {"iotEdge": False},
    }
    doc = Twin("d", device_etag="MTIz", status_reason="maintenance").to_json()
    assert (doc["deviceEtag"], doc["statusReason"]) == ("MTIz", "maintenance")


def test_the_sdk_deserializes_the_twin_document() -> None:
    twin = apply_twin_patch(
        Twin("dev-1", status="disabled", connection_state="Connected", last_activity_time=TS0,
             cloud_to_device_message_count=3, device_etag="MTIz"),
        {"tags": {"site": "porto"}, "properties": {"desired": {"a": 1}, "reported": {"fw": "1.0"}}}, now=T0)
    deserialize = Deserializer({name: cls for name, cls in vars(models).items() if isinstance(cls, type)})
    sdk_twin = deserialize("Twin", twin.to_json())
    assert sdk_twin.device_id == "dev-1"
    assert (sdk_twin.status, sdk_twin.connection_state, sdk_twin.authentication_type) == ("disabled", "Connected", "sas")
    assert (sdk_twin.etag, sdk_twin.device_etag, sdk_twin.version) == (twin.etag, "MTIz", 2)
    assert sdk_twin.last_activity_time == datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert sdk_twin.cloud_to_device_message_count == 3
    assert sdk_twin.tags == {"site": "porto"}
    assert sdk_twin.properties.desired["a"] == 1 and sdk_twin.properties.desired["$version"] == 2
    assert sdk_twin.properties.reported["fw"] == "1.0"
    assert sdk_twin.capabilities.iot_edge is False


def test_iso8601_uses_seven_fractional_digits_in_utc() -> None:
    assert iso8601(T0) == TS0
    assert iso8601(datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-01T01:00:00.0000000Z"
    assert iso8601(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.0000000Z"  # naive = UTC


# RFC 7386 Appendix A, every example.
@pytest.mark.parametrize(
    ("original", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(original: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(original), copy.deepcopy(patch)
    assert merge_patch(original, patch) == result
    assert (original, patch) == before


def test_tags_patch_merges_deletes_and_bumps_version_and_etag() -> None:
    twin = Twin("dev-1")
    first = apply_twin_patch(twin, {"tags": {"site": "lisbon", "location": {"building": "B1", "floor": 2}}}, now=T0)
    assert twin.to_json() == Twin("dev-1").to_json()  # the input is not modified
    assert first.tags == {"site": "lisbon", "location": {"building": "B1", "floor": 2}}
    assert (first.version, first.etag) == (2, "AAAAAAAAAAI=")
    second = apply_twin_patch(first, {"tags": {"location": {"floor": None, "room": "12"}, "site": "porto"}}, now=T1)
    assert second.tags == {"site": "porto", "location": {"building": "B1", "room": "12"}}
    assert second.version == 3
    assert second.desired == first.desired and second.reported == first.reported  # tags carry no $metadata
    gone = apply_twin_patch(second, {"tags": {"site": None, "location": None}})
    assert gone.tags == {}
    assert "tags" not in gone.to_json()


def test_desired_metadata_tracks_updates_and_versions() -> None:
    twin = apply_twin_patch(Twin("d"), {"properties": {"desired": {"telemetry": {"interval": 30, "mode": "fast"}, "x": 1}}},
                            now=T0)
    stamp0 = {"$lastUpdated": TS0, "$lastUpdatedVersion": 2}
    assert twin.desired.to_json() == {
        "telemetry": {"interval": 30, "mode": "fast"},
        "x": 1,
        "$metadata": {**stamp0, "telemetry": {**stamp0, "interval": stamp0, "mode": stamp0}, "x": stamp0},
        "$version": 2,
    }
    later = apply_twin_patch(twin, {"properties": {"desired": {"telemetry": {"interval": 60}, "x": None}}}, now=T1)
    stamp1 = {"$lastUpdated": TS1, "$lastUpdatedVersion": 3}
    assert later.desired.to_json() == {
        "telemetry": {"interval": 60, "mode": "fast"},
        "$metadata": {**stamp1, "telemetry": {**stamp1, "interval": stamp1, "mode": stamp0}},
        "$version": 3,
    }
    assert later.reported == twin.reported and later.version == 3


def test_reported_metadata_has_no_version_and_follows_type_changes() -> None:
    twin = apply_twin_patch(Twin("d"), {"properties": {"reported": {"fw": {"major": 1, "minor": 2}}}}, now=T0)
    assert twin.reported.metadata == {"$lastUpdated": TS0, "fw": {"$lastUpdated": TS0, "major": {"$lastUpdated": TS0},
                                                                   "minor": {"$lastUpdated": TS0}}}
    flat = apply_twin_patch(twin, {"properties": {"reported": {"fw": "1.2"}}}, now=T1)
    assert flat.reported.to_json() == {"fw": "1.2", "$metadata": {"$lastUpdated": TS1, "fw": {"$lastUpdated": TS1}},
                                       "$version": 3}
    nested = apply_twin_patch(flat, {"properties": {"reported": {"fw": {"major": 2}}}}, now=T0)
    assert nested.reported.metadata["fw"] == {"$lastUpdated": TS0, "major": {"$lastUpdated": TS0}}
    assert nested.desired.version == 1


def test_one_patch_can_touch_every_section_and_bumps_the_twin_version_once() -> None:
    twin = apply_twin_patch(Twin("d", version=7), {"tags": {"t": 1}, "properties": {"desired": {"d": 1}, "reported": {"r": 1}}})
    assert (twin.version, twin.desired.version, twin.reported.version) == (8, 2, 2)
    assert (twin.tags, twin.desired.values, twin.reported.values) == ({"t": 1}, {"d": 1}, {"r": 1})


@pytest.mark.parametrize("patch", [{}, {"tags": {}}, {"properties": {}}, {"properties": {"desired": {}, "reported": {}}},
                                   {"tags": None}])
def test_empty_patches_change_nothing(patch: dict[str, Any]) -> None:
    twin = apply_twin_patch(Twin("d"), {"tags": {"a": 1}})
    assert apply_twin_patch(twin, patch).to_json() == twin.to_json()


def test_etag_precondition() -> None:
    twin = apply_twin_patch(Twin("d"), {"tags": {"a": 1}})
    assert apply_twin_patch(twin, {"tags": {"a": 2}}, etag=f'"{twin.etag}"').tags == {"a": 2}
    assert apply_twin_patch(twin, {"tags": {"a": 3}}, etag="*").tags == {"a": 3}
    with pytest.raises(TwinPatchError) as caught:
        apply_twin_patch(twin, {"tags": {"a": 4}}, etag="AAAAAAAAAAE=")
    assert (caught.value.status, caught.value.error_code) == (412, "PreconditionFailed")
    reply = caught.value.to_reply()
    assert reply.status == 412 and reply.headers["iothub-errorcode"] == "PreconditionFailed"
    assert reply.json()["Message"].startswith("ErrorCode:PreconditionFailed;")


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for level in range(levels - 1):
        value = {f"l{level}": value}
    return value


@pytest.mark.parametrize(
    ("patch", "text"),
    [
        ({"tags": {"a.b": 1}}, "contains '.', '$', a space or a control character"),
        ({"tags": {"$a": 1}}, "contains '.'"),
        ({"tags": {"a b": 1}}, "contains '.'"),
        ({"tags": {"a\x01": 1}}, "contains '.'"),
        ({"tags": {"a\x85": 1}}, "contains '.'"),
        ({"properties": {"reported": {"x": {"": 1}}}}, "non-empty strings"),
        ({"properties": {"desired": {"k" * 1025: 1}}}, "longer than 1024 bytes"),
        ({"properties": {"desired": {"$version": 3}}}, "contains '.'"),
        ({"tags": {"x": deep(11)}}, "deeper than 10 levels"),
        ({"tags": {"big": "x" * 9000}}, "tags would exceed 8192 bytes"),
        ({"properties": {"reported": {"big": "x" * 33000}}}, "reported would exceed 32768 bytes"),
        ({"tags": {"s": {1, 2}}}, "is not a JSON value"),
        ({"tags": {"s": [1, {2}]}}, "is not a JSON value"),
        ({"tags": {"s": [{"a.b": 1}]}}, "contains '.'"),
        ({"tags": ["a"]}, "tags must be a JSON object"),
        ({"properties": {"desired": "x"}}, "desired must be a JSON object"),
        ({"properties": {"other": {}}}, "properties may contain desired and reported only"),
        ({"properties": []}, "properties may contain desired and reported only"),
        ({"deviceId": "x", "tags": {}}, "Only tags and properties can be patched, not deviceId"),
        ({1: "x", "etag": "y"}, "Only tags and properties can be patched, not 1, etag"),
        ([("tags", {})], "must be a JSON object"),
    ],
)
def test_invalid_patches(patch: Any, text: str) -> None:
    twin = apply_twin_patch(Twin("d"), {"tags": {"nest": deep(3)}})
    with pytest.raises(TwinPatchError) as caught:
        apply_twin_patch(twin, patch)
    assert text in caught.value.message
    assert (caught.value.status, caught.value.error_code) == (400, "ArgumentInvalid")


def test_objects_may_nest_ten_levels_deep() -> None:
    twin = apply_twin_patch(Twin("d"), {"tags": {"other": deep(10)}, "properties": {"reported": deep(10)}})
    assert twin.tags["other"] == deep(10)
    with pytest.raises(TwinPatchError, match="deeper than 10"):
        apply_twin_patch(twin, {"properties": {"desired": {"x": deep(11)}}})


# --------------------------------------------------------------------------------------- properties
_keys = st.sampled_from(["a", "b", "c"])
_leaves = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.lists(st.integers(), max_size=2))
_values = st.recursive(_leaves, lambda inner: st.dictionaries(_keys, inner, max_size=3), max_leaves=6)
_patches = st.recursive(st.one_of(_leaves, st.none()), lambda inner: st.dictionaries(_keys, inner, max_size=3),
                        max_leaves=8).filter(lambda p: isinstance(p, dict))


def metadata_mirrors(values: Any, metadata: dict[str, Any]) -> bool:
    """Every value has metadata, objects have metadata for exactly their members, and nothing else."""
    names = {k for k in metadata if not k.startswith("$")}
    if not isinstance(values, dict):
        return not names and "$lastUpdated" in metadata
    return names == set(values) and all(metadata_mirrors(values[k], metadata[k]) for k in names)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=3), _patches)
def test_merge_patch_is_idempotent_and_drops_nulls(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    for key, value in patch.items():
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert once[key] == value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["desired", "reported"]), _patches), min_size=1, max_size=5))
def test_metadata_mirrors_the_values_after_any_patches(patches: list[tuple[str, dict[str, Any]]]) -> None:
    twin = Twin("d")
    for number, (section, patch) in enumerate(patches):
        before = twin.to_json()
        patched = apply_twin_patch(twin, {"properties": {section: patch}}, now=T0 + timedelta(seconds=number))
        assert twin.to_json() == before  # inputs stay untouched
        twin = patched
        for part in (twin.desired, twin.reported):
            assert metadata_mirrors(part.values, part.metadata)
    assert twin.version == 1 + sum(1 for _, patch in patches if patch)
    assert twin.desired.version + twin.reported.version == twin.version + 1
