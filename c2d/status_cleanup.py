"""StatusCleanup's logic: drop status and journal rows past their retention (default 7 days, beyond
IoT Hub's 2-day maximum message TTL, so no row goes while its message can still have an outcome)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from c2d.config import StatusSettings
from c2d.logs import log_event
from c2d.status_store import StatusStore

logger = logging.getLogger("c2d.status")


def remove_old_rows(
    store: StatusStore, settings: StatusSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> int:
    cutoff = now() - timedelta(days=settings.retention_days)
    removed = store.remove_older_than(cutoff)
    log_event(logger, "status-cleanup", removed=removed, cutoff=cutoff.isoformat(timespec="seconds"))
    return removed
