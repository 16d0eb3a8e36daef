"""localcloud.sas: one parser and validator for both emulators' tokens."""

from __future__ import annotations

import base64

import pytest

from localcloud import sas

HUB_KEY = base64.b64encode(b"k" * 32).decode()


def test_iothub_token_verifies_with_its_base64_key_only() -> None:
    token = sas.parse(sas.make_token("myhub.azure-devices.net", HUB_KEY, "service"))
    assert (token.resource, token.key_name) == ("myhub.azure-devices.net", "service")
    sas.verify(token, [HUB_KEY])
    with pytest.raises(sas.SasError, match="signature"):
        sas.verify(token, [base64.b64encode(b"x" * 32).decode()])


def test_servicebus_token_signs_with_the_utf8_key() -> None:
    text = sas.make_token("sb://ns.servicebus.windows.net/queue", "plain-key", "Root", key_encoding=sas.KeyEncoding.UTF8)
    token = sas.parse(text)
    assert token.resource == "sb%3A%2F%2Fns.servicebus.windows.net%2Fqueue"
    sas.verify(token, ["plain-key"], key_encoding=sas.KeyEncoding.UTF8)
    with pytest.raises(sas.SasError):
        sas.verify(token, ["plain-key"])  # read as base64, the same characters are another key


def test_expired_and_malformed_tokens_are_refused() -> None:
    expired = sas.parse(sas.make_token("h", HUB_KEY, ttl_s=-1))
    with pytest.raises(sas.SasError, match="expired"):
        sas.verify(expired, [HUB_KEY])
    for text in ("Bearer abc", "SharedAccessSignature sr=h&sig=x", "SharedAccessSignature sr=h&se=soon&sig=x", "SharedAccessSignature junk"):
        with pytest.raises(sas.SasError):
            sas.parse(text)


def test_now_is_the_callers_clock() -> None:
    token = sas.parse(sas.make_token("h", HUB_KEY, ttl_s=10, now=1000))
    assert token.expiry == 1010
    sas.verify(token, [HUB_KEY], now=1009)
    with pytest.raises(sas.SasError, match="expired"):
        sas.verify(token, [HUB_KEY], now=1010)


def test_the_signature_never_shows_in_a_repr() -> None:
    token = sas.parse(sas.make_token("h", HUB_KEY))
    assert token.signature and token.signature not in repr(token)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("https://MyHub.azure-devices.net", ("myhub.azure-devices.net", "")),
        ("myhub.azure-devices.net/devices/D1/", ("myhub.azure-devices.net", "devices/d1")),
        ("sb://localhost:5672/topic/Subscriptions/all", ("localhost", "topic/subscriptions/all")),
    ],
)
def test_split_resource(resource: str, expected: tuple[str, str]) -> None:
    assert sas.split_resource(resource) == expected
