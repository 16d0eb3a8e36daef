"""The engine's server-side SASL: the frames a client sends in, the frames it answers (proton's codec)."""

from __future__ import annotations

import pytest
from proton import ProtonException, symbol

from localcloud.amqp.sasl import (
    AMQP_HEADER,
    SASL_HEADER,
    Mechanism,
    SaslCode,
    SaslCredentials,
    SaslError,
    SaslServer,
    decode_frame_body,
    encode_frame,
)

MECHANISMS = (Mechanism.MSSBCBS, Mechanism.PLAIN, Mechanism.ANONYMOUS)
SASL_INIT = 0x41


def sasl_init(mechanism: str, response: bytes | None = None) -> bytes:
    return encode_frame(SASL_INIT, [symbol(mechanism), response])


def outcome_code(frame: bytes) -> int:
    performative, fields = decode_frame_body(frame[8:])
    assert performative == 0x44
    return int(fields[0])  # type: ignore[call-overload]


def test_offers_the_services_mechanisms_after_the_header() -> None:
    start = SaslServer(MECHANISMS, lambda _c: True).start()
    assert start.startswith(SASL_HEADER)
    performative, fields = decode_frame_body(start[len(SASL_HEADER) + 8 :])
    assert performative == 0x40 and [str(m) for m in fields[0]] == ["MSSBCBS", "PLAIN", "ANONYMOUS"]  # type: ignore[attr-defined]


def test_mssbcbs_succeeds_and_hands_back_the_amqp_bytes_that_followed() -> None:
    seen: list[SaslCredentials] = []
    server = SaslServer(MECHANISMS, lambda c: seen.append(c) or True)
    reply, rest = server.feed(sasl_init("MSSBCBS") + AMQP_HEADER)
    assert (server.done, server.accepted, outcome_code(reply), rest) == (True, True, SaslCode.OK, AMQP_HEADER)
    assert seen == [SaslCredentials("MSSBCBS")]


def test_a_frame_split_across_reads_is_assembled() -> None:
    server = SaslServer(MECHANISMS, lambda _c: True)
    frame = sasl_init("ANONYMOUS")
    assert server.feed(frame[:5]) == (b"", b"") and not server.done
    reply, _ = server.feed(frame[5:])
    assert server.done and outcome_code(reply) == SaslCode.OK


def test_plain_credentials_reach_the_verifier_which_may_refuse_them() -> None:
    seen: list[SaslCredentials] = []
    server = SaslServer(MECHANISMS, lambda c: seen.append(c) or False)
    reply, _ = server.feed(sasl_init("PLAIN", b"\x00user\x00secret"))
    assert outcome_code(reply) == SaslCode.AUTH and not server.accepted
    assert (seen[0].username, seen[0].password) == ("user", "secret")
    assert "secret" not in repr(seen[0])


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x10\x02\x01\x00\x00" + b"\xff" * 8,  # a SASL frame that is not AMQP-encoded
        b"\x00\x00\x00\x0c\x02\x00\x00\x00\xde\xad\xbe\xef",  # an AMQP frame type, not SASL
        encode_frame(0x44, [0]),  # an outcome from the client
    ],
)
def test_garbage_raises_what_the_engine_turns_into_a_dropped_connection(garbage: bytes) -> None:
    with pytest.raises((SaslError, ProtonException)):
        SaslServer(MECHANISMS, lambda _c: True).feed(garbage)


def test_an_unoffered_mechanism_is_refused() -> None:
    with pytest.raises(SaslError, match="EXTERNAL"):
        SaslServer(MECHANISMS, lambda _c: True).feed(sasl_init("EXTERNAL"))
