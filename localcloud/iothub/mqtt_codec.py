"""The MQTT 3.1.1 packets an IoT Hub device endpoint needs (server side).

MQTT is not AMQP: a small codec is enough here, and no maintained asyncio broker library exposes
the per-device auth, delivery and PUBACK hooks the emulator needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from .channel import Channel


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class MqttProtocolError(Exception):
    pass


@dataclass(frozen=True)
class Packet:
    type: int
    flags: int
    body: bytes


@dataclass(frozen=True)
class Connect:
    client_id: str
    username: str | None
    password: str | None
    clean_session: bool
    keep_alive: int


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None


MAX_PACKET = 1024 * 1024


async def read_packet(reader: Channel) -> Packet:
    first = (await reader.readexactly(1))[0]
    length, multiplier = 0, 1
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            break
        multiplier *= 128
    else:
        raise MqttProtocolError("malformed remaining length")
    if length > MAX_PACKET:
        raise MqttProtocolError("packet too large")
    return Packet(first >> 4, first & 0x0F, await reader.readexactly(length))


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from(">H", buf, pos)
    return buf[pos + 2 : pos + 2 + size].decode("utf-8"), pos + 2 + size


def _binary(buf: bytes, pos: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from(">H", buf, pos)
    return buf[pos + 2 : pos + 2 + size], pos + 2 + size


def parse_connect(body: bytes) -> Connect:
    name, pos = _string(body, 0)
    if name != "MQTT" or body[pos] != 4:
        raise MqttProtocolError("only MQTT 3.1.1 is supported")
    flags = body[pos + 1]
    (keep_alive,) = struct.unpack_from(">H", body, pos + 2)
    pos += 4
    client_id, pos = _string(body, pos)
    if flags & 0x04:  # will topic + message
        _, pos = _string(body, pos)
        _, pos = _binary(body, pos)
    username = password = None
    if flags & 0x80:
        username, pos = _string(body, pos)
    if flags & 0x40:
        raw, pos = _binary(body, pos)
        password = raw.decode("utf-8")
    return Connect(client_id, username, password, bool(flags & 0x02), keep_alive)


def parse_publish(packet: Packet) -> Publish:
    topic, pos = _string(packet.body, 0)
    qos = (packet.flags >> 1) & 0x03
    packet_id = None
    if qos:
        (packet_id,) = struct.unpack_from(">H", packet.body, pos)
        pos += 2
    return Publish(topic, packet.body[pos:], qos, packet_id)


def parse_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    (packet_id,) = struct.unpack_from(">H", body, 0)
    pos, topics = 2, []
    while pos < len(body):
        topic, pos = _string(body, pos)
        topics.append((topic, body[pos]))
        pos += 1
    return packet_id, topics


def parse_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    (packet_id,) = struct.unpack_from(">H", body, 0)
    pos, topics = 2, []
    while pos < len(body):
        topic, pos = _string(body, pos)
        topics.append(topic)
    return packet_id, topics


def parse_packet_id(body: bytes) -> int:
    return struct.unpack_from(">H", body, 0)[0]


def _encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def encode(ptype: PacketType, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + _encode_length(len(body)) + body


def connack(session_present: bool, return_code: int) -> bytes:
    return encode(PacketType.CONNACK, 0, bytes([1 if session_present else 0, return_code]))


def publish(topic: str, payload: bytes, packet_id: int, dup: bool = False) -> bytes:
    raw_topic = topic.encode()
    body = struct.pack(">H", len(raw_topic)) + raw_topic + struct.pack(">H", packet_id) + payload
    return encode(PacketType.PUBLISH, (0x08 if dup else 0) | 0x02, body)


def puback(packet_id: int) -> bytes:
    return encode(PacketType.PUBACK, 0, struct.pack(">H", packet_id))


def suback(packet_id: int, granted: list[int]) -> bytes:
    return encode(PacketType.SUBACK, 0, struct.pack(">H", packet_id) + bytes(granted))


def unsuback(packet_id: int) -> bytes:
    return encode(PacketType.UNSUBACK, 0, struct.pack(">H", packet_id))


def pingresp() -> bytes:
    return encode(PacketType.PINGRESP, 0, b"")
