"""What every benchmark shares: the figure it reports, repeated runs, the table, the JSON results.

A figure measured more than once carries every run; its value is the median and its verdict is taken
on the worst run (the minimum where higher is better, the maximum where lower is better), so a goal
that passes holds on every run, not on a lucky one. These 2-core machines are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Runs per ratio unless a benchmark says otherwise (issue 14: at least 5, median and minimum reported).
RUNS = 5


@dataclass
class Figure:
    benchmark: str
    name: str
    value: float  # the median when there are several runs
    unit: str
    goal: str = ""
    passed: bool | None = None  # None: informative, no goal
    detail: dict[str, object] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)  # every run's value, in order; empty: measured once

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")

    @property
    def minimum(self) -> float:
        return min(self.runs) if self.runs else self.value

    @property
    def maximum(self) -> float:
        return max(self.runs) if self.runs else self.value


def measured(
    benchmark: str,
    name: str,
    runs: Sequence[float],
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    detail: dict[str, object] | None = None,
) -> Figure:
    """A figure from repeated runs: the median as its value, the goal checked on the worst run."""
    if not runs:
        raise ValueError(f"{benchmark}/{name}: no runs")
    values = [float(v) for v in runs]
    goal, passed = "", None
    if at_least is not None:
        goal, passed = f">= {format_value(at_least, unit)}", min(values) >= at_least
    elif at_most is not None:
        goal, passed = f"<= {format_value(at_most, unit)}", max(values) <= at_most
    return Figure(benchmark, name, statistics.median(values), unit, goal, passed, dict(detail or {}), values)


def repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    """`measure()` run `runs` times, in order."""
    return [measure() for _ in range(runs)]


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    except (ValueError, OSError, AttributeError):
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def format_value(value: float, unit: str) -> str:
    if unit in ("x", "ratio"):
        return f"{value:.1f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def table(figures: Sequence[Figure]) -> str:
    rows = [("benchmark", "figure", "runs", "median", "min", "max", "goal", "")]
    for f in figures:
        spread = (format_value(f.minimum, f.unit), format_value(f.maximum, f.unit)) if f.runs else ("", "")
        rows.append((f.benchmark, f.name, str(len(f.runs) or 1), format_value(f.value, f.unit), *spread, f.goal,
                     f.verdict))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(figures: Sequence[Figure], name: str = "latest") -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    rows = [asdict(f) | {"median": f.value, "minimum": f.minimum, "maximum": f.maximum} for f in figures]
    path.write_text(
        json.dumps({"when": datetime.now(UTC).isoformat(), "machine": machine(), "figures": rows}, indent=2)
    )
    return path
