"""What a service plugs into the engine: its link handler, token validator, SASL mechanisms and policies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .links import LinkHandler
from .management import ManagementHandler
from .sasl import SaslCredentials
from .tokens import Authorization, ExpiryAction, TokenValidator

#: SASL PLAIN credentials -> what they authorise (None: nothing yet, CBS may follow); raise
#: TokenRefused to fail the SASL exchange.
PlainAuthenticator = Callable[[SaslCredentials, float], Authorization | None]


class FaultSwitches(Protocol):
    """The fault-injection switches the engine honours (the emulator's `Faults` has more)."""

    @property
    def disposition_delay_s(self) -> float:
        """Settle each incoming transfer this much later (0: at once)."""
        ...

    def refusing(self) -> bool:
        """True while new connections must be dropped at once."""
        ...


@dataclass(frozen=True)
class AmqpService:
    container_id: str
    sasl_mechanisms: tuple[str, ...]
    links: LinkHandler
    tokens: TokenValidator
    expiry_action: ExpiryAction
    management: ManagementHandler | None = None
    plain: PlainAuthenticator | None = None
