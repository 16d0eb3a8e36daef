"""Fixtures for the local Functions host tests: Azurite and hosts running the fixture apps."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.azurite import Azurite, start_azurite
from localcloud.functions_host.launcher import HostProcess, running_host

APPS = Path(__file__).parent / "apps"
FUNCTION_KEY = "test-function-key"
MASTER_KEY = "test-master-key"


def read_records(out_dir: Path, function: str) -> list[dict[str, Any]]:
    path = out_dir / f"{function}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the host's console output to the report of a failed test."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            host = getattr(value, "host", value)
            if isinstance(host, HostProcess):
                report.sections.append(("local Functions host output", host.output()[-20000:]))
    return report


@pytest.fixture(scope="session")
def fixture_app(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """fixture_app("basic") -> a fresh copy of apps/basic with its local.settings.json.

    The repository ignores local.settings.json (it holds secrets in real apps), so the fixture apps
    keep theirs as local.settings.fixture.json; copying also keeps __pycache__ out of the source tree."""

    def make(name: str) -> Path:
        target = tmp_path_factory.mktemp(f"app-{name}") / name
        shutil.copytree(APPS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        fixture_settings = target / "local.settings.fixture.json"
        if fixture_settings.exists():
            fixture_settings.rename(target / "local.settings.json")
        return target

    return make


@pytest.fixture(scope="session")
def azurite_queue() -> Iterator[Azurite]:
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()


class BasicApp:
    def __init__(self, host: HostProcess, out_dir: Path, queue: str, connection_string: str) -> None:
        self.host = host
        self.out_dir = out_dir
        self.queue = queue
        self.connection_string = connection_string
        self.function_key = FUNCTION_KEY
        self.master_key = MASTER_KEY

    def records(self, function: str) -> list[dict[str, Any]]:
        return read_records(self.out_dir, function)


@pytest.fixture(scope="module")
def basic_app(
    azurite_queue: Azurite, tmp_path_factory: pytest.TempPathFactory, fixture_app: Callable[[str], Path]
) -> Iterator[BasicApp]:
    out_dir = tmp_path_factory.mktemp("basic-out")
    queue = f"work-{uuid.uuid4().hex[:12]}"
    settings = {
        "OUTPUT_DIR": str(out_dir),
        "WORK_QUEUE": queue,
        "TICK_SCHEDULE": "*/2 * * * * *",
        "AzureWebJobsStorage": azurite_queue.connection_string,
        "LocalHost__FunctionKey": FUNCTION_KEY,
        "LocalHost__MasterKey": MASTER_KEY,
    }
    with running_host(fixture_app("basic"), settings, master_key=MASTER_KEY) as host:
        yield BasicApp(host, out_dir, queue, azurite_queue.connection_string)
