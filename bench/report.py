"""`python -m bench.report`: the latest results (bench/results/latest.json) as the README's Markdown table.

Keeps the README's performance section a copy of a real run instead of numbers typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, format_value


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [
        f"Run {results['when'][:16].replace('T', ' ')} UTC on {info['cpus']} CPUs ({info['processor']}), "
        f"Python {info['python']}; emulators, host and clients on the same cores.",
        "",
        "| benchmark | figure | runs | median | min | max | goal | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for figure in results["figures"]:
        unit, runs = figure["unit"], figure["runs"]
        spread = [format_value(figure["minimum"], unit), format_value(figure["maximum"], unit)] if runs else ["", ""]
        verdict = {True: "PASS", False: "FAIL", None: ""}[figure["passed"]]
        benchmark = "" if figure["benchmark"] == previous else figure["benchmark"]
        previous = figure["benchmark"]
        cells = [benchmark, figure["name"], str(len(runs) or 1), format_value(figure["median"], unit), *spread,
                 figure["goal"], verdict]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else RESULTS_DIR / "latest.json"
    print(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
