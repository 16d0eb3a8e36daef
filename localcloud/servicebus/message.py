"""AMQP message sections: split what a client sent, and re-assemble what the emulator delivers.

The emulator never re-encodes a body: it keeps the encoded properties/body sections as received and
only re-encodes the header and message annotations it owns (delivery count, lock, sequence number).
All encoding and decoding goes through proton's `Data` codec.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from proton import Data, Described, symbol, timestamp, ubyte, uint, ulong

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
FOOTER = 0x78

BATCH_MESSAGE_FORMAT = 0x80013700

# Index of each field in the AMQP `properties` list.
PROPERTY_FIELDS = (
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
)


class MessageFormatError(ValueError):
    """The bytes are not a well-formed AMQP message."""


def scan_sections(payload: bytes) -> list[tuple[int, int, int]]:
    """(descriptor code, start, end) of each section; values are left encoded (decoded lazily)."""
    view = memoryview(payload)
    data = Data()
    sections: list[tuple[int, int, int]] = []
    offset = 0
    size = len(view)
    while offset < size:
        data.clear()
        try:
            consumed = data.decode(view[offset:])
        except Exception as exc:  # proton raises DataException subclasses and OverflowError
            raise MessageFormatError(f"cannot decode section at byte {offset}: {exc}") from exc
        data.rewind()
        data.next()
        if not data.is_described():
            raise MessageFormatError(f"section at byte {offset} is not described")
        data.enter()
        data.next()
        if data.type() != Data.ULONG:
            raise MessageFormatError(f"section at byte {offset} has a non-numeric descriptor")
        sections.append((int(data.get_ulong()), offset, offset + consumed))
        offset += consumed
    return sections


def _section_data(payload: bytes, start: int, end: int) -> Data:
    """A Data positioned on the value of the described section at payload[start:end]."""
    data = Data()
    data.decode(memoryview(payload)[start:end])
    data.rewind()
    data.next()
    data.enter()
    data.next()
    data.next()
    return data


def decode_section_value(payload: bytes, start: int, end: int) -> Any:
    data = _section_data(payload, start, end)
    value = data.get_object()
    return bytes(value) if isinstance(value, memoryview) else value


def _looks_like_message(body: bytes) -> bool:
    return len(body) >= 3 and body[0] == 0 and body[1] == 0x53 and HEADER <= body[2] <= FOOTER


def split_batch(payload: bytes) -> list[bytes] | None:
    """The encoded messages carried by a batch transfer (message-format 0x80013700, one data section
    per encoded message), or None when `payload` is a plain message.

    proton's Python binding does not expose a delivery's message-format, so a batch is recognised
    by its shape: a body made only of data sections that each hold an encoded AMQP message (the
    caller falls back to a plain message if one of them then fails to parse).
    """
    sections = scan_sections(payload)
    bodies: list[bytes] = []
    for code, start, end in sections:
        if code in (0x76, 0x77) or code > FOOTER:  # amqp-sequence / amqp-value body: not a batch
            return None
        if code == DATA:
            data = _section_data(payload, start, end)
            body = bytes(data.get_binary())  # copy while `data` (which owns the buffer) is alive
            if not _looks_like_message(body):
                return None
            bodies.append(body)
    return bodies or None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


class IncomingMessage:
    """A message as a client sent it. Sections are decoded only when something reads them
    (a queue without duplicate detection never decodes anything but the section boundaries)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.size = len(payload)
        self._ranges: dict[int, tuple[int, int]] = {}
        self.bare_start = len(payload)
        for code, start, end in scan_sections(payload):
            if code not in (HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS) and self.bare_start == len(payload):
                self.bare_start = start
            self._ranges.setdefault(code, (start, end))

    def _value(self, code: int) -> Any:
        where = self._ranges.get(code)
        return decode_section_value(self.payload, *where) if where else None

    @cached_property
    def bare(self) -> bytes:
        """properties + application-properties + body + footer, as received."""
        return self.payload[self.bare_start :]

    @cached_property
    def app_props_range(self) -> tuple[int, int] | None:
        where = self._ranges.get(APPLICATION_PROPERTIES)
        return (where[0] - self.bare_start, where[1] - self.bare_start) if where else None

    @cached_property
    def ttl_ms(self) -> int | None:
        header = self._value(HEADER)
        if isinstance(header, list) and len(header) > 2 and header[2] is not None:
            return int(header[2])
        return None

    @cached_property
    def annotations(self) -> dict[Any, Any]:
        value = self._value(MESSAGE_ANNOTATIONS)
        return dict(value) if isinstance(value, dict) else {}

    @cached_property
    def properties(self) -> dict[str, Any]:
        value = self._value(PROPERTIES)
        if not isinstance(value, list):
            return {}
        return {name: value[i] for i, name in enumerate(PROPERTY_FIELDS) if i < len(value)}

    @cached_property
    def application_properties(self) -> dict[str, Any]:
        value = self._value(APPLICATION_PROPERTIES)
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}

    @cached_property
    def message_id(self) -> str | None:
        where = self._ranges.get(PROPERTIES)
        if where is None:
            return None
        data = _section_data(self.payload, *where)
        if data.type() != Data.LIST or not data.enter() or not data.next():
            return None
        return _text(data.get_object())

    @property
    def scheduled_enqueue_time(self) -> float | None:
        if MESSAGE_ANNOTATIONS not in self._ranges:
            return None
        value = self.annotations.get(symbol("x-opt-scheduled-enqueue-time"))
        if value is None:
            return None
        return float(value) / 1000.0

    def text_property(self, name: str) -> str | None:
        return _text(self.properties.get(name))


def parse_message(payload: bytes) -> IncomingMessage:
    """Split one encoded AMQP message into its sections (raises MessageFormatError)."""
    return IncomingMessage(bytes(payload))


def encode_section(code: int, value: Any) -> bytes:
    data = Data()
    data.put_object(Described(ulong(code), value))
    return bytes(data.encode())


@dataclass
class DeliveryView:
    """What is written in front of the bare message for one delivery."""

    delivery_count: int
    annotations: dict[Any, Any] = field(default_factory=dict)
    extra_app_props: dict[str, Any] | None = None
    ttl_ms: int | None = None


def encode_for_delivery(message: IncomingMessage, view: DeliveryView) -> bytes:
    """Header (delivery-count always written) + annotations + the bare message, with optional
    extra application properties (dead-letter reason) merged in."""
    header = encode_section(
        HEADER,
        [False, ubyte(4), uint(view.ttl_ms) if view.ttl_ms is not None else None, False, uint(view.delivery_count)],
    )
    annotations = encode_section(MESSAGE_ANNOTATIONS, view.annotations)
    bare = message.bare
    if view.extra_app_props:
        merged = dict(message.application_properties)
        merged.update(view.extra_app_props)
        props_section = encode_section(APPLICATION_PROPERTIES, merged)
        if message.app_props_range is not None:
            start, end = message.app_props_range
            bare = bare[:start] + props_section + bare[end:]
        else:
            # application-properties follow properties, if any, and precede the body.
            sections = scan_sections(bare) if bare else []
            insert_at = 0
            for code, _, end in sections:
                if code == PROPERTIES:
                    insert_at = end
            bare = bare[:insert_at] + props_section + bare[insert_at:]
    return header + annotations + bare


def ms_timestamp(seconds: float) -> timestamp:
    return timestamp(int(seconds * 1000))
