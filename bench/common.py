"""What every benchmark shares: the figure it reports, the table, the JSON results."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    benchmark: str
    name: str
    value: float
    unit: str
    goal: str = ""
    passed: bool | None = None  # None: informative, no goal
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")


def machine() -> dict[str, object]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def format_value(value: float, unit: str) -> str:
    if unit in ("x", "ratio"):
        return f"{value:.1f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def table(figures: Sequence[Figure]) -> str:
    rows = [("benchmark", "figure", "value", "goal", "")]
    rows += [(f.benchmark, f.name, format_value(f.value, f.unit), f.goal, f.verdict) for f in figures]
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(figures: Sequence[Figure], name: str = "latest") -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(
        json.dumps(
            {"when": datetime.now(UTC).isoformat(), "machine": machine(), "figures": [asdict(f) for f in figures]},
            indent=2,
        )
    )
    return path
