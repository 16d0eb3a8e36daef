"""Shared Access Signature checking for CBS put-token requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote_plus, urlsplit

DEFAULT_KEY_NAME = "RootManageSharedAccessKey"
# Microsoft's emulator uses this well-known value; it protects nothing (loopback only).
DEFAULT_KEY = "SAS_KEY_VALUE"


class TokenRejected(Exception):
    """The token is malformed, expired, signed with another key, or for another policy."""


@dataclass(frozen=True)
class Grant:
    """What an accepted token allows: every entity path under `scope` (lower-case, no slashes at ends)."""

    scope: str
    expires_at: float

    def covers(self, entity_path: str, now: float) -> bool:
        if now >= self.expires_at:
            return False
        path = entity_path.strip("/").lower()
        return not self.scope or path == self.scope or path.startswith(self.scope + "/")


def resource_path(uri: str) -> str:
    """`sb://host:port/a/b` -> `a/b` (lower-case); a bare path is accepted too."""
    parts = urlsplit(uri)
    path = parts.path if parts.scheme else uri
    return path.strip("/").lower()


@dataclass(frozen=True)
class SasValidator:
    key_name: str
    key: str = field(repr=False)

    def validate(self, token: str, now: float) -> Grant:
        if not token.startswith("SharedAccessSignature "):
            raise TokenRejected("not a SharedAccessSignature token")
        fields = {
            k.lower(): v[0] for k, v in parse_qs(token[len("SharedAccessSignature ") :], strict_parsing=False).items()
        }
        try:
            resource, signature, expiry = fields["sr"], fields["sig"], fields["se"]
        except KeyError as exc:
            raise TokenRejected(f"missing field {exc.args[0]}") from exc
        if fields.get("skn") != self.key_name:
            raise TokenRejected("unknown shared access policy")
        try:
            expires_at = int(expiry)
        except ValueError as exc:
            raise TokenRejected("se is not an integer") from exc
        if expires_at <= now:
            raise TokenRejected("the token has expired")
        expected = base64.b64encode(
            hmac.new(
                self.key.encode("utf-8"), f"{quote_plus(resource)}\n{expires_at}".encode(), hashlib.sha256
            ).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise TokenRejected("invalid signature")
        return Grant(scope=resource_path(resource), expires_at=float(expires_at))
