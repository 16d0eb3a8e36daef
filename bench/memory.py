"""Memory: RSS of the worker process after 1,000 and after 20,000 sends through the local host
(fan-out requests of 1,000 devices); growth must stay under 10 %.

The FeedbackProcessor timer keeps running, as in production. Its first run opens the feedback link and
adds a one-time ~9 MiB to the worker, whenever it happens to fire; measured with the timer off, sends
grew RSS by under 1 %. So the first sample is taken only after that first run has completed: the
figure measures what sending costs, not when another function first ran. RSS before any send is
printed too. Measured twice, with the worker's default thread pool and with
PYTHON_THREADPOOL_THREAD_COUNT=1, and with the growth after warm-up (5,000 -> 20,000 sends), where a
leak would keep showing."""

from __future__ import annotations

from pathlib import Path

from bench.common import Figure
from localcloud.stack import local_cloud

GOAL_PERCENT = 10.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def run(work_dir: Path, devices: int = 1000, rounds: int = 20) -> list[Figure]:
    return _measure(work_dir / "memory-default", devices, rounds, "default thread pool", {}) + _measure(
        work_dir / "memory-one-thread", devices, rounds, "1 pool thread", {"PYTHON_THREADPOOL_THREAD_COUNT": "1"}
    )


def _measure(work_dir: Path, devices: int, rounds: int, label: str, settings: dict[str, str]) -> list[Figure]:
    names = [f"mem-{i:04d}" for i in range(devices)]
    with local_cloud(
        work_dir, devices=[{"device_id": d} for d in names],
        hub_limits={"queue_depth": rounds + 5, "feedback_interval_s": 3600}, settings=settings,
    ) as cloud:  # fmt: skip
        pid = int(cloud.host.host_status()["workerPid"])
        cloud.host.wait_for_output("Executed 'Functions.FeedbackProcessor' (Succeeded", 120)
        before_sends = rss_kib(pid)
        samples = {}
        for round_number in range(1, rounds + 1):
            status, _, body = cloud.post("/api/messages", {"deviceIds": names, "payload": {"n": round_number},
                                                           "ack": "none"})
            if status != 207 or body["sent"] != devices:
                raise RuntimeError(f"round {round_number}: {status} {body.get('sent')}")
            samples[round_number * devices] = rss_kib(pid)
    after_first, after_last = samples[devices], samples[devices * rounds]
    growth = 100 * (after_last - after_first) / after_first
    curve = {str(k): round(v / 1024, 1) for k, v in samples.items()}
    warm = samples[devices * 5]
    steady = 100 * (after_last - warm) / warm
    return [
        Figure("memory", f"RSS with every function run once, before sends ({label})", before_sends / 1024, "MiB"),
        Figure("memory", f"RSS after {devices:,} sends ({label})", after_first / 1024, "MiB"),
        Figure("memory", f"RSS after {devices * rounds:,} sends ({label})", after_last / 1024, "MiB",
               detail={"rss_mib_by_sends": curve}),
        Figure("memory", f"growth ({label})", growth, "%", f"< {GOAL_PERCENT:g} %", growth < GOAL_PERCENT,
               {"rss_mib_by_sends": curve}),
        Figure("memory", f"growth {5 * devices:,} -> {devices * rounds:,} sends ({label})", steady, "%",
               detail={"note": "after warm-up: a leak would keep growing here"}),
    ]
