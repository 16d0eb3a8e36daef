"""Server side of the AMQP SASL layer, run in front of a proton Transport that has no SASL.

Why by hand: uamqp offers only the vendor mechanism MSSBCBS and proton's built-in SASL server
offers only ANONYMOUS/EXTERNAL, so proton's own SASL cannot complete a uamqp handshake. The frames
are still encoded/decoded with proton's codec (`proton.Data`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proton import UNDESCRIBED, Array, Data, Described, symbol, ubyte, ulong

from .channel import Channel

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
MECHANISMS = ("MSSBCBS", "PLAIN", "ANONYMOUS")
_SASL_MECHANISMS = 0x40
_SASL_INIT = 0x41
_SASL_OUTCOME = 0x44
_FRAME_SASL = 1
MAX_SASL_FRAME = 65536


class SaslError(Exception):
    pass


@dataclass(frozen=True)
class SaslResult:
    mechanism: str
    username: str | None = None
    password: str | None = None


def encode_frame(descriptor: int, fields: list[object]) -> bytes:
    data = Data()
    data.put_object(Described(ulong(descriptor), fields))
    body = bytes(data.encode())
    return struct.pack(">IBBH", 8 + len(body), 2, _FRAME_SASL, 0) + body


def decode_frame(body: bytes) -> tuple[int, list[object]]:
    data = Data()
    data.decode(body)
    data.rewind()
    data.next()
    obj = data.get_object()
    if not isinstance(obj, Described):
        raise SaslError("SASL frame body is not a described list")
    # Binary values are memoryviews into the Data object's buffer: copy them before it is freed.
    return int(obj.descriptor), [bytes(v) if isinstance(v, memoryview) else v for v in obj.value or []]


async def read_frame(reader: Channel) -> tuple[int, list[object]]:
    size, doff, ftype, _channel = struct.unpack(">IBBH", await reader.readexactly(8))
    if ftype != _FRAME_SASL or size > MAX_SASL_FRAME or size < 8:
        raise SaslError("not a SASL frame")
    payload = await reader.readexactly(size - 8)
    return decode_frame(payload[doff * 4 - 8 :])


async def serve_sasl(channel: Channel) -> SaslResult:
    """Run after the client's SASL header was read; returns once sasl-outcome(ok) is written.

    Authorisation is decided later (CBS put-token, or PLAIN credentials checked by the caller):
    the outcome here is always ok so that uamqp proceeds to CBS as it does against Azure.
    """
    mechs = Array(UNDESCRIBED, Data.SYMBOL, *(symbol(m) for m in MECHANISMS))
    channel.write(SASL_HEADER + encode_frame(_SASL_MECHANISMS, [mechs]))
    await channel.drain()
    descriptor, fields = await read_frame(channel)
    if descriptor != _SASL_INIT or not fields:
        raise SaslError("expected sasl-init")
    mechanism = str(fields[0])
    if mechanism not in MECHANISMS:
        raise SaslError(f"unsupported mechanism {mechanism}")
    result = SaslResult(mechanism)
    if mechanism == "PLAIN" and len(fields) > 1 and fields[1] is not None:
        parts = bytes(fields[1]).split(b"\x00")  # type: ignore[call-overload]
        if len(parts) == 3:
            result = SaslResult(mechanism, parts[1].decode(), parts[2].decode())
    channel.write(encode_frame(_SASL_OUTCOME, [ubyte(0)]))
    await channel.drain()
    return result
