"""Shared access signatures: build and verify `SharedAccessSignature sr=..&sig=..&se=..[&skn=..]`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass


class SasError(Exception):
    """The token is malformed, expired, or its signature does not match."""


@dataclass(frozen=True)
class SasToken:
    resource: str  # sr exactly as signed (URL-encoded form)
    signature: str
    expiry: int
    key_name: str | None

    @property
    def resource_decoded(self) -> str:
        return urllib.parse.unquote(self.resource)


def sign(resource: str, key_b64: str, expiry: int) -> str:
    digest = hmac.new(base64.b64decode(key_b64), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def make_token(resource: str, key_b64: str, key_name: str | None = None, ttl_s: int = 3600) -> str:
    """Build a token the way the Azure SDKs do (resource URL-encoded, signature URL-quoted)."""
    sr = urllib.parse.quote(resource, safe="")
    expiry = int(time.time() + ttl_s)
    token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sign(sr, key_b64, expiry), safe='')}&se={expiry}"
    return token + (f"&skn={key_name}" if key_name else "")


def parse(token: str) -> SasToken:
    prefix = "SharedAccessSignature "
    if not token.startswith(prefix):
        raise SasError("not a SharedAccessSignature")
    fields: dict[str, str] = {}
    for part in token[len(prefix) :].split("&"):
        key, sep, value = part.partition("=")
        if not sep:
            raise SasError("malformed field")
        fields[key] = value
    try:
        return SasToken(
            resource=fields["sr"],
            signature=urllib.parse.unquote(fields["sig"]),
            expiry=int(fields["se"]),
            key_name=fields.get("skn"),
        )
    except (KeyError, ValueError) as exc:
        raise SasError("missing or invalid sr/sig/se") from exc


def verify(token: SasToken, keys: list[str], now: float | None = None) -> None:
    """Raise SasError unless the token is unexpired and signed with one of `keys`."""
    if token.expiry < (time.time() if now is None else now):
        raise SasError("token expired")
    for key in keys:
        try:
            expected = sign(token.resource, key, token.expiry)
        except ValueError:
            continue
        if hmac.compare_digest(expected, token.signature):
            return
    raise SasError("signature mismatch")


def resource_host(resource: str) -> tuple[str, str]:
    """Split a decoded sr into (host without port or scheme, path) both lower-cased."""
    text = resource.lower()
    for scheme in ("https://", "amqps://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    host, _, path = text.partition("/")
    return host.split(":")[0], "/" + path if path else ""
