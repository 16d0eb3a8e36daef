"""Timer triggers (schedule, runOnStartup, TimerRequest payload) and the admin invoke API."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from typing import Any

import pytest

from localcloud.functions_host.launcher import wait_until

pytestmark = pytest.mark.integration


def test_run_on_startup_fires_once_at_start(basic_app: Any) -> None:
    records = wait_until(lambda: basic_app.records("Boot"), 60, "Boot to run on startup")
    assert records[0]["past_due"] is False


def test_timer_fires_on_its_schedule_from_a_setting(basic_app: Any) -> None:
    # TICK_SCHEDULE = "*/2 * * * * *" comes from the settings passed to the host (%TICK_SCHEDULE%)
    ticks = wait_until(lambda: len(basic_app.records("Tick")) >= 3 and basic_app.records("Tick"), 60, "3 ticks")
    for tick in ticks[:3]:
        fired = dt.datetime.fromisoformat(tick["at"])
        status = tick["schedule_status"]
        assert tick["schedule"] == {"AdjustForDST": True}
        nxt = dt.datetime.fromisoformat(status["Next"])
        assert nxt.second % 2 == 0 and nxt.microsecond == 0
        assert fired >= nxt  # Next is the occurrence being run
        assert set(status) == {"Last", "Next", "LastUpdated"}
    # consecutive scheduled runs: each one's Last is the previous one's scheduled time
    assert ticks[1]["schedule_status"]["Last"] == ticks[0]["schedule_status"]["Next"]


def test_admin_runs_a_timer_function_now(basic_app: Any) -> None:
    before = len(wait_until(lambda: basic_app.records("Boot"), 60, "Boot to run on startup"))
    assert basic_app.host.run_function("Boot") == 202
    records = wait_until(lambda: len(basic_app.records("Boot")) > before and basic_app.records("Boot"), 60, "Boot")
    assert records[-1]["past_due"] is False


def test_admin_runs_a_queue_function_with_the_given_input(basic_app: Any) -> None:
    assert basic_app.host.run_function("Work", "via admin 1") == 202
    records = wait_until(
        lambda: [r for r in basic_app.records("Work") if r["body"] == "via admin 1"], 60, "Work via admin"
    )
    assert records[0]["dequeue_count"] == 1


def test_admin_rejects_unknown_and_http_functions(basic_app: Any) -> None:
    assert basic_app.host.run_function("NoSuchFunction") == 404
    assert basic_app.host.run_function("Hello") == 400


def test_admin_requires_master_key_when_configured(basic_app: Any) -> None:
    req = urllib.request.Request(
        basic_app.host.base_url + "/admin/functions/Boot", data=json.dumps({"input": ""}).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401


def test_host_status_lists_loaded_functions(basic_app: Any) -> None:
    status = basic_app.host.host_status()
    assert status["state"] == "Running"
    assert status["functions"] == ["AdminOnly", "Boot", "Echo", "Enqueue", "Hello", "Secret", "Tick", "Work"]
    assert status["errors"] == {}
