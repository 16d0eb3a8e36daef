"""`python -m bench` (`make bench`): every benchmark, one table with goals, runs, median, min and
PASS/FAIL (on the worst run), JSON with the machine description in bench/results/latest.json.

    python -m bench                      all
    python -m bench fanout publish       some (names below, in BENCHMARKS)
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Figure, machine, table, write_results

EMULATOR_BENCHES = {
    "IoT Hub emulator": ["bench/bench_iothub_emulator.py", "--messages", "10000", "--rounds", "2"],
    "Service Bus emulator": ["bench/bench_servicebus_emulator.py"],
}


def emulators(_work: Path) -> list[Figure]:
    """The emulators' own throughput scripts (issues 3 and 4); their output is shown as they print it."""
    figures = []
    for name, command in EMULATOR_BENCHES.items():
        result = subprocess.run([sys.executable, *command], capture_output=True, text=True, check=False,
                                cwd=Path(__file__).resolve().parents[1])
        print(f"--- {name} ---\n{result.stdout.strip()}\n{result.stderr.strip()[-2000:]}".rstrip(), flush=True)
        figures.append(Figure("emulators", f"{name} script exit code", result.returncode, "", "0",
                              result.returncode == 0, {"output": result.stdout[-4000:]}))
    return figures


def _module(name: str) -> Callable[[Path], list[Figure]]:
    """`bench.<name>.run`, imported only when chosen (each pulls in different SDKs)."""

    def run(work_dir: Path) -> list[Figure]:
        runner: Callable[[Path], list[Figure]] = importlib.import_module(f"bench.{name}").run
        return runner(work_dir)

    return run


BENCHMARKS: dict[str, Callable[[Path], list[Figure]]] = {
    "fanout": _module("fanout"),
    "publish": _module("publish"),
    "drain": _module("drain"),
    "latency": _module("latency"),
    "sustained": _module("sustained"),
    "coldstart": _module("coldstart"),
    "memory": _module("memory"),
    "emulators": emulators,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="c2d-bench-") as work:
        for name in chosen:
            started = time.monotonic()
            print(f"running {name} ...", flush=True)
            try:
                figures += BENCHMARKS[name](Path(work))
            except (RuntimeError, TimeoutError, OSError) as error:
                figures.append(Figure(name, "run", 0, "", "completes", False, {"error": str(error)[-2000:]}))
            print(f"  {name} took {time.monotonic() - started:.0f} s", flush=True)
    print()
    print(table(figures))
    info = machine()
    print(f"\nmachine: {info['cpus']} CPUs, {info['processor']}, Python {info['python']}, {info['platform']}")
    print(f"results: {write_results(figures)}")
    return 0 if all(f.passed is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
