"""What every endpoint shares: configuration, state, SAS checks and injected faults."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass

from . import sas
from .config import HubConfig, Policy
from .store import HubStore


@dataclass
class Faults:
    refuse_until: float = 0.0  # monotonic deadline: new connections are closed at once until then
    disposition_delay_s: float = 0.0  # each C2D transfer is settled this much later

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until


class Hub:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.store = HubStore(config)
        self.faults = Faults()

    def _host_ok(self, resource: str) -> tuple[bool, str]:
        host, path = sas.resource_host(urllib.parse.unquote(resource))
        return host in (self.config.hostname.lower(), "127.0.0.1", "localhost"), path

    def check_service_token(self, token_text: str, right: str = "ServiceConnect") -> Policy:
        """Raise sas.SasError unless the token is a valid hub-level policy token with `right`."""
        token = sas.parse(token_text)
        ok, path = self._host_ok(token.resource)
        if not ok or path.strip("/"):
            raise sas.SasError("token audience is not this hub")
        policy = self.config.policy(token.key_name or "")
        if policy is None:
            raise sas.SasError("unknown shared access policy")
        if right not in policy.rights:
            raise sas.SasError(f"policy lacks {right}")
        sas.verify(token, policy.keys())
        return policy

    def check_device_token(self, token_text: str, device_id: str) -> None:
        """Device-scoped token (sr=<host>/devices/<id>) signed with the device key or a DeviceConnect policy."""
        token = sas.parse(token_text)
        ok, path = self._host_ok(token.resource)
        if not ok or path.rstrip("/") != f"/devices/{device_id.lower()}":
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
