"""How the IoT Hub emulator reads a service client's C2D message off the wire."""

from __future__ import annotations

from proton import Message, symbol

from localcloud.iothub.amqp_messages import symbol_text


def test_a_message_without_content_type_or_encoding_has_none() -> None:
    message = Message(body=b"{}")  # proton reports the missing symbols as symbol('None')
    assert symbol_text(message.content_type) is None
    assert symbol_text(message.content_encoding) is None


def test_set_content_type_and_encoding_are_kept() -> None:
    message = Message(body=b"{}", content_type="application/json")
    message.content_encoding = symbol("utf-8")
    assert symbol_text(message.content_type) == "application/json"
    assert symbol_text(message.content_encoding) == "utf-8"
