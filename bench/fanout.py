"""Fan-out: the app's pipelined `C2DSender` against the stock SDK loop, a 10,000-device request against a
1,000-device one, and what writing the status table costs a fan-out.

Every figure compares two things measured a moment apart: a run is made of rounds, a round is one
measurement of each side back to back (which goes first alternates), and a run's ratio is the median
of its rounds' ratios. The 2 cores are shared, so load from elsewhere falls on both sides of a round,
and one burst of it cannot decide a run. Goals are checked on the worst run (bench.common).

1. **Speed-up** (issue 14): 1,000 devices, one message each, through `C2DSender.send_many` and through
   the stock `IoTHubRegistryManager.send_c2d_message` loop, against the same IoT Hub emulator in the same
   process, with no added latency and with 20 ms per disposition (a round trip to a real hub). At 0 ms:
   `RUNS` runs of 5 rounds, the stock loop sending to 300 devices a round. At 20 ms the stock loop needs
   ~20 s per 1,000 messages (one round trip each), so there: 3 runs of 2 rounds, the stock loop sending
   to 100 devices a round. A serial loop's rate does not depend on how many messages it sends.
2. **Scale** (issue 14): HTTP fan-out requests through the local Functions host running the app
   (validation, send, logs, status table, the 207 body): a round is three 1,000-device requests and one
   10,000-device request; `SCALE_RUNS` runs of one round; the figure is how much the time per device
   grew. The app caps a `deviceIds` list at C2D_MAX_FAN_OUT (1,000 by default); this run raises it to
   10,000.
3. **Status table cost** (issue 12): the fan-out handler (`send_to_devices`, the code behind
   SendC2DFanOut) for 1,000 devices called in this process, with the real status table (Azurite) and
   with a store that writes nothing (a bench-only double): `RUNS` runs of `STORE_REQUESTS_PER_RUN`
   rounds; the figure is the drop in throughput the table write causes.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import RUNS, Figure, measured
from c2d.config import IoTHubSettings, SendSettings, StatusSettings, TableSettings
from c2d.http_api import SendDependencies, send_to_devices
from c2d.iothub import C2DSender
from c2d.links import StatusLinks
from c2d.messages import C2DMessage
from c2d.ports import DeviceRegistry
from c2d.registry import QueryResult
from c2d.status_store import SentRequest, StatusStore
from c2d.tables import Table
from localcloud.iothub.launcher import IoTHubProcess, running_iothub
from localcloud.stack import LocalCloud, local_cloud, trusting

DEVICES = 1000
SCALE_DEVICES = 10_000
SPEED_UP_GOALS = {0: 3.0, 20: 30.0}
SCALE_GROWTH_GOAL = 20.0  # % more time per device at 10,000 than at 1,000
STORE_DROP_GOAL = 10.0  # % less fan-out throughput with the status table written (issue 12)
#: Per added delay: runs, rounds per run, and messages per stock-loop send (the app sends to all 1,000).
SPEED_UP_RUNS = {0: (RUNS, 5, 300), 20: (3, 2, 100)}
SCALE_RUNS = 3
#: 1,000-device requests on the small side of a scale round (one 10,000-device request on the other).
SCALE_SMALL_REQUESTS = 3
#: Requests per status-table run and side, interleaved with the other side's one by one (a 1,000-device
#: request takes a few hundred ms: alone it is at the mercy of whatever else the 2 cores are doing).
STORE_REQUESTS_PER_RUN = 6
BODY = b'{"cmd":"ping"}'


def run(work_dir: Path) -> list[Figure]:
    return speed_up(work_dir / "fanout-speed-up") + through_the_app(work_dir / "fanout-app")


# ---- 1. C2DSender vs send_c2d_message ----------------------------------------------------------------
def speed_up(work_dir: Path) -> list[Figure]:
    names = [f"bench-{i:04d}" for i in range(DEVICES)]
    figures: list[Figure] = []
    with running_iothub(
        work_dir, extra_config={"devices": [{"device_id": d} for d in names]}, limits={"feedback_interval_s": 3600},
    ) as hub, trusting(hub.ca_bundle):  # fmt: skip
        settings = IoTHubSettings.from_connection_string(hub.service_connection_string, amqp_port=hub.ports.amqp)
        with C2DSender(settings) as sender, _StockSender(hub) as stock:
            for delay_ms, goal in SPEED_UP_GOALS.items():
                runs, rounds, baseline_devices = SPEED_UP_RUNS[delay_ms]

                def app(delay: float = delay_ms) -> tuple[int, float]:
                    _fresh_hub(hub, delay)
                    return _app_send(sender, names)

                def baseline(delay: float = delay_ms, count: int = baseline_devices) -> tuple[int, float]:
                    _fresh_hub(hub, delay)
                    return stock.send(names[:count])

                measured_runs = _interleaved(runs, rounds, app, baseline)
                app_rates, baseline_rates, ratios = measured_runs.first, measured_runs.second, measured_runs.ratio
                detail: dict[str, object] = {
                    "app_msgs_per_s": [round(r) for r in app_rates],
                    "baseline_msgs_per_s": [round(r, 1) for r in baseline_rates],
                    "run": f"{rounds} rounds of one app send of {len(names):,} messages and one stock-loop send of "
                           f"{baseline_devices:,} back to back (order alternating); medians over the rounds",
                }
                if delay_ms:
                    detail["note"] = (
                        f"{runs} runs, the stock loop sending {rounds} x {baseline_devices} messages a run: it makes "
                        f"one ~{delay_ms} ms round trip per message (~20 s per 1,000), so its rate does not depend "
                        "on the count"
                    )
                figures += [
                    measured("fan-out", f"C2DSender, {delay_ms} ms latency", app_rates, "msg/s", detail=detail),
                    measured("fan-out", f"send_c2d_message loop, {delay_ms} ms", baseline_rates, "msg/s"),
                    measured("fan-out", f"speed-up at {delay_ms} ms", ratios, "x", at_least=goal, detail=detail),
                ]
    return figures


@dataclass
class _Interleaved:
    """Per run: each side's rate (messages per second) and their ratio, each the median over the run's
    rounds. A round is one call of each side back to back, so a ratio compares calls a moment apart; the
    median keeps one burst of load from whatever else shares the 2 cores from deciding a whole run."""

    first: list[float]
    second: list[float]
    ratio: list[float]  # first / second


def _interleaved(
    runs: int, rounds: int, first: Callable[[], tuple[int, float]], second: Callable[[], tuple[int, float]]
) -> _Interleaved:
    """`runs` runs of `rounds` rounds; which side goes first alternates from round to round."""
    result = _Interleaved([], [], [])
    for run in range(runs):
        first_rates, second_rates = [], []
        for index in range(rounds):
            order = (first, second) if (run + index) % 2 == 0 else (second, first)
            rates = {}
            for side in order:
                count, seconds = side()
                rates[side is first] = count / seconds
            first_rates.append(rates[True])
            second_rates.append(rates[False])
        result.first.append(statistics.median(first_rates))
        result.second.append(statistics.median(second_rates))
        result.ratio.append(statistics.median(a / b for a, b in zip(first_rates, second_rates, strict=True)))
    return result


def _messages(devices: Sequence[str]) -> list[C2DMessage]:
    return [C2DMessage(device_id=d, message_id=str(uuid.uuid4()), body=BODY, ack="none") for d in devices]


def _app_send(sender: C2DSender, devices: Sequence[str]) -> tuple[int, float]:
    messages = _messages(devices)
    start = time.perf_counter()
    results = sender.send_many(messages)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.sent]
    if failed:
        raise RuntimeError(f"{len(failed)} app sends failed: {failed[0].error}")
    return len(devices), elapsed


class _StockSender:
    """The stock SDK's loop: one `send_c2d_message` per device, one round trip each."""

    def __init__(self, hub: IoTHubProcess) -> None:
        self._hub = hub

    def __enter__(self) -> _StockSender:
        from azure.iot.hub import IoTHubRegistryManager

        self._in_process = self._hub.use_in_process()  # the stock SDK dials uamqp's default port
        self._in_process.__enter__()
        self._registry = IoTHubRegistryManager.from_connection_string(self._hub.service_connection_string)
        self._registry.send_c2d_message("bench-0000", BODY.decode(), {"iothub-ack": "none"})  # connect first
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._registry.amqp_svc_client.disconnect_sync()
        finally:
            self._in_process.__exit__(None, None, None)

    def send(self, devices: Sequence[str]) -> tuple[int, float]:
        start = time.perf_counter()
        for device in devices:
            self._registry.send_c2d_message(device, BODY.decode(), {"iothub-ack": "none"})
        return len(devices), time.perf_counter() - start


def _fresh_hub(hub: IoTHubProcess, delay_ms: float) -> None:
    """Empty device queues (a reset also clears the faults), then the added disposition delay."""
    hub.admin.reset()
    hub.admin.disposition_delay(delay_ms)


# ---- 2 and 3: through the app -------------------------------------------------------------------------
def through_the_app(work_dir: Path) -> list[Figure]:
    names = [f"scale-{i:05d}" for i in range(SCALE_DEVICES)]
    with local_cloud(
        work_dir, devices=[{"device_id": d} for d in names], hub_limits={"feedback_interval_s": 3600},
        settings={"C2D_MAX_FAN_OUT": str(SCALE_DEVICES)},
    ) as cloud:  # fmt: skip
        scale = _scale(cloud, names)
        store = _status_store_cost(cloud, names[:DEVICES])
    return scale + store


def _post_fan_out(cloud: LocalCloud, devices: Sequence[str]) -> tuple[int, float]:
    """One HTTP fan-out request through the host, checked (every device sent, the request recorded)."""
    cloud.hub.admin.reset()
    start = time.perf_counter()
    status, _, body = cloud.post("/api/messages", {"deviceIds": list(devices), "payload": {"cmd": "ping"},
                                                   "ack": "none"})
    elapsed = time.perf_counter() - start
    if status != 207 or body.get("sent") != len(devices) or "statusUrl" not in body:
        raise RuntimeError(f"fan-out of {len(devices)}: {status} sent={body.get('sent')} {body.get('error')}")
    return len(devices), elapsed


def _scale(cloud: LocalCloud, names: list[str]) -> list[Figure]:
    small, large = names[:DEVICES], names
    _post_fan_out(cloud, small)  # the worker's first fan-out opens the IoT Hub link and the table
    def smalls() -> tuple[int, float]:  # a few requests, so both sides of a round take comparable time
        sent, seconds = zip(*(_post_fan_out(cloud, small) for _ in range(SCALE_SMALL_REQUESTS)), strict=True)
        return sum(sent), sum(seconds)

    runs = _interleaved(SCALE_RUNS, 1, smalls, lambda: _post_fan_out(cloud, large))
    small_rates, large_rates = runs.first, runs.second
    growth = [100 * (ratio - 1) for ratio in runs.ratio]  # time per device at 10,000 over that at 1,000
    detail: dict[str, object] = {
        "us_per_device_1000": [round(1e6 / v) for v in small_rates],
        "us_per_device_10000": [round(1e6 / v) for v in large_rates],
        "path": "POST /api/messages through the local Functions host (C2D_MAX_FAN_OUT=10000 for this run), "
                "until the 207 with every device's result is read",
        "run": f"{SCALE_SMALL_REQUESTS} 1,000-device requests and one 10,000-device request back to back "
               "(order alternating)",
    }
    return [
        measured("fan-out", "1,000-device request, through the host", small_rates, "msg/s", detail=detail),
        measured("fan-out", "10,000-device request, through the host", large_rates, "msg/s"),
        measured("fan-out", "time per device, 10,000 vs 1,000 devices", growth, "%", at_most=SCALE_GROWTH_GOAL,
                 detail=detail),
    ]


class _NoStatusStore(StatusStore):
    """Bench only: a status store that writes nothing, to see what writing costs."""

    def __init__(self) -> None:
        super().__init__(Table(TableSettings(connection_string="unused")))

    def record_sent(self, sent: SentRequest) -> None:
        return None


class _TimedStatusStore(StatusStore):
    """The real store, timing its `record_sent` (to show what the write itself takes)."""

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.seconds: list[float] = []

    def record_sent(self, sent: SentRequest) -> None:
        start = time.perf_counter()
        super().record_sent(sent)
        self.seconds.append(time.perf_counter() - start)


class _NoRegistry:
    def query_device_ids(self, query: str, cap: int) -> QueryResult:
        raise RuntimeError("the bench sends to listed devices")

    def purge(self, device_id: str) -> int:
        raise RuntimeError("the bench does not purge")


def _status_store_cost(cloud: LocalCloud, devices: list[str]) -> list[Figure]:
    hub = cloud.hub
    settings = IoTHubSettings.from_connection_string(hub.service_connection_string, amqp_port=hub.ports.amqp)
    table = Table(TableSettings(connection_string=cloud.storage.connection_string))
    links = StatusLinks("http://localhost")
    body = json.dumps({"deviceIds": devices, "payload": {"cmd": "ping"}, "ack": "none"}).encode()
    with trusting(hub.ca_bundle), C2DSender(settings) as sender:

        _registry: DeviceRegistry = _NoRegistry()
        real = _TimedStatusStore(table)
        stores: dict[bool, StatusStore] = {True: real, False: _NoStatusStore()}

        def request(with_table: bool) -> tuple[int, float]:
            deps = SendDependencies(
                sender=lambda: sender, send_settings=SendSettings, status_store=lambda: stores[with_table],
                status_settings=StatusSettings, registry=lambda: _registry,
            )
            hub.admin.reset()
            start = time.perf_counter()
            response = send_to_devices(body, deps, links)
            elapsed = time.perf_counter() - start
            if response.status != 207 or response.body.get("sent") != len(devices):
                raise RuntimeError(f"in-process fan-out: {response.status} {response.body.get('error')}")
            if "statusUrl" not in response.body:
                raise RuntimeError("in-process fan-out: the status table could not be written")
            return len(devices), elapsed

        request(True), request(False)  # warm up: the link, the table, the interpreter's caches
        runs = _interleaved(RUNS, STORE_REQUESTS_PER_RUN, lambda: request(True), lambda: request(False))
    on, off = runs.first, runs.second
    drops = [100 * (1 - ratio) for ratio in runs.ratio]
    detail: dict[str, object] = {
        "with_table_msgs_per_s": [round(r) for r in on], "without_table_msgs_per_s": [round(r) for r in off],
        "devices": len(devices),
        "run": f"{STORE_REQUESTS_PER_RUN} rounds of one request with and one without the table, back to back "
               "(order alternating); medians over the rounds",
        "record_sent_ms": [round(v * 1000, 1) for v in real.seconds[1:]],
        "path": "send_to_devices (SendC2DFanOut's handler) in this process; the table in Azurite",
    }
    return [
        measured("fan-out", "handler, status table written", on, "msg/s", detail=detail),
        measured("fan-out", "handler, status table not written", off, "msg/s"),
        measured("fan-out", "throughput drop with the status table", drops, "%", at_most=STORE_DROP_GOAL,
                 detail=detail),
    ]
