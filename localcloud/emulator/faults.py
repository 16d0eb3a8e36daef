"""Fault switches, the same in every emulator (set over the admin API, cleared by reset)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Faults:
    refuse_until: float = 0.0  # monotonic deadline: new connections are dropped at once until then
    disposition_delay_s: float = 0.0  # each incoming transfer is settled this much later (a round trip)

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until

    def refuse_for(self, seconds: float) -> None:
        self.refuse_until = time.monotonic() + seconds

    def clear(self) -> None:
        self.refuse_until = 0.0
        self.disposition_delay_s = 0.0
