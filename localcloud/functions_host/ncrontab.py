"""Six-field NCRONTAB schedules ("{second} {minute} {hour} {day} {month} {day-of-week}") and
TimeSpan schedules ("hh:mm:ss"), as accepted by the timer trigger. Times are UTC."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from localcloud.functions_host.app import AppError, parse_timespan

_MONTHS = {
    m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (low, high, names) per field
_NONE: dict[str, int] = {}
_FIELDS = ((0, 59, _NONE), (0, 59, _NONE), (0, 23, _NONE), (1, 31, _NONE), (1, 12, _MONTHS), (0, 6, _DAYS))


def _value(text: str, names: dict[str, int], low: int, high: int, expr: str) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    try:
        value = int(text)
    except ValueError:
        raise AppError(f"invalid schedule '{expr}': '{text}' is not a number") from None
    if high == 6 and value == 7:  # Sunday may be written 7
        value = 0
    if not low <= value <= high:
        raise AppError(f"invalid schedule '{expr}': {value} out of range {low}-{high}")
    return value


def _parse_field(text: str, low: int, high: int, names: dict[str, int], expr: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise AppError(f"invalid schedule '{expr}': bad step '{item}'")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, names, low, high, expr), _value(b, names, low, high, expr)
        else:
            start = _value(base, names, low, high, expr)
            end = high if step_text else start
        if start > end:
            raise AppError(f"invalid schedule '{expr}': range '{base}' is reversed")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 6:
            raise AppError(f"invalid schedule '{expression}': NCRONTAB needs 6 fields, found {len(fields)}")
        parsed = [
            _parse_field(f, lo, hi, names, expression) for f, (lo, hi, names) in zip(fields, _FIELDS, strict=True)
        ]
        return cls(expression, *parsed)

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """First occurrence strictly after `after` (aware UTC)."""
        t = after.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
                continue
            if t.day not in self.days or (t.isoweekday() % 7) not in self.weekdays:
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if t.hour not in self.hours:
                t = (t + dt.timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if t.minute not in self.minutes:
                t = (t + dt.timedelta(minutes=1)).replace(second=0)
                continue
            if t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
                continue
            return t
        raise AppError(f"schedule '{self.expression}' never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    expression: str
    interval: float

    def next_after(self, after: dt.datetime) -> dt.datetime:
        return after.astimezone(dt.UTC) + dt.timedelta(seconds=self.interval)


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    text = expression.strip()
    if ":" in text and len(text.split()) == 1:
        seconds = parse_timespan(text, 0.0)
        if seconds <= 0:
            raise AppError(f"invalid schedule '{expression}': interval must be positive")
        return IntervalSchedule(text, seconds)
    return CronSchedule.parse(text)
