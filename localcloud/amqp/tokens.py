"""What a connection is authorised for: the CBS tokens it put, their expiry, and the links each one authorised.

Each accepted token is recorded under its audience (the resource it was issued for); a later token
for the same audience on the same connection replaces it (a renewal). A token's expiry is its `se`
(wall clock, as the clients mint it), or earlier when the service caps token lifetimes
(`TokenPolicy.max_lifetime_s`, so tests can shorten any client's token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from proton import Link


class TokenRefused(Exception):
    """The token is malformed, expired, for another resource, or not signed with a known key."""


@dataclass(frozen=True)
class Authorization:
    """What a valid token grants, as the service's validator read it."""

    audience: str  # the resource the token is for, normalised: renewals replace per audience
    scope: str  # entity path prefix it covers, lower-case; "" covers every path
    expires_at: float  # the token's se (seconds since the epoch); math.inf: never

    def covers(self, path: str) -> bool:
        wanted = path.strip("/").lower()
        return not self.scope or wanted == self.scope or wanted.startswith(self.scope + "/")


class TokenValidator(Protocol):
    def validate(self, token: str, now: float) -> Authorization:
        """Raise TokenRefused unless `token` is valid for this service at `now`."""
        ...


@dataclass(frozen=True)
class TokenPolicy:
    """Run-time knobs: enforce expiry on open connections; cap every token's lifetime."""

    enforce_expiry: bool = True
    max_lifetime_s: float | None = None


class ExpiryAction(Enum):
    """What a service does when a token that authorised links expires without renewal."""

    CLOSE_CONNECTION = "close-connection"  # IoT Hub
    DETACH_LINKS = "detach-links"  # Service Bus


@dataclass
class TokenStats:
    accepted: int = 0
    refused: int = 0
    renewed: int = 0
    expired: int = 0
    connections_closed_on_expiry: int = 0
    links_detached_on_expiry: int = 0


@dataclass
class TokenRecord:
    authorization: Authorization
    accepted_at: float
    expires_at: float  # min(se, accepted_at + max lifetime)


@dataclass
class ConnectionTokens:
    """The tokens of one connection and the links each authorised."""

    _records: dict[str, TokenRecord] = field(default_factory=dict)
    _bound: dict[Link, str] = field(default_factory=dict)  # link -> audience of the token that authorised it

    def put(self, authorization: Authorization, now: float, policy: TokenPolicy) -> bool:
        """Record an accepted token; True when it renews one for the same audience."""
        expires_at = authorization.expires_at
        if policy.max_lifetime_s is not None:
            expires_at = min(expires_at, now + policy.max_lifetime_s)
        renewed = authorization.audience in self._records
        self._records[authorization.audience] = TokenRecord(authorization, now, expires_at)
        return renewed

    def covering(self, path: str, now: float, policy: TokenPolicy) -> TokenRecord | None:
        for record in self._records.values():
            if record.authorization.covers(path) and (not policy.enforce_expiry or record.expires_at > now):
                return record
        return None

    def bind(self, link: Link, record: TokenRecord) -> None:
        self._bound[link] = record.authorization.audience

    def unbind(self, link: Link) -> None:
        self._bound.pop(link, None)

    def next_expiry(self) -> float | None:
        earliest = min((r.expires_at for r in self._records.values()), default=math.inf)
        return None if earliest == math.inf else earliest

    def pop_expired(self, now: float) -> list[tuple[TokenRecord, list[Link]]]:
        """Forget the tokens past their expiry; each with the links it authorised (unbound here)."""
        expired = []
        for audience, record in list(self._records.items()):
            if record.expires_at <= now:
                del self._records[audience]
                links = [link for link, bound in self._bound.items() if bound == audience]
                for link in links:
                    del self._bound[link]
                expired.append((record, links))
        return expired
