"""Timer triggers: fire a function on its NCRONTAB schedule (and once at startup if runOnStartup)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from localcloud.functions_host.app import FunctionSpec, expand_settings
from localcloud.functions_host.invocation import FunctionInvoker
from localcloud.functions_host.ncrontab import parse_schedule

TIMER_REASON = "Timer fired at {when}"
# A firing later than this after its scheduled time is reported as past due.
PAST_DUE_AFTER = dt.timedelta(seconds=5)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def timer_request_json(status: dict[str, str] | None, past_due: bool) -> str:
    """The TimerInfo payload the Azure host passes to a timer-triggered function."""
    return json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due})


def schedule_status(last: dt.datetime | None, this: dt.datetime, updated: dt.datetime) -> dict[str, str]:
    """Status as the timer listener recorded it at the previous run: during an invocation `Last` is the
    previous occurrence and `Next` the current one (DateTime.MinValue when there was none)."""
    return {"Last": _iso(last) or "0001-01-01T00:00:00", "Next": _iso(this) or "", "LastUpdated": _iso(updated) or ""}


class TimerRunner:
    def __init__(self, host: FunctionInvoker, spec: FunctionSpec) -> None:
        trigger = spec.trigger
        self._host = host
        self._spec = spec
        self._schedule = parse_schedule(expand_settings(str(trigger.get("schedule", "")), host.app.settings))
        self._run_on_startup = bool(trigger.get("runOnStartup", False))

    async def _fire(self, status: dict[str, str] | None, past_due: bool) -> None:
        protos = self._host.protos
        payload = protos.TypedData(json=timer_request_json(status, past_due))
        reason = TIMER_REASON.format(when=dt.datetime.now(dt.UTC).isoformat())
        await self._host.invoke(self._spec, {self._spec.trigger["name"]: payload}, {}, reason)

    async def run(self) -> None:
        last: dt.datetime | None = None
        updated = dt.datetime.now(dt.UTC)
        if self._run_on_startup:
            await self._fire(None, False)
        while True:
            due = self._schedule.next_after(dt.datetime.now(dt.UTC))
            while (remaining := (due - dt.datetime.now(dt.UTC)).total_seconds()) > 0:
                await asyncio.sleep(min(remaining, 60.0))
            past_due = dt.datetime.now(dt.UTC) - due > PAST_DUE_AFTER
            # one invocation at a time per timer, like the host's singleton lock
            await self._fire(schedule_status(last, due, updated), past_due)
            last, updated = due, dt.datetime.now(dt.UTC)
