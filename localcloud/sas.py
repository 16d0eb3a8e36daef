"""Shared access signatures, as both emulators read them: `SharedAccessSignature sr=..&sig=..&se=..[&skn=..]`.

One parser and one validator for IoT Hub and Service Bus. The services differ only in how a key
becomes the HMAC key: IoT Hub keys are base64 and sign with their decoded bytes, Service Bus keys
sign with their UTF-8 bytes (`KeyEncoding`). The string to sign is `<sr as sent>\\n<se>` for both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

PREFIX = "SharedAccessSignature "


class SasError(Exception):
    """The token is malformed, expired, or its signature does not match."""


class KeyEncoding(Enum):
    """How a shared access key becomes the HMAC-SHA256 key."""

    BASE64 = "base64"  # IoT Hub: the key's decoded bytes
    UTF8 = "utf-8"  # Service Bus: the key's own characters

    def key_bytes(self, key: str) -> bytes:
        if self is KeyEncoding.UTF8:
            return key.encode()
        try:
            return base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SasError("the key is not base64") from exc


@dataclass(frozen=True)
class SasToken:
    resource: str  # sr exactly as signed (URL-encoded form)
    signature: str = field(repr=False)  # a credential: never shown
    expiry: int  # se: seconds since the epoch (wall clock)
    key_name: str | None  # skn

    @property
    def resource_decoded(self) -> str:
        return urllib.parse.unquote(self.resource)


def sign(resource: str, key: str, expiry: int, key_encoding: KeyEncoding = KeyEncoding.BASE64) -> str:
    message = f"{resource}\n{expiry}".encode()
    return base64.b64encode(hmac.new(key_encoding.key_bytes(key), message, hashlib.sha256).digest()).decode()


def make_token(
    resource: str,
    key: str,
    key_name: str | None = None,
    ttl_s: float = 3600,
    *,
    key_encoding: KeyEncoding = KeyEncoding.BASE64,
    now: float | None = None,
) -> str:
    """A token built the way the Azure SDKs build one (resource URL-encoded, signature URL-quoted)."""
    sr = urllib.parse.quote(resource, safe="")
    expiry = int((time.time() if now is None else now) + ttl_s)
    signature = urllib.parse.quote(sign(sr, key, expiry, key_encoding), safe="")
    token = f"{PREFIX}sr={sr}&sig={signature}&se={expiry}"
    return token + (f"&skn={key_name}" if key_name else "")


def parse(token: str) -> SasToken:
    if not token.startswith(PREFIX):
        raise SasError("not a SharedAccessSignature")
    fields: dict[str, str] = {}
    for part in token[len(PREFIX) :].split("&"):
        key, sep, value = part.partition("=")
        if not sep:
            raise SasError("malformed field")
        fields[key.lower()] = value
    try:
        return SasToken(
            resource=fields["sr"],
            signature=urllib.parse.unquote(fields["sig"]),
            expiry=int(fields["se"]),
            key_name=urllib.parse.unquote(fields["skn"]) if "skn" in fields else None,
        )
    except (KeyError, ValueError) as exc:
        raise SasError("missing or invalid sr/sig/se") from exc


def verify(
    token: SasToken,
    keys: Iterable[str],
    *,
    key_encoding: KeyEncoding = KeyEncoding.BASE64,
    now: float | None = None,
) -> None:
    """Raise SasError unless the token is unexpired and signed with one of `keys`."""
    if token.expiry <= (time.time() if now is None else now):
        raise SasError("token expired")
    for key in keys:
        try:
            expected = sign(token.resource, key, token.expiry, key_encoding)
        except SasError:
            continue
        if hmac.compare_digest(expected, token.signature):
            return
    raise SasError("signature mismatch")


def split_resource(resource: str) -> tuple[str, str]:
    """A decoded sr -> (host without scheme or port, path without slashes at its ends), both lower-case."""
    text = resource.lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, _, path = text.partition("/")
    return host.split(":")[0], path.strip("/")
