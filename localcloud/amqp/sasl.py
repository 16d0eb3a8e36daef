"""Server side of the AMQP SASL layer (AMQP 1.0 part 5.3), fed bytes and answering bytes.

Why not proton's own: uamqp offers only the vendor mechanism MSSBCBS, and proton's built-in SASL
server offers only ANONYMOUS and EXTERNAL, so it cannot complete a uamqp handshake. The frames are
still encoded and decoded with proton's codec (`proton.Data`); the AMQP layer that follows runs in a
proton Transport without SASL.

Authorisation is mostly decided later, by CBS put-token: MSSBCBS and ANONYMOUS always succeed here.
PLAIN credentials go to the service's verifier, which may refuse them (sasl-outcome `auth`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from proton import UNDESCRIBED, Array, Data, Described, symbol, ubyte, ulong

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
MAX_SASL_FRAME = 65536
_FRAME_HEADER = struct.Struct(">IBBH")
_SASL_FRAME_TYPE = 1


class Mechanism(StrEnum):
    ANONYMOUS = "ANONYMOUS"
    PLAIN = "PLAIN"
    MSSBCBS = "MSSBCBS"  # Microsoft's "authorise later through CBS", the only one uamqp offers


class _Performative(IntEnum):
    MECHANISMS = 0x40
    INIT = 0x41
    OUTCOME = 0x44


class SaslCode(IntEnum):
    OK = 0
    AUTH = 1  # authentication failed: the credentials were refused


class SaslError(Exception):
    """The peer broke the SASL exchange (not a frame, wrong performative, unknown mechanism)."""


@dataclass(frozen=True)
class SaslCredentials:
    mechanism: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


SaslVerifier = Callable[[SaslCredentials], bool]


def encode_frame(performative: int, fields: list[object]) -> bytes:
    data = Data()
    data.put_object(Described(ulong(performative), fields))  # type: ignore[arg-type]
    body = bytes(data.encode())
    return _FRAME_HEADER.pack(8 + len(body), 2, _SASL_FRAME_TYPE, 0) + body


def decode_frame_body(body: bytes) -> tuple[int, list[object]]:
    data = Data()
    data.decode(body)
    data.rewind()
    data.next()
    value = data.get_object()
    if not isinstance(value, Described) or not isinstance(value.value, list | type(None)):
        raise SaslError("SASL frame body is not a described list")
    # Binary values are memoryviews into the Data object's buffer: copy them before it is freed.
    items: list[object] = [bytes(v) if isinstance(v, memoryview) else v for v in value.value or []]
    descriptor = value.descriptor
    if not isinstance(descriptor, int):
        raise SaslError("SASL frame with a symbolic descriptor")
    return int(descriptor), items


def _plain_credentials(response: object) -> SaslCredentials:
    """PLAIN's initial response is `authzid NUL authcid NUL password`."""
    if not isinstance(response, bytes):
        return SaslCredentials(Mechanism.PLAIN)
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return SaslCredentials(Mechanism.PLAIN)
    return SaslCredentials(Mechanism.PLAIN, parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace"))


class SaslServer:
    """One negotiation: `start()` after the client's SASL header, then `feed()` until `done`."""

    def __init__(self, mechanisms: tuple[str, ...], verify: SaslVerifier) -> None:
        self._mechanisms = mechanisms
        self._verify = verify
        self._buffer = bytearray()
        self.done = False
        self.accepted = False

    def start(self) -> bytes:
        offered = Array(UNDESCRIBED, Data.SYMBOL, *(symbol(m) for m in self._mechanisms))  # type: ignore[arg-type]
        return SASL_HEADER + encode_frame(_Performative.MECHANISMS, [offered])

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Returns (bytes to send, bytes past the SASL exchange); raises SaslError on a broken exchange."""
        self._buffer += data
        if self.done or len(self._buffer) < 8:
            return b"", b""
        size, data_offset, frame_type, _channel = _FRAME_HEADER.unpack_from(self._buffer)
        if frame_type != _SASL_FRAME_TYPE or not 8 <= size <= MAX_SASL_FRAME or data_offset < 2:
            raise SaslError("not a SASL frame")
        if len(self._buffer) < size:
            return b"", b""
        body = bytes(self._buffer[data_offset * 4 : size])
        rest = bytes(self._buffer[size:])
        self._buffer.clear()
        performative, fields = decode_frame_body(body)
        if performative != _Performative.INIT or not fields:
            raise SaslError("expected sasl-init")
        mechanism = str(fields[0])
        if mechanism not in self._mechanisms:
            raise SaslError(f"unsupported mechanism {mechanism}")
        credentials = (
            _plain_credentials(fields[1] if len(fields) > 1 else None)
            if mechanism == Mechanism.PLAIN
            else SaslCredentials(mechanism)
        )
        self.accepted = self._verify(credentials)
        self.done = True
        code = SaslCode.OK if self.accepted else SaslCode.AUTH
        return encode_frame(_Performative.OUTCOME, [ubyte(code)]), rest
