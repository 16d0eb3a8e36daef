"""Who may use which entity: SAS tokens (CBS put-token) and SASL PLAIN, checked with `localcloud.sas`.

A token authorises every entity path under its resource (`sb://host/queue` covers `queue` and its
subscriptions or dead-letter queue); a namespace-level token covers everything. Service Bus keys sign
with their UTF-8 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from localcloud import sas
from localcloud.amqp.sasl import SaslCredentials
from localcloud.amqp.tokens import Authorization, TokenRefused

DEFAULT_KEY_NAME = "RootManageSharedAccessKey"
# Microsoft's emulator uses this well-known value; it protects nothing (loopback only).
DEFAULT_KEY = "SAS_KEY_VALUE"


@dataclass(frozen=True)
class NamespaceKeys:
    key_name: str
    key: str = field(repr=False)

    def validate(self, token: str, now: float) -> Authorization:
        """CBS put-token (`TokenValidator`)."""
        try:
            parsed = sas.parse(token)
            if parsed.key_name != self.key_name:
                raise sas.SasError("unknown shared access policy")
            sas.verify(parsed, [self.key], key_encoding=sas.KeyEncoding.UTF8, now=now)
        except sas.SasError as exc:
            raise TokenRefused(f"InvalidSignature: {exc}") from exc
        host, path = sas.split_resource(parsed.resource_decoded)
        return Authorization(audience=f"{host}/{path}", scope=path, expires_at=float(parsed.expiry))

    def sasl_plain(self, credentials: SaslCredentials, _now: float) -> Authorization:
        """SASL PLAIN with the key name and the key itself: the whole namespace, for the connection's life."""
        if credentials.username != self.key_name or credentials.password != self.key:
            raise TokenRefused("SASL PLAIN: unknown key name or wrong key")
        return Authorization(audience="sasl-plain", scope="", expires_at=math.inf)
