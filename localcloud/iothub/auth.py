"""Who may do what on the hub: service tokens (hub-level policies) and device tokens, checked with `localcloud.sas`.

Also the CBS validator of the AMQP endpoint: a valid service token authorises every link of its
connection until it expires (its audience is the hub's host name).
"""

from __future__ import annotations

import logging

from localcloud import sas
from localcloud.amqp.sasl import SaslCredentials
from localcloud.amqp.tokens import Authorization, TokenRefused

from .config import HubConfig
from .store import HubStore

log = logging.getLogger(__name__)


class HubAuthority:
    def __init__(self, config: HubConfig, store: HubStore) -> None:
        self.config = config
        self.store = store

    def _host_ok(self, token: sas.SasToken) -> tuple[bool, str]:
        host, path = sas.split_resource(token.resource_decoded)
        return host in (self.config.hostname.lower(), "127.0.0.1", "localhost"), path

    def check_service_token(
        self, token_text: str, right: str = "ServiceConnect", now: float | None = None
    ) -> sas.SasToken:
        """Raise sas.SasError unless the token is a valid hub-level policy token with `right`."""
        token = sas.parse(token_text)
        ok, path = self._host_ok(token)
        if not ok or path:
            raise sas.SasError("token audience is not this hub")
        policy = self.config.policy(token.key_name or "")
        if policy is None:
            raise sas.SasError("unknown shared access policy")
        if right not in policy.rights:
            raise sas.SasError(f"policy lacks {right}")
        sas.verify(token, policy.keys(), now=now)
        return token

    def check_device_token(self, token_text: str, device_id: str) -> None:
        """Device-scoped token (sr=<host>/devices/<id>) signed with the device key or a DeviceConnect policy."""
        token = sas.parse(token_text)
        ok, path = self._host_ok(token)
        if not ok or path != f"devices/{device_id.lower()}":
            raise sas.SasError("token audience is not this device")
        device = self.store.devices.get(device_id)
        if device is None:
            raise sas.SasError("unknown device")
        if token.key_name:
            policy = self.config.policy(token.key_name)
            if policy is None or "DeviceConnect" not in policy.rights:
                raise sas.SasError("policy lacks DeviceConnect")
            sas.verify(token, policy.keys())
        else:
            sas.verify(token, device.keys())

    # ---- the AMQP endpoint's token checks ---------------------------------------------------
    def validate(self, token: str, now: float) -> Authorization:
        """CBS put-token: a ServiceConnect token for this hub authorises the whole connection."""
        try:
            checked = self.check_service_token(token, now=now)
        except sas.SasError as exc:
            raise TokenRefused(f"Unauthorized: {exc}") from exc
        host, _ = sas.split_resource(checked.resource_decoded)
        return Authorization(audience=host, scope="", expires_at=float(checked.expiry))

    def sasl_plain(self, credentials: SaslCredentials, now: float) -> Authorization | None:
        """SASL PLAIN with a SAS token as the password authorises like a put-token; a bad one authorises
        nothing (the links are refused later), as before CBS."""
        try:
            return self.validate(credentials.password or "", now)
        except TokenRefused as exc:
            log.info("SASL PLAIN token refused: %s", exc)
            return None
