"""Request schema and validation: untrusted JSON in, an immutable `C2DCommand` out.

Validation collects every problem (field + rule + message) before failing, so a caller fixes
its request in one round trip. Nothing here touches the network.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import MappingProxyType

from c2d.config import DEFAULT_MAX_FAN_OUT, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from c2d.errors import FieldProblem, RequestTooLarge, ValidationFailed
from c2d.messages import ACK_MODES, C2DMessage

#: IoT Hub's C2D message size limit; it counts the body and the system and application properties.
MAX_MESSAGE_BYTES = 64 * 1024
#: The default cap on a `deviceIds` list (C2D_MAX_FAN_OUT; openapi.yaml's maxItems).
MAX_FAN_OUT = DEFAULT_MAX_FAN_OUT
MAX_ID_LENGTH = 128
MAX_QUERY_LENGTH = 8192  # IoT Hub's limit on a query's text
#: A query over device twins (not devices.modules or devices.jobs): the same regular expression is in openapi.yaml.
QUERY_PATTERN = re.compile(
    r"^\s*[Ss][Ee][Ll][Ee][Cc][Tt]\s[\s\S]*?\b[Ff][Rr][Oo][Mm]\s+[Dd][Ee][Vv][Ii][Cc][Ee][Ss](?![.\w])[\s\S]*$"
)
#: Caller properties whose names start with this prefix also travel on every outcome event.
OUTCOME_PROPERTY_PREFIX = "x-"
MAX_OUTCOME_PROPERTIES = 10
#: Device ids and message ids: ASCII 7-bit alphanumerics and - : . + % _ # * ? ! ( ) , = @ ; $ '
IOTHUB_ID = re.compile(r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$")
#: Application property names: RFC 7230 token characters, as IoT Hub requires.
PROPERTY_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,128}$")
RESERVED_PROPERTY_NAMES = frozenset(
    {
        "ack", "to", "userid", "user-id", "messageid", "message-id", "correlationid", "correlation-id",
        "contenttype", "content-type", "contentencoding", "content-encoding", "expirytimeutc",
        "absolute-expiry-time", "locktoken", "sequencenumber", "enqueuedtime", "deliverycount",
    }
)


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)  # names hold only - besides


#: The same rule as one regular expression (reserved names excluded, any case), for openapi.yaml.
PROPERTY_NAME_SCHEMA_PATTERN = (
    "^(?!" + _any_case("iothub-") + "|\\$|(?:"
    + "|".join(_any_case(name) for name in sorted(RESERVED_PROPERTY_NAMES)) + ")$)"
    + PROPERTY_NAME.pattern[1:]
)
PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]{1,128}$")
# Bytes added per property and per message by the AMQP encoding, to stay safely under the limit.
_PROPERTY_OVERHEAD = 8
_MESSAGE_OVERHEAD = 128

COMMON_FIELDS = frozenset(
    {
        "payload", "payloadBase64", "messageId", "correlationId", "contentType", "contentEncoding",
        "ack", "ttlSeconds", "properties",
    }
)


class RequestKind(Enum):
    """Where a request came from decides how its devices are named."""

    SINGLE = "single"  # HTTP, device id in the route
    FAN_OUT = "fan-out"  # HTTP, deviceIds in the body
    QUEUE = "queue"  # queue message, deviceId or deviceIds in the body


@dataclass(frozen=True)
class C2DCommand:
    device_ids: tuple[str, ...]
    body: bytes
    ack: str
    ttl_s: int
    message_id: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: An IoT Hub registry query selecting the devices, instead of `device_ids` (resolved before sending).
    query: str | None = None

    @property
    def outcome_properties(self) -> dict[str, str]:
        """The caller properties that travel on outcome events too (`x-...`, at most 10)."""
        return {k: v for k, v in self.properties.items() if k.lower().startswith(OUTCOME_PROPERTY_PREFIX)}

    def to_messages(
        self, now: datetime, new_message_id: Callable[[str], str] = lambda _device: str(uuid.uuid4())
    ) -> list[C2DMessage]:
        """One message per device, each with its own message id, all expiring at now + ttl."""
        expires_at = now + timedelta(seconds=self.ttl_s)
        return [
            C2DMessage(
                device_id=device_id,
                message_id=self.message_id if self.message_id else new_message_id(device_id),
                body=self.body,
                ack=self.ack,
                expires_at=expires_at,
                correlation_id=self.correlation_id,
                content_type=self.content_type,
                content_encoding=self.content_encoding,
                properties=self.properties,
            )
            for device_id in self.device_ids
        ]


def check_body_size(raw: bytes, max_bytes: int) -> None:
    """Refuse an oversized body before any work is spent parsing it."""
    if len(raw) > max_bytes:
        raise RequestTooLarge(
            f"the request body is {len(raw)} bytes; this app accepts at most {max_bytes} "
            "(IoT Hub's own limit is 64 KB per message)"
        )


def parse_json_body(raw: bytes) -> object:
    """Decode a request body; a body that is not UTF-8 JSON is a validation failure, not a 500.

    `ValueError` covers both malformed JSON and numbers Python refuses to convert (an integer of
    more than 4,300 digits); `RecursionError` covers absurdly deep nesting.
    """
    if not raw:
        raise ValidationFailed([FieldProblem("body", "required", "the request body must be a JSON object")])
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        reason = "it is not valid UTF-8"
    except json.JSONDecodeError as error:
        reason = f"{error.msg} at line {error.lineno} column {error.colno}"
    except ValueError:
        reason = "it holds a number too long to convert (more than 4,300 digits)"
    except RecursionError:
        reason = "it is nested too deeply"
    raise ValidationFailed([FieldProblem("body", "json", f"the request body is not valid JSON: {reason}")])


def parse_command(
    data: object,
    kind: RequestKind,
    *,
    route_device_id: str | None = None,
    default_ttl_s: int = DEFAULT_TTL_SECONDS,
    max_fan_out: int = MAX_FAN_OUT,
) -> C2DCommand:
    """Validate a decoded request. Raises `ValidationFailed` listing every problem."""
    problems: list[FieldProblem] = []
    if not isinstance(data, dict):
        raise ValidationFailed([FieldProblem("body", "type", "the request body must be a JSON object")])

    allowed = set(COMMON_FIELDS)
    if kind is RequestKind.FAN_OUT:
        allowed |= {"deviceIds", "query"}
    elif kind is RequestKind.QUEUE:
        allowed |= {"deviceId", "deviceIds", "query"}
    for name in sorted(k for k in data if k not in allowed):
        problems.append(
            FieldProblem(str(name) or '""', "unknown-field", f"unknown field; allowed: {', '.join(sorted(allowed))}")
        )

    query = _query(data, kind, problems)
    device_ids = () if "query" in data and kind is not RequestKind.SINGLE else _device_ids(
        data, kind, route_device_id, problems, max_fan_out
    )
    body, default_type, default_encoding = _payload(data, problems)
    message_id = _optional_id(data, "messageId", problems)
    if message_id is not None and ("deviceIds" in data or "query" in data):
        problems.append(
            FieldProblem(
                "messageId",
                "not-with-deviceIds",
                "a fan-out gives each device its own message id; use correlationId to group the messages",
            )
        )
    correlation_id = _optional_text(data, "correlationId", problems)
    content_type = _optional_text(data, "contentType", problems)
    content_encoding = _optional_text(data, "contentEncoding", problems)
    ack = _ack(data, problems)
    ttl_s = _ttl(data, default_ttl_s, problems)
    properties = _properties(data, problems)

    if not problems:
        size = message_size(
            body,
            properties,
            max(device_ids, key=len, default="x" * MAX_ID_LENGTH if query is not None else ""),
            message_id or "x" * 36,
            correlation_id,
            content_type or default_type,
            content_encoding or default_encoding,
        )
        if size > MAX_MESSAGE_BYTES:
            problems.append(
                FieldProblem(
                    "payload",
                    "max-size",
                    f"the message with its properties is {size} bytes; IoT Hub accepts at most {MAX_MESSAGE_BYTES}",
                )
            )
    if problems:
        raise ValidationFailed(problems)
    return C2DCommand(
        device_ids=device_ids,
        body=body,
        ack=ack,
        ttl_s=ttl_s,
        message_id=message_id,
        correlation_id=correlation_id,
        content_type=content_type or default_type,
        content_encoding=content_encoding or default_encoding,
        properties=MappingProxyType(dict(properties)),
        query=query,
    )


def _query(data: dict[str, object], kind: RequestKind, problems: list[FieldProblem]) -> str | None:
    if kind is RequestKind.SINGLE or "query" not in data:
        return None
    if "deviceIds" in data or "deviceId" in data:
        problems.append(FieldProblem("query", "one-of", "give either a device list or a query, not both"))
        return None
    value = data["query"]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_QUERY_LENGTH:
        problems.append(
            FieldProblem("query", "type", f"query must be an IoT Hub query of 1 to {MAX_QUERY_LENGTH} characters")
        )
        return None
    if not QUERY_PATTERN.fullmatch(value):
        problems.append(
            FieldProblem(
                "query", "devices-query", "query must select from devices, e.g. SELECT deviceId FROM devices WHERE ..."
            )
        )
        return None
    return value.strip()


def message_size(
    body: bytes,
    properties: Mapping[str, str],
    device_id: str,
    message_id: str,
    correlation_id: str | None,
    content_type: str | None,
    content_encoding: str | None,
) -> int:
    """Upper estimate of the encoded size IoT Hub compares with its 64 KB limit."""
    system = [f"/devices/{device_id}/messages/devicebound", message_id, correlation_id, content_type, content_encoding]
    size = len(body) + _MESSAGE_OVERHEAD
    size += sum(len(v.encode()) + _PROPERTY_OVERHEAD for v in system if v)
    size += sum(len(k.encode()) + len(v.encode()) + _PROPERTY_OVERHEAD for k, v in properties.items())
    return size


def _device_ids(
    data: dict[str, object], kind: RequestKind, route_device_id: str | None, problems: list[FieldProblem],
    max_fan_out: int = MAX_FAN_OUT,
) -> tuple[str, ...]:
    if kind is RequestKind.SINGLE:
        if not _valid_id(route_device_id):
            problems.append(bad_id("deviceId"))
            return ()
        return (str(route_device_id),)
    has_one, has_many = "deviceId" in data, "deviceIds" in data
    if kind is RequestKind.QUEUE and has_one == has_many:
        problems.append(FieldProblem("deviceId", "one-of", "give exactly one of deviceId and deviceIds"))
        return ()
    if has_one:
        if not _valid_id(data["deviceId"]):
            problems.append(bad_id("deviceId"))
            return ()
        return (str(data["deviceId"]),)
    ids = data.get("deviceIds")
    if ids is None:
        problems.append(FieldProblem("deviceIds", "required", "deviceIds is required: a list of device ids"))
        return ()
    if not isinstance(ids, list) or not 1 <= len(ids) <= max_fan_out:
        problems.append(
            FieldProblem("deviceIds", "count", f"deviceIds must be a list of 1 to {max_fan_out} device ids")
        )
        return ()
    valid = True
    for index, device_id in enumerate(ids):
        if not _valid_id(device_id):
            problems.append(bad_id(f"deviceIds[{index}]"))
            valid = False
    if not valid:
        return ()
    counts = Counter(ids)
    duplicates = sorted(d for d, n in counts.items() if n > 1)
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
        problems.append(FieldProblem("deviceIds", "unique", f"device ids must not repeat: {shown}"))
        return ()
    return tuple(ids)


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and IOTHUB_ID.fullmatch(value) is not None


def bad_id(name: str) -> FieldProblem:
    return FieldProblem(
        name,
        "iothub-id",
        "must be 1 to 128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '",
    )


def _payload(data: dict[str, object], problems: list[FieldProblem]) -> tuple[bytes, str | None, str | None]:
    has_json, has_b64 = "payload" in data, "payloadBase64" in data
    if has_json == has_b64:
        problems.append(FieldProblem("payload", "one-of", "give exactly one of payload and payloadBase64"))
        return b"", None, None
    if has_b64:
        raw = data["payloadBase64"]
        if not isinstance(raw, str):
            problems.append(FieldProblem("payloadBase64", "base64", "payloadBase64 must be a base64 string"))
            return b"", None, None
        try:
            return base64.b64decode(raw, validate=True), "application/octet-stream", None
        except (binascii.Error, ValueError):
            problems.append(FieldProblem("payloadBase64", "base64", "payloadBase64 is not valid base64"))
            return b"", None, None
    payload = data["payload"]
    try:
        if isinstance(payload, str):
            return payload.encode("utf-8"), "text/plain; charset=utf-8", "utf-8"
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8"), "application/json", "utf-8"
    except UnicodeEncodeError:
        problems.append(FieldProblem("payload", "utf-8", "payload contains text that is not valid Unicode"))
    except ValueError:
        problems.append(FieldProblem("payload", "json", "payload must be plain JSON (no NaN or Infinity)"))
    return b"", None, None


def _optional_id(data: dict[str, object], name: str, problems: list[FieldProblem]) -> str | None:
    if name not in data or data[name] is None:
        return None
    if not _valid_id(data[name]):
        problems.append(bad_id(name))
        return None
    return str(data[name])


def _optional_text(data: dict[str, object], name: str, problems: list[FieldProblem]) -> str | None:
    if name not in data or data[name] is None:
        return None
    value = data[name]
    if not isinstance(value, str) or not PRINTABLE_ASCII.fullmatch(value):
        problems.append(FieldProblem(name, "printable-ascii", "must be 1 to 128 printable ASCII characters"))
        return None
    return value


def _ack(data: dict[str, object], problems: list[FieldProblem]) -> str:
    value = data.get("ack", "full")
    if value not in ACK_MODES:
        problems.append(FieldProblem("ack", "enum", f"ack must be one of {', '.join(ACK_MODES)}"))
        return "full"
    return value


def _ttl(data: dict[str, object], default: int, problems: list[FieldProblem]) -> int:
    if "ttlSeconds" not in data or data["ttlSeconds"] is None:
        return default
    value = data["ttlSeconds"]
    if isinstance(value, float) and value.is_integer():  # JSON has one number type: 600.0 is 600
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_TTL_SECONDS <= value <= MAX_TTL_SECONDS:
        problems.append(
            FieldProblem(
                "ttlSeconds", "range", f"ttlSeconds must be a whole number from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}"
            )
        )
        return default
    return value


def _properties(data: dict[str, object], problems: list[FieldProblem]) -> dict[str, str]:
    value = data.get("properties")
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(FieldProblem("properties", "type", "properties must be an object of string values"))
        return {}
    result: dict[str, str] = {}
    for name, item in value.items():
        where = f"properties.{name}"
        if not PROPERTY_NAME.fullmatch(name):
            problems.append(
                FieldProblem(where, "name", "property names are 1 to 128 ASCII letters, digits or !#$%&'*+-.^_`|~")
            )
        elif name.lower() in RESERVED_PROPERTY_NAMES or name.lower().startswith(("iothub-", "$")):
            problems.append(
                FieldProblem(where, "reserved", "reserved for IoT Hub system properties; use the top-level field")
            )
        elif not isinstance(item, str):
            problems.append(FieldProblem(where, "type", "property values must be strings"))
        elif not _is_unicode(item):
            problems.append(FieldProblem(where, "utf-8", "property values must be valid Unicode text"))
        else:
            result[name] = item
    carried = [n for n in result if n.lower().startswith(OUTCOME_PROPERTY_PREFIX)]
    if len(carried) > MAX_OUTCOME_PROPERTIES:
        problems.append(
            FieldProblem(
                "properties", "max-outcome-properties",
                f"at most {MAX_OUTCOME_PROPERTIES} properties named {OUTCOME_PROPERTY_PREFIX}... (they travel on "
                "every outcome event too)",
            )
        )
    return result


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utc_now() -> datetime:
    return datetime.now(UTC)
