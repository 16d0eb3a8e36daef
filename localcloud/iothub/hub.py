"""What every endpoint of the hub shares: configuration, state, who may do what, and the fault switches."""

from __future__ import annotations

from localcloud.emulator.faults import Faults

from .auth import HubAuthority
from .config import HubConfig
from .store import HubStore


class Hub:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.store = HubStore(config)
        self.auth = HubAuthority(config, self.store)
        self.faults = Faults()
