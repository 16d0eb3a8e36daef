"""What the admin API asks of an emulator (both emulators implement it)."""

from __future__ import annotations

from typing import Any, Protocol

from .faults import Faults


class EmulatorControl(Protocol):
    @property
    def faults(self) -> Faults: ...

    @property
    def protocols(self) -> tuple[str, ...]:
        """The protocols whose connections `drop_connections` can drop (e.g. amqp, mqtt)."""
        ...

    def drop_connections(self, protocol: str = "all") -> int:
        """Abort open connections of `protocol` (or all); returns how many."""
        ...

    def limits(self) -> dict[str, Any]:
        """The run-time limits in force."""
        ...

    def set_limits(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Override limits until reset; raise TypeError/ValueError for unknown names or bad values."""
        ...

    def reset(self) -> None:
        """Back to the configured state: configured entities or devices, empty queues, no faults, configured limits."""
        ...

    def state(self) -> dict[str, Any]:
        """Queues, counters and connections for inspection (no message bodies, no keys)."""
        ...
